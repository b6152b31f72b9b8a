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
import re
from datetime import date, datetime

import numpy as np
from spacy.lexeme import Lexeme
from spacy.matcher import Matcher
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from classifiers.fields import ExtractedFields
from classifiers.input_text import regions
from classifiers.language import (
    WORD_CODE_ATTR,
    WORD_CODE_COLUMN,
    fold_lexeme,
    lexeme_columns,
    shape_of,
    shared_nlp,
)
from classifiers.patterns import FIRST_FLAG, RULES, WORD_CLASSES, Rule, word
from classifiers.reading import RuleMatch, read_amount, read_date, read_identifier
from classifiers.selection import choose_fields

__all__ = ["ExtractedFields", "FieldExtractor", "RuleMatch", "extract_fields"]

# Like the classifier's concepts, each word's standing with the extractor lives in a lexeme
# attribute nothing else reads (language.WORD_CODE_ATTR), as one number, its "word code":
# bit 0 says the word has a digit, bit 1 that its word-class flags are still pending (see
# FLAGS_PENDING), and the bits from ANCHOR_SHIFT up which anchor word classes it belongs to,
# one bit per class ("$" is currency_after and currency_mark). One column of a Doc then
# tells where the anchors are, which rules they start, and where the digits are.
HAS_DIGIT = 1
# A new word's word-class flags are set when a Doc that holds it is scanned, not when the
# tokenizer meets it: as lexeme getters they were 20 Python calls per new word, 40% of
# its cost, and most new words (invoice numbers, amounts, names) are never scanned.
FLAGS_PENDING = 2
ANCHOR_SHIFT = 2
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
            for span in scanner.find(doc, start, end)
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
        codes = lexeme_columns(doc)[:, WORD_CODE_COLUMN]
        marked = np.flatnonzero(codes)  # anchors, digits and pending flags: a dozen or so
        anchors, digits, pending = [], [], []
        for position, code in zip(marked.tolist(), codes[marked].tolist(), strict=True):
            if code >> ANCHOR_SHIFT:
                anchors.append((position, code >> ANCHOR_SHIFT))
            if code & HAS_DIGIT:
                digits.append(position)
            if code & FLAGS_PENDING:
                pending.append(position)
        if not anchors:
            return []
        for position in pending:
            set_word_class_flags(doc[position].lex)
        windows: dict[int, list[tuple[int, int]]] = {}
        for position, anchor_bits in anchors:
            scanner = self._scanners.get(anchor_bits) or self._new_scanner(anchor_bits)
            start, end = max(position - scanner.before, 0), position + scanner.after
            if scanner.needs_digit:
                first_digit = bisect.bisect_left(digits, start)
                if first_digit == len(digits) or digits[first_digit] >= end:
                    continue
            ranges = windows.setdefault(anchor_bits, [])
            if ranges and start <= ranges[-1][1]:
                ranges[-1] = (ranges[-1][0], end)
            else:
                ranges.append((start, end))
        return [
            (self._scanners[anchor_bits], start, min(end, len(doc)))
            for anchor_bits, ranges in windows.items()
            for start, end in ranges
        ]

    def _new_scanner(self, anchor_bits: int) -> Scanner:
        """The Scanner for a combination of anchor classes not seen before."""
        rules = [rule for rule in RULES.values() if anchor_bits & _ANCHOR_BITS[rule.anchor]]
        self._scanners[anchor_bits] = Scanner(self._vocab, rules)
        return self._scanners[anchor_bits]


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
        # Rules that are their anchor word alone ("INV-2024-00123", "15/03/2026") match
        # every token of their windows, which hold nothing but anchors: no Matcher needed.
        whole_word = all(
            rule.patterns() == [[word(rule.anchor)]] and (rule.before, rule.after) == (0, 1)
            for rule in rules
        )
        self.whole_word_rules = tuple(rule.name for rule in rules) if whole_word else ()

    def find(self, doc: Doc, start: int, end: int) -> list[Span]:
        """The matches in doc[start:end], one Span per match, labelled with its rule."""
        if self.whole_word_rules:
            return [
                Span(doc, position, position + 1, label=rule)
                for position in range(start, end)
                for rule in self.whole_word_rules
            ]
        return self.matcher(doc[start:end], as_spans=True)


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
    """Store each word's word code in WORD_CODE_ATTR and each word class of patterns.py it
    belongs to as a lexeme flag; new words get their flags when first scanned (see
    FLAGS_PENDING). Computed once per vocabulary entry; idempotent."""
    vocab.lex_attr_getters[WORD_CODE_ATTR] = _new_word_code
    for lexeme in vocab:
        lexeme.prefix = _new_word_code(lexeme.orth_)
        set_word_class_flags(lexeme)


def set_word_class_flags(lexeme: Lexeme) -> None:
    """Set the flags of the word classes `lexeme` belongs to, and clear FLAGS_PENDING."""
    for name in word_classes_of(lexeme.orth_):
        lexeme.set_flag(_flag(name), True)
    lexeme.prefix &= ~FLAGS_PENDING


def _new_word_code(text: str) -> int:
    """The word code of a word new to the vocabulary: its anchor bits, HAS_DIGIT if it has
    a digit, and FLAGS_PENDING."""
    anchor_bits = 0
    for name in word_classes_of(text) & _ANCHOR_CLASSES:
        anchor_bits |= _ANCHOR_BITS[name]
    has_digit = HAS_DIGIT if _DIGIT.search(text) else 0
    return anchor_bits << ANCHOR_SHIFT | FLAGS_PENDING | has_digit


@functools.lru_cache(maxsize=4096)
def word_classes_of(text: str) -> frozenset[str]:
    """The word classes of patterns.py a word belongs to. Cached because a new word's
    word code asks first and its flags ask again when it is scanned."""
    norm = fold_lexeme(text)
    classes = (
        _CLASSES_BY_LOWER.get(text.lower(), _NO_CLASSES)
        | _CLASSES_BY_NORM.get(norm, _NO_CLASSES)
        | _CLASSES_BY_SHAPE.get(shape_of(text), _NO_CLASSES)
    )
    patterned = [name for name, pattern in _NORM_PATTERNS if pattern.search(norm)]
    return classes.union(patterned) if patterned else classes


def _classes_by_value(compared: str) -> dict[str, frozenset[str]]:
    """value -> the word classes it belongs to, for the classes that compare `compared`
    ("lower", "norm" or "shape"): three lookups per new word instead of twenty."""
    classes: dict[str, set[str]] = {}
    for name, (what, values) in WORD_CLASSES.items():
        for value in values if what == compared else ():
            classes.setdefault(value, set()).add(name)
    return {value: frozenset(names) for value, names in classes.items()}


_NO_CLASSES: frozenset[str] = frozenset()
_CLASSES_BY_LOWER = _classes_by_value("lower")
_CLASSES_BY_NORM = _classes_by_value("norm")
_CLASSES_BY_SHAPE = _classes_by_value("shape")
_NORM_PATTERNS = [
    (name, re.compile("|".join(values)))
    for name, (compared, values) in WORD_CLASSES.items()
    if compared == "norm_pattern"
]
_ANCHOR_CLASSES = frozenset(rule.anchor for rule in RULES.values())
_ANCHOR_BITS = {name: 1 << number for number, name in enumerate(sorted(_ANCHOR_CLASSES))}
_DIGIT = re.compile(r"\d")
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
