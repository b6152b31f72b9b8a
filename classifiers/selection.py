"""Choosing one value when a field matched several times, and finding the complaint.

The rules are few and written to be explained to a customer-service lead:
- amounts: the one next to the most words like "overcharged", "difference", "too much",
  "extra", "refund", "total" wins; a unit price ("$30 each", "$45/day", "$0.12 per kWh")
  loses; else the first;
- requested dates: one after "until", "by", "to", "from" wins over one after "on", one
  right after "due", "dated", "issued" loses, a date already past never counts; else the
  first;
- reason: the sentence with the most complaint words ("wrong", "twice", "never ordered").
"""

from __future__ import annotations

import re
from datetime import date

from spacy.tokens import Doc

# Words before an amount that make it the disputed one: "overcharged $210", "refund the
# extra $1,200", "the difference is 450,00 EUR", "correct by $300", "= $135.00".
OUTCOME_BEFORE = frozenset(
    ["overcharged", "overcharge", "overbilled", "overpaid", "difference", "extra", "refund", "refunded", "credit", "total", "correct", "reduce", "=", "so", "differenz", "beträgt", "écart", "représente", "diferencia", "reembolso", "gutschrift"]
)
# ... and after it: "$426.00 too much", "£100 over", "£118.40 higher", "$396.00 to be credited".
OUTCOME_AFTER = frozenset(["too", "over", "more", "higher", "extra", "difference", "credited", "zuviel"])
# A unit price is not the amount in question: "$30 each", "$45/day", "$0.12 per kWh".
UNIT_AFTER = frozenset(["/", "per", "each", "pro", "por", "par", "x"])
UNIT_BEFORE = frozenset(["at", "rate"])
# Words before a date that make it the one asked for: "until 8 April", "from 13 April",
# "moved to March 31", "ab dem 1. September", "du 1er octobre". "on" counts for less:
# "closes on October 12 ... suspend from the 13th".
DATE_STRONG_CUES = frozenset(
    "until till til by to through before from starting effective extend extended moved "
    "move postpone pushed bis ab vom zum hasta desde jusqu'au jusqu au du dès partir".split()
)
DATE_WEAK_CUES = frozenset("on am el le pay settle".split())
# Right before a date, these make it a fact, not a request: "due on 24 December",
# "dated 15/03/2026", "paid 12 February", "Date: Wed, Mar 11".
DATE_ANTI_CUES = frozenset(
    "due dated issued since sent received invoiced billed charged paid fällig emitida "
    "datée expired ago : date".split()
)
COMPLAINT_CUES = re.compile(
    r"\b(?:wrong|incorrect(?:ly)?|overcharg\w*|overbill\w*|twice|double|duplicate\w*|mistake|"
    r"error|never|instead of|should (?:be|have|not)|too much|not (?:ordered|received|used)|"
    r"still (?:charg|bill)\w*|cancel+ed|refund|falsch\w*|doppelt\w*|fehler\w*|zu viel|"
    r"incorrect[oa]|duplicad[oa]|dos veces|err(?:eur|one|oné)\w*|deux fois|nunca|jamais)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*")
REASON_MAX_CHARS = 200


def amount_score(doc: Doc, start: int, end: int) -> int:
    """Two points per outcome word up to four tokens before or two after ("so we have £20.00
    too much" beats "the total VAT is £64.00"), one for a new value ("went from $80 to
    $95"); less for a unit price ("at $28", "$30 each", "$39.99 a month")."""
    before = [token.lower_ for token in doc[max(start - 4, 0) : start]]
    after = [token.lower_ for token in doc[end : end + 2]]
    hits = len(OUTCOME_BEFORE.intersection(before)) + len(OUTCOME_AFTER.intersection(after))
    score = 2 * hits + (1 if before[-1:] == ["to"] else 0)
    if after and (after[0] in UNIT_AFTER or after[0] in ("a", "an")):
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
    if DATE_ANTI_CUES.intersection(before[-2:]):
        return -2
    if DATE_STRONG_CUES.intersection(before):
        return 3
    return 1 if DATE_WEAK_CUES.intersection(before) else 0


def find_reason(text: str) -> str | None:
    """The sentence that says what is wrong, at most REASON_MAX_CHARS characters.

    "We ordered 10 cases, you billed 100 cases ($2,340.00 instead of $234.00)."
    """
    if not COMPLAINT_CUES.search(text):
        return None
    best, best_hits = None, 0
    for sentence in _SENTENCE_END.split(text):
        hits = len(COMPLAINT_CUES.findall(sentence))
        if hits > best_hits:
            best, best_hits = sentence.strip(), hits
    return None if best is None else shorten(best, REASON_MAX_CHARS)


def shorten(text: str, limit: int) -> str:
    """`text` cut at a word boundary to fit `limit` characters, with "…" when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"
