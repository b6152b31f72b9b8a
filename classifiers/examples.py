"""Labelled example emails, read from examples/<split>/*.jsonl.

Each line is one email with its process label and the fields a person found in it; they
train the classifier (split "train") and measure it (split "heldout").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

EXAMPLES_DIR = Path(__file__).with_name("examples")
SPLITS = ("train", "heldout")


class ExampleError(ValueError):
    """A JSONL line that is not a valid labelled example; the message names file and line."""


@dataclass(frozen=True)
class LabelledExample:
    """One email and what a person says the classifier and extractor should find in it."""

    subject: str
    body: str
    label: str
    invoice_number: str | None
    amount: Decimal | None
    currency: str | None
    account_number: str | None
    requested_date: date | None
    lang: str


def load_examples(split: str, root: Path = EXAMPLES_DIR) -> list[LabelledExample]:
    """All examples of a split, files in name order, lines in file order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    examples = []
    for path in sorted((root / split).glob("*.jsonl")):
        examples.extend(read_jsonl(path))
    return examples


def read_jsonl(path: Path) -> list[LabelledExample]:
    """Parse one JSONL file; blank lines are skipped."""
    examples = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                examples.append(parse_example(json.loads(line)))
            except (ValueError, KeyError, TypeError, ArithmeticError) as error:
                raise ExampleError(f"{path}:{number}: {error}") from error
    return examples


def parse_example(record: dict[str, object]) -> LabelledExample:
    """One decoded JSON object -> LabelledExample; amounts are decimal strings, dates ISO."""
    amount = record.get("amount")
    requested = record.get("requested_date")
    return LabelledExample(
        subject=str(record.get("subject") or ""),
        body=str(record["body"]),
        label=str(record["label"]),
        invoice_number=_optional_str(record.get("invoice_number")),
        amount=None if amount is None else Decimal(str(amount)),
        currency=_optional_str(record.get("currency")),
        account_number=_optional_str(record.get("account_number")),
        requested_date=None if requested is None else date.fromisoformat(str(requested)),
        lang=str(record.get("lang") or "en"),
    )


def _optional_str(value: object) -> str | None:
    """JSON null or "" -> None, anything else -> its string."""
    return None if value in (None, "") else str(value)
