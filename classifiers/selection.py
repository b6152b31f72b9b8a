"""Choosing one value when a field matched several times, and finding the complaint.

The rules are few and written to be explained to a customer-service lead:
- amounts: the one next to words like "overcharged", "difference", "too much", "extra",
  "refund" wins; a unit price ("$30 each", "$45/day", "$0.12 per kWh") loses; else the first;
- requested dates: one after "until", "by", "to", "from" wins, one after "due", "dated",
  "issued" loses, and a date already past never counts; else the first;
- reason: the sentence with the most complaint words ("wrong", "twice", "never ordered").
"""

from __future__ import annotations

import re
from datetime import date

from spacy.tokens import Doc

OUTCOME_CUES = frozenset(
    "overcharged overcharge overbilled overpaid difference too over extra refund credit "
    "credited total higher more correct reduce differenz zuviel viel écart trop diferencia reembolso "
    "devolución gutschrift".split()
)
UNIT_CUES = frozenset("/ per each pro por par x".split())
DATE_CUES = frozenset(
    "until till til by to through before from starting effective after on extend extended "
    "moved move postpone pay paid bis zum ab hasta desde para jusqu'au jusqu dès au partir "
    "el am".split()
)
DATE_ANTI_CUES = frozenset(
    "due dated issued since sent received invoiced billed charged fällig vom emitida datée "
    "expired ago".split()
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
    """Higher for the disputed amount: outcome words within five tokens before or three
    after; lower for a unit price."""
    before = {token.lower_ for token in doc[max(start - 5, 0) : start]}
    after = [token.lower_ for token in doc[end : end + 3]]
    score = 3 if (before | set(after)) & OUTCOME_CUES else 0
    if after and (after[0] in UNIT_CUES or after[:2] in (["a", "month"], ["an", "hour"])):
        score -= 2
    return score


def date_score(doc: Doc, start: int, value: date, received: date) -> int:
    """Cue words in the three tokens before; a past date is never the requested one."""
    before = {token.lower_ for token in doc[max(start - 3, 0) : start]}
    if value < received:
        return -10
    if before & DATE_ANTI_CUES:
        return -2
    return 2 if before & DATE_CUES else 0


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
