"""Field extraction: the rule patterns run over a Doc, matches become ExtractedFields.

The classifier hands over the Doc it has already tokenised, so an email is tokenised once.
Scanning is the costly part, so the Matcher only visits short windows around anchor words
(an invoice word, a currency mark, a month...) that also hold a digit, found with one numpy
pass over lexeme attributes. Every accepted match is kept as a RuleMatch so `--explain` can
show what found what.
"""

from __future__ import annotations

import bisect
import functools
from datetime import date, datetime

import numpy as np
from spacy.attrs import LANG, PREFIX
from spacy.lexeme import Lexeme
from spacy.matcher import Matcher
from spacy.tokens import Doc
from spacy.vocab import Vocab

from classifiers.fields import ExtractedFields
from classifiers.input_text import regions
from classifiers.language import fold_lexeme, shape_of, shared_nlp
from classifiers.patterns import FIRST_FLAG, RULES, WORD_CLASSES, Rule
from classifiers.reading import RuleMatch, read_amount, read_date, read_identifier
from classifiers.selection import choose_fields

__all__ = ["ExtractedFields", "FieldExtractor", "RuleMatch", "extract_fields"]

# Like the classifier's concepts (language.py), the anchor word classes of a word live in
# a lexeme attribute nothing else reads: PREFIX (by default the first letter) holds them as
# one key, "currency_after+currency_mark" for "$". One column of a Doc then gives both
# where the anchors are and which rules they start.
ANCHOR_ATTR = PREFIX
# LANG (one language here, so nothing reads it) holds two bits of each word's status.
STATUS_ATTR = LANG
HAS_DIGIT = 1
# A new word's word-class flags are set when a Doc that holds it is scanned, not when the
# tokenizer meets it: as lexeme getters they were 20 Python calls per new word, 40% of
# its cost, and most new words (invoice numbers, amounts, names) are never scanned.
FLAGS_PENDING = 2
# When two matches overlap, the longer wins; at equal length, this order: "500 USD" after
# "invoice" is an amount, not invoice number 500.
_FIELD_PRIORITY = {"amount": 0, "requested_date": 1, "invoice_number": 2, "account_number": 3}


class FieldExtractor:
    """The compiled patterns for one vocabulary; build once, use for many Docs."""

    def __init__(self, vocab: Vocab) -> None:
        add_word_class_flags(vocab)
        self._vocab = vocab
        self._scanners: dict[int, Scanner] = {}

    def extract(self, doc: Doc, received_at: datetime, with_reason: bool = True) -> ExtractedFields:
        """The fields of one Doc (selection.py says how one value per field is chosen).

        `with_reason=False` skips the search for the complaint sentence, for callers that
        know the email is no dispute.
        """
        received = received_at.date()
        return choose_fields(doc, self.find_matches(doc, received), received, with_reason)

    def find_matches(self, doc: Doc, received: date) -> list[RuleMatch]:
        """Every readable match in text order; of overlapping ones only the best is kept."""
        spans = [
            span
            for scanner, start, end in self.anchor_windows(doc)
            for span in scanner.matcher(doc[start:end], as_spans=True)
        ]
        quoted_start = regions(doc).quoted_start
        amounts = [read_amount(s, quoted_start) for s in spans if _field(s.label_) == "amount"]
        currencies = {match.currency for match in amounts if match is not None}
        # Day-month unless the email is in US dollars only; see dates.py.
        day_first = bool(currencies - {"USD", None}) or "USD" not in currencies
        candidates = [match for match in amounts if match is not None]
        for span in spans:
            field = _field(span.label_)
            if field in ("invoice_number", "account_number"):
                candidates.append(read_identifier(span, field, quoted_start))
            elif field == "requested_date" and span.start_char < quoted_start:
                candidates.append(read_date(span, received, day_first))
        candidates = [match for match in candidates if match is not None]
        if len(candidates) < 2:
            return candidates
        return sorted(_without_overlaps(candidates), key=lambda match: match.start)

    def anchor_windows(self, doc: Doc) -> list[tuple[Scanner, int, int]]:
        """(scanner, start, end) token ranges where some rule can match: a few short
        stretches per email, merged per scanner."""
        columns = doc.to_array([ANCHOR_ATTR, STATUS_ATTR])
        positions = np.flatnonzero(columns[:, 0])
        if not positions.size:
            return []
        digits = np.flatnonzero(columns[:, 1] & HAS_DIGIT).tolist()
        for pending in np.flatnonzero(columns[:, 1] & FLAGS_PENDING).tolist():
            set_word_class_flags(doc[pending].lex)
        windows: dict[int, list[tuple[int, int]]] = {}
        for position, key in zip(positions.tolist(), columns[positions, 0].tolist(), strict=True):
            scanner = self._scanners.get(key) or self._new_scanner(key)
            start, end = max(position - scanner.before, 0), position + scanner.after
            if scanner.needs_digit:
                first_digit = bisect.bisect_left(digits, start)
                if first_digit == len(digits) or digits[first_digit] >= end:
                    continue
            ranges = windows.setdefault(key, [])
            if ranges and start <= ranges[-1][1]:
                ranges[-1] = (ranges[-1][0], end)
            else:
                ranges.append((start, end))
        return [
            (self._scanners[key], start, min(end, len(doc)))
            for key, ranges in windows.items()
            for start, end in ranges
        ]

    def _new_scanner(self, key: int) -> Scanner:
        """The Scanner for an anchor key not seen before."""
        classes = set(self._vocab.strings[key].split("+"))
        rules = [rule for rule in RULES.values() if rule.anchor in classes]
        self._scanners[key] = Scanner(self._vocab, rules)
        return self._scanners[key]


class Scanner:
    """A Matcher holding the rules one kind of anchor word can start, and how far around
    the anchor their matches reach."""

    def __init__(self, vocab: Vocab, rules: list[Rule]) -> None:
        # The schema check does not know lexeme flags (FLAG20...), which spaCy accepts.
        self.matcher = Matcher(vocab, validate=False)
        for rule in rules:
            self.matcher.add(rule.name, rule.patterns(), greedy="LONGEST")
        self.before = max(rule.before for rule in rules)
        self.after = max(rule.after for rule in rules)
        self.needs_digit = all(rule.needs_digit for rule in rules)


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


def add_word_class_flags(vocab: Vocab) -> None:
    """Store each word's anchor key in its ANCHOR_ATTR and each word class of patterns.py
    it belongs to as a lexeme flag; new words get their flags when first scanned (see
    FLAGS_PENDING). Computed once per vocabulary entry; idempotent."""
    vocab.lex_attr_getters[ANCHOR_ATTR] = _anchor_key
    vocab.lex_attr_getters[STATUS_ATTR] = _new_word_status
    for lexeme in vocab:
        lexeme.prefix_ = _anchor_key(lexeme.orth_)
        set_word_class_flags(lexeme)


def set_word_class_flags(lexeme: Lexeme) -> None:
    """Set the flags of the word classes `lexeme` belongs to, and clear FLAGS_PENDING."""
    text = lexeme.orth_
    for name in word_classes_of(text):
        lexeme.set_flag(_flag(name), True)
    lexeme.lang = _new_word_status(text) & ~FLAGS_PENDING


def _new_word_status(text: str) -> int:
    return FLAGS_PENDING | (HAS_DIGIT if any(char.isdigit() for char in text) else 0)


def _anchor_key(text: str) -> str:
    """ "currency_after+currency_mark" for "$": the anchor classes a word belongs to."""
    return "+".join(sorted(word_classes_of(text) & _ANCHOR_CLASSES))


@functools.lru_cache(maxsize=4096)
def word_classes_of(text: str) -> frozenset[str]:
    """The word classes of patterns.py a word belongs to. Cached because a new word's
    anchor key asks first and its flags ask again when it is scanned."""
    read = {"lower": text.lower(), "norm": fold_lexeme(text), "shape": shape_of(text)}
    return frozenset(
        name for name, (compared, values) in _CLASS_MEMBERS.items() if read[compared] in values
    )


_CLASS_MEMBERS = {
    name: (compared, frozenset(values)) for name, (compared, values) in WORD_CLASSES.items()
}
_ANCHOR_CLASSES = frozenset(rule.anchor for rule in RULES.values())
_FLAGS = {name: FIRST_FLAG + number for number, name in enumerate(WORD_CLASSES)}


def _flag(word_class: str) -> int:
    return _FLAGS[word_class]


def _field(rule_name: str) -> str:
    return RULES[rule_name].field


def _without_overlaps(matches: list[RuleMatch]) -> list[RuleMatch]:
    """Longest first, then by field priority, then earliest; drop anything overlapping."""
    ranked = sorted(matches, key=lambda m: (m.start - m.end, _FIELD_PRIORITY[m.field], m.start))
    taken: set[int] = set()
    kept = []
    for match in ranked:
        if taken.isdisjoint(range(match.start, match.end)):
            taken.update(range(match.start, match.end))
            kept.append(match)
    return kept
