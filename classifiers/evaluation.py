"""Scoring classifications against labelled examples, and a plain-text table of the result.

Pure functions: the CLI loads the examples, runs the classifier (with its progress bar)
and hands both lists here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from classifiers.classification import Classification
from classifiers.examples import LabelledExample
from classifiers.fields import ExtractedFields


@dataclass(frozen=True)
class ProcessScore:
    """Precision, recall and F1 of one process; support is its number of labelled examples."""

    process: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class FieldScore:
    """How often a field was read right where it is labelled, and invented where it is not."""

    field: str
    correct: int
    labelled: int
    false_positives: int
    unlabelled: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.labelled if self.labelled else 1.0


@dataclass(frozen=True)
class EvaluationReport:
    """Everything `format_report` prints; `confusion[gold][predicted]` counts examples."""

    examples: int
    accuracy: float
    macro_f1: float
    processes: tuple[ProcessScore, ...]
    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    fields: tuple[FieldScore, ...]


# Field name -> (is it labelled?, does the extraction match the label?).
_FIELD_CHECKS: dict[str, tuple[Callable[[LabelledExample], bool], Callable]] = {
    "invoice_number": (
        lambda gold: gold.invoice_number is not None,
        lambda got, gold: got.invoice_number == gold.invoice_number,
    ),
    "amount+currency": (
        lambda gold: gold.amount is not None,
        lambda got, gold: got.amount == gold.amount and got.currency == gold.currency,
    ),
    "account_number": (
        lambda gold: gold.account_number is not None,
        lambda got, gold: got.account_number == gold.account_number,
    ),
    "requested_date": (
        lambda gold: gold.requested_date is not None,
        lambda got, gold: got.requested_date == gold.requested_date,
    ),
}
_EXTRACTED: dict[str, Callable[[ExtractedFields], bool]] = {
    "invoice_number": lambda got: got.invoice_number is not None,
    "amount+currency": lambda got: got.amount is not None,
    "account_number": lambda got: got.account_number is not None,
    "requested_date": lambda got: got.requested_date is not None,
}


def evaluate(
    predictions: Sequence[Classification], labelled: Sequence[LabelledExample]
) -> EvaluationReport:
    """Compare predictions with labels, pairwise in order."""
    if len(predictions) != len(labelled):
        raise ValueError(f"{len(predictions)} predictions for {len(labelled)} examples")
    gold = [example.label for example in labelled]
    predicted = [prediction.process for prediction in predictions]
    labels = tuple(sorted(set(gold) | set(predicted)))
    pairs = Counter(zip(gold, predicted, strict=True))
    processes = tuple(_process_score(label, pairs, gold, predicted) for label in labels)
    fields = tuple(
        _field_score(name, [p.fields for p in predictions], labelled) for name in _FIELD_CHECKS
    )
    return EvaluationReport(
        examples=len(labelled),
        accuracy=sum(g == p for g, p in zip(gold, predicted, strict=True)) / max(len(gold), 1),
        macro_f1=sum(score.f1 for score in processes) / max(len(processes), 1),
        processes=processes,
        labels=labels,
        confusion=tuple(tuple(pairs[(g, p)] for p in labels) for g in labels),
        fields=fields,
    )


def format_report(report: EvaluationReport) -> str:
    """A plain-text report: per-process table, confusion matrix, field accuracy."""
    width = max([len(label) for label in report.labels] + [len("macro avg")])
    lines = [f"{'process':<{width}}  precision  recall     f1  support"]
    for score in report.processes:
        lines.append(
            f"{score.process:<{width}}  {score.precision:9.3f}  {score.recall:6.3f}"
            f"  {score.f1:5.3f}  {score.support:7d}"
        )
    lines.append(
        f"{'macro avg':<{width}}  {'':9}  {'':6}  {report.macro_f1:5.3f}  {report.examples:7d}"
    )
    lines.append(f"accuracy {report.accuracy:.3f}")
    lines += ["", "confusion (rows: labelled, columns: predicted)"]
    lines.append(" " * (width + 2) + " ".join(f"{i:>3}" for i in range(len(report.labels))))
    for index, (label, row) in enumerate(zip(report.labels, report.confusion, strict=True)):
        lines.append(f"{label:<{width}}  " + " ".join(f"{n:>3}" for n in row) + f"  [{index}]")
    lines += ["", f"{'field':<16}  correct  labelled  accuracy  false positives (of unlabelled)"]
    for field in report.fields:
        lines.append(
            f"{field.field:<16}  {field.correct:7d}  {field.labelled:8d}  {field.accuracy:8.3f}"
            f"  {field.false_positives} of {field.unlabelled}"
        )
    return "\n".join(lines)


def _process_score(
    label: str, pairs: Counter[tuple[str, str]], gold: list[str], predicted: list[str]
) -> ProcessScore:
    """One row of the per-process table."""
    true_positives = pairs[(label, label)]
    support, chosen = gold.count(label), predicted.count(label)
    precision = true_positives / chosen if chosen else 0.0
    recall = true_positives / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ProcessScore(label, precision, recall, f1, support)


def _field_score(
    name: str, extracted: list[ExtractedFields], labelled: Sequence[LabelledExample]
) -> FieldScore:
    """Accuracy over examples labelled with the field, false positives over the rest."""
    is_labelled, matches = _FIELD_CHECKS[name]
    found = _EXTRACTED[name]
    correct = labelled_count = false_positives = unlabelled = 0
    for got, gold in zip(extracted, labelled, strict=True):
        if is_labelled(gold):
            labelled_count += 1
            correct += bool(matches(got, gold))
        else:
            unlabelled += 1
            false_positives += found(got)
    return FieldScore(name, correct, labelled_count, false_positives, unlabelled)
