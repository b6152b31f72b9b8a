"""Field extraction: the rule patterns run over a Doc, matches become ExtractedFields.

The classifier hands over the Doc it has already tokenised, so an email is tokenised once.
Every match is kept as a RuleMatch so that `--explain` can show which rule found what.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from spacy.matcher import Matcher
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from classifiers.dates import interpret_date, is_numeric_date
from classifiers.fields import ExtractedFields
from classifiers.input_text import regions
from classifiers.language import shared_nlp
from classifiers.money import currency_code, parse_amount
from classifiers.patterns import INVOICE_ID_NORMS, RULES
from classifiers.selection import amount_score, date_score, find_reason

__all__ = ["ExtractedFields", "FieldExtractor", "RuleMatch", "extract_fields"]

# When two matches overlap, the longer wins; at equal length, this order: "500 USD" after
# "invoice" is an amount, not invoice number 500.
_FIELD_PRIORITY = {"amount": 0, "requested_date": 1, "invoice_number": 2, "account_number": 3}
_CENTS = re.compile(r"\d+[.,]\d{2}")
_LETTER_PREFIX = re.compile(r"[A-Za-z]{1,6}-")


@dataclass(frozen=True)
class RuleMatch:
    """One rule's hit: which field, which rule, the words, and what they were read as."""

    field: str
    rule: str
    text: str
    start: int
    end: int
    value: str | Decimal | date
    currency: str | None = None
    complete: bool = True
    quoted: bool = False


class FieldExtractor:
    """The compiled patterns for one vocabulary; build once, use for many Docs."""

    def __init__(self, vocab: Vocab) -> None:
        self._matcher = Matcher(vocab, validate=True)
        for name, (_, rule) in RULES.items():
            self._matcher.add(name, rule(), greedy="LONGEST")

    def extract(self, doc: Doc, received_at: datetime) -> ExtractedFields:
        """The fields of one Doc (see module docstring of selection.py for the choices)."""
        return choose_fields(doc, self.find_matches(doc, received_at.date()), received_at.date())

    def find_matches(self, doc: Doc, received: date) -> list[RuleMatch]:
        """Every readable match in text order; of overlapping ones only the best is kept."""
        spans = self._matcher(doc, as_spans=True)
        quoted_start = regions(doc).quoted_start
        amounts = [
            _read_amount(span, quoted_start) for span in spans if RULES[span.label_][0] == "amount"
        ]
        currencies = {match.currency for match in amounts if match is not None}
        day_first = bool(currencies - {"USD", None}) or "USD" not in currencies
        candidates = [match for match in amounts if match is not None]
        for span in spans:
            field = RULES[span.label_][0]
            if field in ("invoice_number", "account_number"):
                candidates.append(_read_identifier(span, field, quoted_start))
            elif field == "requested_date" and span.start_char < quoted_start:
                candidates.append(_read_date(span, received, day_first))
        kept = _without_overlaps([match for match in candidates if match is not None])
        return sorted(kept, key=lambda match: match.start)


def choose_fields(doc: Doc, matches: list[RuleMatch], received: date) -> ExtractedFields:
    """One value per field from all matches; the reason comes from the body's sentences."""
    by_field: dict[str, list[RuleMatch]] = {}
    for match in matches:
        by_field.setdefault(match.field, []).append(match)
    amount = _best_amount(doc, by_field.get("amount", []))
    requested = _best_date(doc, by_field.get("requested_date", []), received)
    area = regions(doc)
    new_text = doc.text[area.subject_end : area.quoted_start]
    reason = find_reason(new_text) or find_reason(doc.text[: area.subject_end])
    return ExtractedFields(
        invoice_number=_first_value(by_field.get("invoice_number")),
        amount=None if amount is None else amount.value,  # type: ignore[arg-type]
        currency=None if amount is None else amount.currency,
        account_number=_first_value(by_field.get("account_number")),
        requested_date=None if requested is None else requested.value,  # type: ignore[arg-type]
        reason=reason,
    )


def extract_fields(doc_or_text: Doc | str, received_at: datetime) -> ExtractedFields:
    """Fields of a Doc from our pipeline, or of plain text (tokenised with the shared one).

    >>> extract_fields("Invoice #48213 shows $1,250.00", received_at).invoice_number
    '48213'
    """
    doc = shared_nlp().make_doc(doc_or_text) if isinstance(doc_or_text, str) else doc_or_text
    return extractor_for(doc.vocab).extract(doc, received_at)


@functools.lru_cache(maxsize=8)
def extractor_for(vocab: Vocab) -> FieldExtractor:
    """One compiled FieldExtractor per vocabulary (patterns are hashed into its strings)."""
    return FieldExtractor(vocab)


def _without_overlaps(matches: list[RuleMatch]) -> list[RuleMatch]:
    """Longest first, then by field priority, then earliest; drop anything overlapping."""
    ranked = sorted(
        matches, key=lambda m: (m.start - m.end, _FIELD_PRIORITY[m.field], m.start)
    )
    taken: set[int] = set()
    kept = []
    for match in ranked:
        if taken.isdisjoint(range(match.start, match.end)):
            taken.update(range(match.start, match.end))
            kept.append(match)
    return kept


def _read_identifier(span: Span, field: str, quoted_start: int) -> RuleMatch | None:
    """The id token at the end of the span, unless it is too short to be an id ("invoice
    1 of 2"; "KW-88" is fine), a date ("invoice 15/03/2026"), an amount with cents, or
    an invoice number after an account word ("reference INV-2026-0042")."""
    id_token = span[-2] if span[-1].text == ")" else span[-1]
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


def _read_amount(span: Span, quoted_start: int) -> RuleMatch | None:
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


def _read_date(span: Span, received: date, day_first: bool) -> RuleMatch | None:
    """A date phrase -> calendar date, relative ones against the received day."""
    value, complete = interpret_date(span.label_, [t.text for t in span], received, day_first)
    if value is None:
        return None
    return RuleMatch(
        "requested_date", span.label_, span.text, span.start, span.end, value, None, complete
    )


def _first_value(matches: list[RuleMatch] | None) -> str | None:
    """The first id in the new text, else the first in the quoted history."""
    if not matches:
        return None
    return str(min(matches, key=lambda m: (m.quoted, m.start)).value)


def _best_amount(doc: Doc, matches: list[RuleMatch]) -> RuleMatch | None:
    """Highest amount_score in the new text, earliest on a tie; else the same in the quote."""
    if not matches:
        return None
    return max(matches, key=lambda m: (not m.quoted, amount_score(doc, m.start, m.end), -m.start))


def _best_date(doc: Doc, matches: list[RuleMatch], received: date) -> RuleMatch | None:
    """Highest date_score at or above zero; a year-less "15/03" needs a cue word."""
    best, best_score = None, -1
    for match in matches:
        score = date_score(doc, match.start, match.value, received)  # type: ignore[arg-type]
        if score > best_score and (match.complete or score > 0):
            best, best_score = match, score
    return best
