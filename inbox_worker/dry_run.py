"""`classify` and `evaluate`: the pipeline's parse, route and classify, writing nothing.

Routing needs the case database to recognise follow-ups; when the configured SQLite file
does not exist yet, an empty in-memory database stands in, so a dry run on a fresh
machine creates no files.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO

from classifiers.evaluation import EvaluationReport, evaluate
from classifiers.examples import LabelledExample
from classifiers.explain import format_explanation
from classifiers.model import Classification, ClassifierInput, ProcessClassifier
from db.database import connect_database, missing_sqlite_file
from inbox_worker.act import history_for
from inbox_worker.message import InboundEmail, parse_email
from inbox_worker.reading import classifier_input
from inbox_worker.route import (
    Decision,
    Duplicate,
    FollowUp,
    Ignore,
    NewCase,
    NotYours,
    StatusRequest,
    route_message,
)
from inbox_worker.settings import Settings
from inbox_worker.training import heldout_examples, load_classifier

Progress = Callable[[Iterable[Any], int, str], Iterable[Any]]


@dataclass(frozen=True)
class DryRunResult:
    """What the worker would do with one file."""

    file: str
    email: InboundEmail
    decision: Decision
    classification: Classification | None
    explanation: Any = None

    def to_json(self) -> dict[str, Any]:
        route, reason = _route_name(self.decision)
        fields = self.classification.fields if self.classification else None
        result: dict[str, Any] = {
            "file": self.file,
            "route": route,
            "reason": reason,
            "process": self.classification.process if self.classification else None,
            "confidence": round(self.classification.confidence, 4)
            if self.classification else None,
            "invoice_number": fields.invoice_number if fields else None,
            "amount": str(fields.amount) if fields and fields.amount is not None else None,
            "currency": fields.currency if fields else None,
            "account_number": fields.account_number if fields else None,
            "requested_date": fields.requested_date.isoformat()
            if fields and fields.requested_date else None,
            "message_id": self.email.message_id,
            "sender": self.email.sender,
            "subject": self.email.subject,
        }
        if self.explanation is not None:
            result["explanation"] = self.explanation.to_json()
        return result

    def to_text(self) -> str:
        data = self.to_json()
        lines = [f"{data['file']}: {data['route']}"
                 + (f" ({data['reason']})" if data["reason"] else "")]
        if data["process"]:
            confidence = self.classification.confidence  # as the explanation shows it
            lines.append(f"  process     {data['process']} (confidence {confidence:.2f})")
        for key in ("invoice_number", "amount", "currency", "account_number", "requested_date"):
            if data[key]:
                lines.append(f"  {key:<11} {data[key]}")
        if self.explanation is not None:
            lines.extend("  " + line for line in format_explanation(self.explanation).splitlines())
        return "\n".join(lines)


def evaluation_json(report: EvaluationReport) -> dict[str, Any]:
    """`evaluate --json`: the report's numbers, with each field's accuracy spelled out."""
    data = dataclasses.asdict(report)
    for field, score in zip(data["fields"], report.fields, strict=True):
        field["accuracy"] = round(score.accuracy, 4)
    return data


def classify_files(
    settings: Settings, files: Sequence[str], explain: bool, stdin: BinaryIO | None = None
) -> Iterator[DryRunResult]:
    """Parse, route and classify each file (`-` is standard input); store nothing."""
    _connect_read_only(settings)
    classifier = load_classifier(settings)
    now = datetime.now(UTC)
    for name in files:
        raw = (stdin or sys.stdin.buffer).read() if name == "-" else Path(name).read_bytes()
        email = parse_email(raw, settings.from_address, now)
        classification = None
        if not email.needs_no_reply:
            classification = classifier.classify(classifier_input(email))
        decision = route_message(email, classification, settings, history_for([email], now),
                                 now)
        explanation = (classifier.explain(classifier_input(email))
                       if explain and classification else None)
        yield DryRunResult(name, email, decision, classification, explanation)


def evaluate_examples(settings: Settings, path: str | None, progress: Progress
                      ) -> EvaluationReport:
    """Score the classifier on the held-out examples, or on a folder of labelled .eml."""
    classifier = load_classifier(settings)
    labelled = heldout_examples() if path is None else _labelled_folder(settings, Path(path))
    predictions = []
    for example in progress(labelled, len(labelled), "classifying"):
        predictions.append(_predict(classifier, example))
    return evaluate(predictions, labelled)


def _predict(classifier: ProcessClassifier, example: LabelledExample) -> Classification:
    received = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    return classifier.classify(ClassifierInput(example.subject, example.body,
                                               received))


def _labelled_folder(settings: Settings, folder: Path) -> list[LabelledExample]:
    """`labels.jsonl` beside .eml files: {"file", "label", "invoice_number", ...}."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder (evaluate wants a folder of .eml "
                                "files with a labels.jsonl)")
    labels_path = folder / "labels.jsonl"
    if not labels_path.exists():
        raise FileNotFoundError(f"{labels_path} not found (one JSON object per .eml file)")
    examples = []
    now = datetime.now(UTC)
    for line in labels_path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        label = json.loads(line)
        email = parse_email((folder / label["file"]).read_bytes(), settings.from_address, now)
        examples.append(LabelledExample(
            subject=email.subject, body=email.full_text, label=label["label"],
            invoice_number=label.get("invoice_number"), amount=_decimal(label.get("amount")),
            currency=label.get("currency"), account_number=label.get("account_number"),
            requested_date=None, lang=label.get("lang", "en"),
        ))
    return examples


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


def _connect_read_only(settings: Settings) -> None:
    url = settings.database_url
    if missing_sqlite_file(url) is not None:
        url = "sqlite:///:memory:"  # nothing recorded yet, and a dry run creates nothing
    connect_database(url)


def _route_name(decision: Decision) -> tuple[str, str | None]:
    match decision:
        case Ignore(_, reason):
            return "ignore", reason
        case Duplicate():
            return "ignore", "already processed (same Message-ID)"
        case NewCase(_, previous) if previous is not None:
            return "new_case", f"follows {previous.status} case {previous.tracking_number}"
        case NewCase():
            return "new_case", None
        case FollowUp(case):
            return "follow_up", f"adds to {case.tracking_number}"
        case StatusRequest(case):
            return "status_request", f"about {case.tracking_number}" if case else \
                "list of the sender's open cases"
        case NotYours():
            return "follow_up", "names a case the sender does not own: neutral reply"
    raise AssertionError(decision)
