"""The fields we pull out of a billing email, as one frozen value.

Kept apart from the spaCy code so that the catalog (and anything that only needs the
shape of the result) can import it without loading spaCy.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal


@dataclass(frozen=True)
class ExtractedFields:
    """What the extractor found; None means "not mentioned", never "zero" or "empty"."""

    invoice_number: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    account_number: str | None = None
    requested_date: date | None = None
    reason: str | None = None

    def missing(self, wanted: tuple[str, ...]) -> tuple[str, ...]:
        """Names in `wanted` that were not found, in the order given (for "please send us ...")."""
        return tuple(name for name in wanted if getattr(self, name) is None)


FIELD_NAMES: tuple[str, ...] = tuple(field.name for field in fields(ExtractedFields))
