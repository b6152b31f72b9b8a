"""The shared spaCy Language that both the classifier and the field extractor read.

It is `spacy.blank("en")` with two changes made in one place: the tokenizer keeps ids,
dates and phone numbers such as "INV-2024-00123" or "2026-03-15" in one token, and each
lexeme's NORM folds case, accents and digits ("Überweisung" -> "uberweisung",
"INV-2024-00123" -> "inv-0-0"). Lexeme attributes are computed once per vocabulary entry,
so the folding costs nothing per token.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import spacy
from spacy.attrs import NORM, PREFIX
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import compile_infix_regex

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

SUBJECT_CHARS_KEY = "billing_inbox.subject_chars"
MAX_TEXT_CHARS = 1500
SUBJECT_SEPARATOR = "\n\n"


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
    nlp.vocab.lex_attr_getters[PREFIX] = stem_lexeme
    for lexeme in nlp.vocab:
        lexeme.norm_ = fold_lexeme(lexeme.orth_)
        lexeme.prefix_ = stem_lexeme(lexeme.orth_)


STEM_CHARS = [5]


def stem_lexeme(text: str) -> str:
    folded = fold_lexeme(text)
    n = STEM_CHARS[0]
    return folded[:n] if folded.isalpha() and len(folded) > n else folded


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


def make_input_doc(nlp: Language, subject: str, text: str) -> Doc:
    """Tokenise subject and new text as one Doc, remembering where the subject ends.

    Only the first MAX_TEXT_CHARS of the text are kept (cut at a space): the request is
    almost always near the top, and the tail (signatures, disclaimers) costs time.
    """
    subject = " ".join(subject.split())
    body = truncate_text(text.strip(), MAX_TEXT_CHARS)
    joined = f"{subject}{SUBJECT_SEPARATOR}{body}" if subject else body
    doc = nlp.make_doc(joined)
    doc.user_data[SUBJECT_CHARS_KEY] = len(subject)
    return doc


def truncate_text(text: str, limit: int) -> str:
    """At most `limit` characters, ending at whitespace when there is any in the last 40."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", limit - 40, limit)
    return text[: cut if cut > 0 else limit]


def subject_token_count(doc: Doc) -> int:
    """How many leading tokens of a make_input_doc() Doc belong to the subject."""
    subject_chars = doc.user_data.get(SUBJECT_CHARS_KEY, 0)
    count = 0
    for token in doc:
        if token.idx >= subject_chars:
            break
        count += 1
    return count
