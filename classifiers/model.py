"""The process classifier: a spaCy text categoriser plus the field extractor on one Doc.

`train_model` writes a pipeline to a folder; `ProcessClassifier.load` reads it back and
sorts new inquiries into catalog processes, falling back to "general" when unsure.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

import spacy
from spacy.language import Language
from spacy.training import Example
from spacy.util import fix_random_seed, minibatch
from thinc.api import Adam

from classifiers.architecture import ARCHITECTURE
from classifiers.catalog import GENERAL, load_catalog
from classifiers.extract import extractor_for
from classifiers.fields import ExtractedFields
from classifiers.input_text import make_input_doc
from classifiers.language import create_nlp, prepare_nlp

TEXTCAT = "textcat"
DEFAULT_THRESHOLD = 0.5
BATCH_SIZE = 256
MODEL_SETTINGS = {
    "ngram_size": 2,
    "negation_scope": 3,
    "subject_features": False,
    "length": 2**17,
}


@dataclass(frozen=True)
class TrainingSettings:
    """Knobs of the training loop; the defaults are what the shipped model uses."""

    epochs: int = 12
    batch_size: int = 16
    learn_rate: float = 0.002
    l2: float = 1e-4


@dataclass(frozen=True)
class ClassifierInput:
    """One new inquiry: subject, new text (quoted history removed) and when it arrived."""

    subject: str
    text: str
    received_at: datetime

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")


@dataclass(frozen=True)
class Classification:
    """The chosen process, how sure the model is, every label's score, and the fields.

    Below the threshold `process` is "general" while `confidence` and `scores` still show
    the model's best guess, so a reviewer can see why.
    """

    process: str
    confidence: float
    scores: Mapping[str, float]
    fields: ExtractedFields

    @property
    def best_guess(self) -> str:
        """The top-scoring label, whether or not it cleared the threshold."""
        return max(self.scores, key=self.scores.__getitem__)

    def to_json(self) -> dict[str, object]:
        """Plain JSON-ready shape for `billing-inbox classify --json`."""
        fields = {name: _json_value(value) for name, value in vars(self.fields).items()}
        return {
            "process": self.process,
            "confidence": round(self.confidence, 4),
            "best_guess": self.best_guess,
            "scores": {label: round(score, 4) for label, score in self.scores.items()},
            "fields": fields,
        }


@dataclass(frozen=True)
class TrainReport:
    """What a training run did, for logs and for checking determinism."""

    output_dir: Path
    labels: tuple[str, ...]
    examples: int
    epochs: int
    seed: int
    losses: tuple[float, ...]
    seconds: float


def train_model(
    examples: Sequence[tuple[str, str, str]],
    output_dir: Path,
    seed: int = 0,
    settings: TrainingSettings | None = None,
) -> TrainReport:
    """Train on (subject, text, label) triples and save the pipeline to `output_dir`.

    Deterministic for a given seed: weights start at zero and the shuffle is seeded.
    """
    settings = settings or TrainingSettings()
    started = time.perf_counter()
    fix_random_seed(seed)
    labels = _check_labels(examples)
    nlp = create_nlp()
    model = {"@architectures": ARCHITECTURE, "exclusive_classes": True, **MODEL_SETTINGS}
    nlp.add_pipe(TEXTCAT, config={"model": model})
    data = [
        Example.from_dict(
            make_input_doc(nlp, subject, text),
            {"cats": {name: float(name == label) for name in labels}},
        )
        for subject, text, label in examples
    ]
    optimizer = Adam(settings.learn_rate, L2=settings.l2, use_averages=True)
    nlp.initialize(lambda: data, sgd=optimizer)
    textcat = nlp.get_pipe(TEXTCAT)
    shuffler = random.Random(seed)
    losses = []
    for _ in range(settings.epochs):
        shuffler.shuffle(data)
        epoch_losses: dict[str, float] = {}
        for batch in minibatch(data, size=settings.batch_size):
            # The component directly: nlp.update would copy every Doc of every batch.
            textcat.update(batch, sgd=optimizer, losses=epoch_losses)
        losses.append(epoch_losses.get(TEXTCAT, 0.0))
    output_dir = Path(output_dir)
    with nlp.use_params(optimizer.averages):
        nlp.to_disk(output_dir)
    return TrainReport(
        output_dir, labels, len(data), settings.epochs, seed, tuple(losses),
        time.perf_counter() - started,
    )  # fmt: skip


class ProcessClassifier:
    """A trained pipeline and its confidence threshold; safe to reuse for many emails."""

    def __init__(self, nlp: Language, threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, not {threshold}")
        self.nlp = nlp
        self.threshold = threshold
        self._extractor = extractor_for(nlp.vocab)

    @classmethod
    def load(cls, path: Path, threshold: float = DEFAULT_THRESHOLD) -> ProcessClassifier:
        """Read a pipeline written by train_model; refuses labels the catalog lacks."""
        nlp = spacy.load(path, exclude=[])
        prepare_nlp(nlp)
        unknown = set(nlp.get_pipe(TEXTCAT).labels) - set(load_catalog())
        if unknown:
            raise ValueError(f"model at {path} has labels not in the catalog: {sorted(unknown)}")
        return cls(nlp, threshold)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.nlp.get_pipe(TEXTCAT).labels)

    def classify(self, item: ClassifierInput) -> Classification:
        """Classify one inquiry (see classify_many)."""
        return self.classify_many([item])[0]

    def classify_many(
        self, items: Sequence[ClassifierInput], batch_size: int = BATCH_SIZE
    ) -> list[Classification]:
        """Classify and extract fields for many inquiries in one pass over the pipeline.

        The memory zone frees the strings of each call's emails, so a long-running worker
        does not grow its vocabulary with every invoice number it has seen.
        """
        results = []
        with self.nlp.memory_zone():
            docs = (make_input_doc(self.nlp, item.subject, item.text) for item in items)
            for item, doc in zip(items, self.nlp.pipe(docs, batch_size=batch_size), strict=True):
                fields = self._extractor.extract(doc, item.received_at)
                results.append(self.decide(doc.cats, fields))
        return results

    def decide(self, cats: Mapping[str, float], fields: ExtractedFields) -> Classification:
        """Scores -> Classification, applying the threshold."""
        scores = dict(sorted(cats.items(), key=lambda item: -item[1]))
        best, confidence = next(iter(scores.items()))
        process = best if confidence >= self.threshold else GENERAL
        return Classification(process, confidence, MappingProxyType(scores), fields)


def _check_labels(examples: Sequence[tuple[str, str, str]]) -> tuple[str, ...]:
    """Sorted labels of the examples; each must be a catalog process."""
    labels = sorted({label for _, _, label in examples})
    unknown = set(labels) - set(load_catalog())
    if unknown:
        raise ValueError(f"labels not in the catalog: {sorted(unknown)}")
    if len(labels) < 2:
        raise ValueError("training needs examples of at least two processes")
    return tuple(labels)


def _json_value(value: object) -> object:
    """Decimal and date as strings; JSON has no type for them."""
    return value if value is None or isinstance(value, str) else str(value)
