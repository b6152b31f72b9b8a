"""The shared spaCy Language that both the classifier and the field extractor read.

It is `spacy.blank("en")` with changes made in one place: the tokenizer keeps ids, dates and
phone numbers such as "INV-2024-00123" or "2026-03-15" in one token; each lexeme's NORM
folds case, accents and digits ("Überweisung" -> "uberweisung", "INV-2024-00123" ->
"inv-0-0"); and each lexeme carries its concept from lexicon.toml. Lexeme attributes are
computed once per vocabulary entry, so all of this costs nothing per token.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import spacy
from spacy.attrs import NORM, SUFFIX
from spacy.language import Language
from spacy.util import compile_infix_regex

from classifiers.lexicon import concept_of

# spaCy splits "-" between digits ("10-4432" -> "10", "-", "4432"); ids and ISO dates must
# stay whole for the extractor's patterns and for the classifier's digit-folded norms.
_DIGIT_OPERATOR_INFIX = r"(?<=[0-9])[+\-\*^](?=[0-9-])"
# Ids with letters around the digits ("INV-CA-2218", "2026-FB-019", "2207-NW", "inv#7781")
# would still be split at a letter-hyphen; a token_match keeps them whole. Lowercase after
# the digits is left to the normal rules so that "$45/day" still splits.
ID_TOKEN = re.compile(
    r"(?:[A-Za-z]{1,6}[-/#.]?){0,2}\d+(?:[-/.'][0-9]+)*(?:-[A-Z]{1,3}(?:-\d+)?)*"
)
_DIGIT_RUN = re.compile(r"\d+")

# Lexeme attributes are the cheap place for per-word features, but spaCy has no free slot:
# SUFFIX (by default the last three letters, which nothing in this package reads) carries
# the word's lexicon concept instead. Only features.py reads it.
CONCEPT_ATTR = SUFFIX


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
    """Apply our tokenizer rule and lexeme norms; needed again after loading from disk.

    Lexeme getters are not saved with a pipeline, and lexemes made while loading (the
    tokenizer's special cases) were made with the default getter, so they are redone.
    """
    infixes = [rule for rule in nlp.Defaults.infixes or () if rule != _DIGIT_OPERATOR_INFIX]
    nlp.tokenizer.infix_finditer = compile_infix_regex(infixes).finditer
    nlp.tokenizer.token_match = ID_TOKEN.fullmatch
    nlp.vocab.lex_attr_getters[NORM] = fold_lexeme
    nlp.vocab.lex_attr_getters[CONCEPT_ATTR] = concept_lexeme
    for lexeme in nlp.vocab:
        lexeme.norm_ = fold_lexeme(lexeme.orth_)
        lexeme.suffix_ = concept_lexeme(lexeme.orth_)


def fold_lexeme(text: str) -> str:
    """Lowercase, strip accents, fold digit runs and addresses.

    "Überweisung" -> "uberweisung", "15/03/2026" -> "0/0/0", "1.250,00" -> "0.0,0",
    "ap@acme.com" -> "<email>", "https://x.example/pay" -> "<url>".
    """
    lowered = text.lower()
    if "@" in lowered and "." in lowered:
        return "<email>"
    if lowered.startswith(("http://", "https://", "www.")):
        return "<url>"
    if not lowered.isascii():
        decomposed = unicodedata.normalize("NFKD", lowered)
        lowered = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _DIGIT_RUN.sub("0", lowered) if any(c.isdigit() for c in lowered) else lowered


def concept_lexeme(text: str) -> str:
    """The lexicon concept of a word ("Winterpause" -> "@pause"), "" for most words."""
    folded = fold_lexeme(text)
    return concept_of(folded) if folded[:1].isalpha() or folded == "<email>" else ""
