"""Reading a matched span as a value: an id string, a Decimal amount, a calendar date.

Each reader may refuse a match ("invoice 1 of 2" is no invoice number); what it accepts
becomes a RuleMatch, which `--explain` lists as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from spacy.tokens import Span

from classifiers.dates import interpret_date, is_numeric_date
from classifiers.money import currency_code, parse_amount
from classifiers.vocabulary import INVOICE_ID_NORMS

_CENTS = re.compile(r"\d+[.,]\d{2}")
_LETTER_PREFIX = re.compile(r"[A-Za-z]{1,6}-")


@dataclass(frozen=True)
class RuleMatch:
    """One rule's hit: which field, which rule, the words, and what they were read as.

    `start`/`end` are token offsets in the Doc; `complete` is False for a year-less "15/03";
    `quoted` is True inside quoted history.
    """

    field: str
    rule: str
    text: str
    start: int
    end: int
    value: str | Decimal | date
    currency: str | None = None
    complete: bool = True
    quoted: bool = False


def read_identifier(span: Span, field: str, quoted_start: int) -> RuleMatch | None:
    """The id token at the end of the span, unless it is too short to be an id ("invoice
    1 of 2"; "KW-88" is fine), a date ("invoice 15/03/2026"), an amount with cents, or an
    invoice number after an account word ("reference INV-2026-0042")."""
    # Through the Doc: a Span's own indexing costs twice as much, on every match.
    doc, last = span.doc, span.end - 1
    id_token = doc[last - 1] if doc[last].text == ")" else doc[last]
    text = id_token.text
    digits = sum(char.isdigit() for char in text)
    if digits < 2 or (digits == 2 and not _LETTER_PREFIX.match(text)):
        return None
    if _CENTS.fullmatch(text) or is_numeric_date(text):
        return None
    if field == "account_number" and id_token.norm_ in INVOICE_ID_NORMS:
        return None
    quoted = span.start_char >= quoted_start
    return RuleMatch(field, span.label_, span.text, span.start, span.end, text, quoted=quoted)


def read_amount(span: Span, quoted_start: int) -> RuleMatch | None:
    """Digits -> Decimal and the currency mark -> ISO code (None for a bare "25.00")."""
    digits = "".join(token.text for token in span if token.text[0].isdigit())
    value = parse_amount(digits)
    if not value:  # None, or a zero balance ("€0,00"), which is never the amount in question
        return None
    currency = next((code for token in span if (code := currency_code(token.text))), None)
    quoted = span.start_char >= quoted_start
    return RuleMatch(
        "amount", span.label_, span.text, span.start, span.end, value, currency, quoted=quoted
    )


def read_date(span: Span, received: date, day_first: bool) -> RuleMatch | None:
    """A date phrase -> calendar date, relative ones against the received day."""
    value, complete = interpret_date(span.label_, [t.text for t in span], received, day_first)
    if value is None:
        return None
    return RuleMatch(
        "requested_date", span.label_, span.text, span.start, span.end, value, None, complete
    )
