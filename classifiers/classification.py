"""The classifier's input and output values: what it is asked, and what it answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from classifiers.fields import ExtractedFields


@dataclass(frozen=True)
class ClassifierInput:
    """One new inquiry: subject, new text (quoted history removed) and when it arrived.

    `received_at` anchors relative dates ("next Friday") and must be timezone-aware.
    """

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

    def __reduce__(self) -> tuple[object, ...]:
        # The scores are often a read-only view, which pickle refuses; a reading process
        # (inbox_worker/reading.py) sends a copy, read-only again on arrival.
        return _classification, (self.process, self.confidence, dict(self.scores), self.fields)

    @property
    def best_guess(self) -> str:
        """The top-scoring label, whether or not it cleared the threshold."""
        return max(self.scores, key=self.scores.__getitem__)

    def to_json(self) -> dict[str, object]:
        """Plain JSON-ready shape for `billing-inbox classify --json`."""
        fields = {name: json_value(value) for name, value in vars(self.fields).items()}
        return {
            "process": self.process,
            "confidence": round(self.confidence, 4),
            "best_guess": self.best_guess,
            "scores": {label: round(score, 4) for label, score in self.scores.items()},
            "fields": fields,
        }


def _classification(
    process: str, confidence: float, scores: dict[str, float], fields: ExtractedFields
) -> Classification:
    return Classification(process, confidence, MappingProxyType(scores), fields)


def json_value(value: object) -> object:
    """Decimal and date as strings (JSON has no type for them); None and str as they are."""
    return value if value is None or isinstance(value, str) else str(value)
