"""Choosing one value per field when a field matched several times, and the complaint.

The rules are few and written to be explained to a customer-service lead:
- invoice and account numbers: the first in the new text, else the first in the quote;
- amounts: the one next to the most words like "overcharged", "difference", "too much",
  "extra", "refund", "total" wins; a unit price ("$30 each", "$45/day", "$0.12 per kWh")
  loses; else the first; amounts in quoted history only when the new text has none;
- requested dates: one after "until", "by", "to", "from" wins over one after "on", one
  right after "due", "dated", "issued" loses, a date already past never counts; else the
  first;
- reason: the sentence with the most complaint words (lexicon concepts "wrong" and
  "overcharge": "wrong", "twice", "refund", "falsch", "erreur"...), at most 200 characters.
"""

from __future__ import annotations

from datetime import date

import numpy as np
from spacy.strings import hash_string
from spacy.tokens import Doc

from classifiers.fields import ExtractedFields
from classifiers.input_text import regions, token_offsets
from classifiers.language import CONCEPT_COLUMN, NORM_COLUMN, lexeme_columns
from classifiers.reading import RuleMatch

# Words before an amount that make it the disputed one: "overcharged $210", "refund the
# extra $1,200", "the difference is 450,00 EUR", "correct by $300", "= $135.00".
# fmt: off
OUTCOME_BEFORE = frozenset([
    "overcharged", "overcharge", "overbilled", "overpaid", "difference", "extra", "refund",
    "refunded", "credit", "total", "correct", "reduce", "=", "so", "differenz", "beträgt",
    "écart", "représente", "diferencia", "reembolso", "gutschrift",
])
# ... and after it: "$426.00 too much", "£100 over", "£118.40 higher", "€1,640.00 total".
OUTCOME_AFTER = frozenset([
    "too", "over", "more", "higher", "extra", "difference", "credited", "total", "zuviel",
])
# A unit price is not the amount in question: "$30 each", "$45/day", "$0.12 per kWh".
UNIT_AFTER = frozenset(["/", "per", "each", "pro", "por", "par", "x", "a", "an"])
UNIT_BEFORE = frozenset(["at", "rate"])
# Words before a date that make it the one asked for: "until 8 April", "from 13 April",
# "moved to March 31", "ab dem 1. September", "du 1er octobre". "on" counts for less:
# "closes on October 12 ... suspend from the 13th".
DATE_STRONG_CUES = frozenset([
    "until", "till", "til", "by", "to", "through", "before", "from", "starting", "effective",
    "extend", "extended", "moved", "move", "postpone", "pushed", "bis", "ab", "vom", "zum",
    "hasta", "desde", "jusqu'au", "jusqu", "au", "du", "dès", "partir",
])
DATE_WEAK_CUES = frozenset(["on", "am", "el", "le", "pay", "settle"])
# Right before a date, these make it a fact, not a request: "due on 24 December",
# "dated 15/03/2026", "paid 12 February". A colon makes it a header or form field
# ("Date: Wed, Mar 11").
DATE_ANTI_CUES = frozenset([
    "due", "dated", "issued", "since", "sent", "received", "invoiced", "billed", "charged",
    "paid", "fällig", "emitida", "datée", "expired", "ago",
])
# fmt: on
COMPLAINT_CONCEPTS = np.array([hash_string("@wrong"), hash_string("@overcharge")], "uint64")
# Line breaks are tokens of their own, "\n " (see input_text.separate_lines).
SENTENCE_ENDS = np.array([hash_string(m) for m in (".", "!", "?", "\n", "\n ")], "uint64")
REASON_MAX_CHARS = 200


def choose_fields(
    doc: Doc, matches: list[RuleMatch], received: date, with_reason: bool = True
) -> ExtractedFields:
    """One value per field from all matches, and the reason sentence if asked for."""
    by_field: dict[str, list[RuleMatch]] = {}
    for match in matches:
        by_field.setdefault(match.field, []).append(match)
    amount = best_amount(doc, by_field.get("amount", []))
    requested = best_date(doc, by_field.get("requested_date", []), received)
    return ExtractedFields(
        invoice_number=first_identifier(by_field.get("invoice_number", [])),
        amount=None if amount is None else amount.value,  # type: ignore[arg-type]
        currency=None if amount is None else amount.currency,
        account_number=first_identifier(by_field.get("account_number", [])),
        requested_date=None if requested is None else requested.value,  # type: ignore[arg-type]
        reason=find_reason(doc) if with_reason else None,
    )


def first_identifier(matches: list[RuleMatch]) -> str | None:
    """The first id in the new text, else the first in the quoted history."""
    if not matches:
        return None
    return str(min(matches, key=lambda m: (m.quoted, m.start)).value)


def best_amount(doc: Doc, matches: list[RuleMatch]) -> RuleMatch | None:
    """Highest amount_score in the new text, earliest on a tie; else the same in the quote."""
    if len(matches) <= 1:
        return matches[0] if matches else None
    return max(matches, key=lambda m: (not m.quoted, amount_score(doc, m.start, m.end), -m.start))


def best_date(doc: Doc, matches: list[RuleMatch], received: date) -> RuleMatch | None:
    """Highest date_score at or above zero; a year-less "15/03" needs a cue word."""
    best, best_score = None, -1
    for match in matches:
        score = date_score(doc, match.start, match.value, received)  # type: ignore[arg-type]
        if score > best_score and (match.complete or score > 0):
            best, best_score = match, score
    return best


def amount_score(doc: Doc, start: int, end: int) -> int:
    """Two points per outcome word up to four tokens before or two after ("so we have £20.00
    too much" beats "the total VAT is £64.00"), one for a new value ("went from $80 to
    $95"); less for a unit price ("at $28", "$30 each", "$39.99 a month")."""
    before = [token.lower_ for token in doc[max(start - 4, 0) : start]]
    after = [token.lower_ for token in doc[end : end + 2]]
    hits = len(OUTCOME_BEFORE.intersection(before)) + len(OUTCOME_AFTER.intersection(after))
    score = 2 * hits + (1 if before[-1:] == ["to"] else 0)
    if after and after[0] in UNIT_AFTER:
        score -= 2
    if before and before[-1] in UNIT_BEFORE:
        score -= 1
    return score


def date_score(doc: Doc, start: int, value: date, received: date) -> int:
    """Anti-cues in the two tokens before, cues in the three before; a date already past
    is never the one asked for."""
    before = [token.lower_ for token in doc[max(start - 3, 0) : start]]
    if value < received:
        return -10
    if DATE_ANTI_CUES.intersection(before[-2:]) or ":" in before:
        return -2
    if DATE_STRONG_CUES.intersection(before):
        return 3
    return 1 if DATE_WEAK_CUES.intersection(before) else 0


def find_reason(doc: Doc) -> str | None:
    """The sentence of the new text (or else the subject) with the most complaint words.

    "We ordered 10 cases, you billed 100 cases ($2,340.00 instead of $234.00)."
    """
    columns = lexeme_columns(doc)
    concepts = columns[:, CONCEPT_COLUMN]
    complaint = (concepts == COMPLAINT_CONCEPTS[0]) | (concepts == COMPLAINT_CONCEPTS[1])
    if not complaint.any():  # most emails: nothing more to do
        return None
    area = regions(doc)
    offsets = token_offsets(doc)
    ends = np.isin(columns[:, NORM_COLUMN], SENTENCE_ENDS)
    sentence = np.cumsum(ends) - ends  # an end mark belongs to the sentence it ends
    in_body = (offsets >= area.subject_end) & (offsets < area.quoted_start)
    for region in (in_body, offsets < area.subject_end):
        hits = np.bincount(sentence[complaint & region])
        if hits.any():
            chosen = np.flatnonzero(sentence == hits.argmax())
            last = int(chosen[-1]) + 1
            end = int(offsets[last]) if last < len(offsets) else len(area.text)
            text = area.text[int(offsets[chosen[0]]) : end]
            return shorten(text, REASON_MAX_CHARS) or None
    return None


def shorten(text: str, limit: int) -> str:
    """`text` cut at a word boundary to fit `limit` characters, with "…" when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"
