"""The shared spaCy Language that both the classifier and the field extractor read.

It is `spacy.blank("en")` with changes made in one place: the tokenizer keeps ids, dates and
phone numbers such as "INV-2024-00123" or "2026-03-15" in one token and has no special
cases; each lexeme's NORM folds case, accents and digits ("Überweisung" -> "uberweisung",
"INV-2024-00123" -> "inv-0-0"); and each lexeme carries its concept from lexicon.toml.
Lexeme attributes are computed once per vocabulary entry, so all of this costs nothing per
token; what costs is every new word, so attributes nobody reads are not computed.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import numpy as np
import spacy
from spacy.attrs import (
    IS_ALPHA,
    IS_ASCII,
    IS_BRACKET,
    IS_CURRENCY,
    IS_DIGIT,
    IS_LEFT_PUNCT,
    IS_LOWER,
    IS_QUOTE,
    IS_RIGHT_PUNCT,
    IS_STOP,
    IS_TITLE,
    IS_UPPER,
    LIKE_EMAIL,
    LIKE_NUM,
    LIKE_URL,
    NORM,
    PREFIX,
    SHAPE,
    SUFFIX,
)
from spacy.lang.lex_attrs import word_shape
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import compile_infix_regex

from classifiers.lexicon import concept_of

# spaCy splits "-" between digits ("10-4432" -> "10", "-", "4432"); ids and ISO dates must
# stay whole for the extractor's patterns and for the classifier's digit-folded norms.
_DIGIT_OPERATOR_INFIX = r"(?<=[0-9])[+\-\*^](?=[0-9-])"
# Ids with letters around the digits ("INV-CA-2218", "2026-FB-019", "2207-NW", "inv#7781")
# would still be split at a letter-hyphen; a token_match keeps them whole. Lowercase after
# the digits is left to the normal rules so that "$45/day" still splits.
ID_TOKEN = re.compile(r"(?:[A-Za-z]{1,6}[-/#.]?){0,2}\d+(?:[-/.'][0-9]+)*(?:-[A-Z]{1,3}(?:-\d+)?)*")
_DIGIT_RUN = re.compile(r"\d+")
# What str.isalnum() accepts: a word character that is not "_".
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")

# Lexeme attributes are the cheap place for per-word features, but spaCy has no free slot:
# SUFFIX (by default the last three letters, which nothing in this package reads) carries
# the word's lexicon concept instead, and PREFIX (the first letter) the extractor's word
# code (extract.py: its anchor word classes and two status bits).
CONCEPT_ATTR = SUFFIX
WORD_CODE_ATTR = PREFIX
# The columns of lexeme_columns(): classifier, extractor and reason finder read one array.
NORM_COLUMN, CONCEPT_COLUMN, WORD_CODE_COLUMN = 0, 1, 2
_LEXEME_COLUMNS = (NORM, CONCEPT_ATTR, WORD_CODE_ATTR)
SPACE_CONCEPT = "@space"
PUNCT_CONCEPT = "@punct"
# Every new word (an invoice number, a name, an address: several per email) gets all its
# lexeme attributes computed, at about half a microsecond each. Nothing in this package
# reads these, so they are not computed: on our Docs they read False.
UNUSED_LEXEME_ATTRS = (
    IS_STOP, LIKE_EMAIL, LIKE_NUM, LIKE_URL, IS_TITLE, IS_UPPER, IS_LOWER, IS_ASCII,
    IS_BRACKET, IS_QUOTE, IS_LEFT_PUNCT, IS_RIGHT_PUNCT, IS_CURRENCY, IS_DIGIT, IS_ALPHA,
)  # fmt: skip


def lexeme_columns(doc: Doc) -> np.ndarray:
    """NORM, CONCEPT and word code of each token (uint64, one row per token), read once:
    features.py, extract.py and selection.py all read these columns of the same Doc."""
    return doc_columns(doc, _LEXEME_COLUMNS)


def doc_columns(doc: Doc, attrs: tuple[int, ...]) -> np.ndarray:
    """`doc.to_array(attrs)`, read on the first call and kept on the Doc for the next.

    Doc.to_array costs per call and per value read, and several readers need the same
    columns of one Doc. Attributes written to a lexeme afterwards are not seen.
    """
    key = ("billing_inbox.columns", attrs)
    columns = doc.user_data.get(key)
    if columns is None:
        columns = doc.user_data[key] = doc.to_array(list(attrs))
    return columns


def create_nlp() -> Language:
    """A new blank English pipeline prepared for billing mail (no trained components)."""
    nlp = spacy.blank("en")
    prepare_nlp(nlp)
    return nlp


@functools.cache
def shared_nlp() -> Language:
    """One tokenizer-only pipeline per process, for callers that pass plain text."""
    return create_nlp()


def prepare_nlp(nlp: Language) -> None:
    """Apply our tokenizer rules and lexeme attributes; needed again after loading from disk.

    Lexeme getters are not saved with a pipeline, and lexemes made while loading (the
    tokenizer's special cases) were made with the default getter, so they are redone.
    """
    infixes = [rule for rule in nlp.Defaults.infixes or () if rule != _DIGIT_OPERATOR_INFIX]
    nlp.tokenizer.infix_finditer = compile_infix_regex(infixes).finditer
    nlp.tokenizer.token_match = ID_TOKEN.fullmatch
    # English special cases ("don't" -> "do", "n't"; "Mr."; emoticons) make spaCy run a
    # phrase matcher over every Doc: 40% of tokenising time, for splits we do not need.
    # Contractions stay whole ("don't"), and the lexicon knows them as negations.
    nlp.tokenizer.rules = {}
    nlp.vocab.lex_attr_getters[NORM] = fold_lexeme
    nlp.vocab.lex_attr_getters[CONCEPT_ATTR] = concept_lexeme
    nlp.vocab.lex_attr_getters[SHAPE] = shape_of
    for attr in UNUSED_LEXEME_ATTRS:
        nlp.vocab.lex_attr_getters.pop(attr, None)
    for lexeme in nlp.vocab:
        lexeme.norm_ = fold_lexeme(lexeme.orth_)
        lexeme.suffix_ = concept_lexeme(lexeme.orth_)


@functools.lru_cache(maxsize=4096)
def fold_lexeme(text: str) -> str:
    """Lowercase, strip accents, fold digit runs, addresses and curly apostrophes.

    "Überweisung" -> "uberweisung", "15/03/2026" -> "0/0/0", "1.250,00" -> "0.0,0",
    "ap@acme.com" -> "<email>", "https://x.example/pay" -> "<url>".
    """
    lowered = text.lower().replace("’", "'")
    if "@" in lowered and "." in lowered:
        return "<email>"
    if lowered.startswith(("http://", "https://", "www.")):
        return "<url>"
    if not lowered.isascii():
        decomposed = unicodedata.normalize("NFKD", lowered)
        lowered = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _DIGIT_RUN.sub("0", lowered) if _DIGIT_RUN.search(lowered) else lowered


# A new word's shape is read twice, for its SHAPE and for the extractor's word classes.
# (spaCy's letter-by-letter word_shape was as fast as a translate-and-regex version.)
shape_of = functools.lru_cache(maxsize=1024)(word_shape)
"""spaCy's word shape ("INV-2026" -> "XXX-dddd"), remembered for the words just seen."""


def concept_lexeme(text: str) -> str:
    """The lexicon concept of a word ("Winterpause" -> "@pause"), "" for most words.

    Whitespace and punctuation get "@space" and "@punct", so that one column of a Doc
    tells the classifier what to skip and where a negation's scope ends.
    """
    if text.isspace():
        return SPACE_CONCEPT
    if not _LETTER_OR_DIGIT.search(text):
        return PUNCT_CONCEPT
    folded = fold_lexeme(text)
    return concept_of(folded) if folded[:1].isalpha() or folded == "<email>" else ""
