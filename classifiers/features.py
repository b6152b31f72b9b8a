"""What the text categoriser sees: hashed n-grams of folded words and of their concepts.

Per Doc, over the subject and new text (not quoted history), with numpy: unigrams and
bigrams of the folded token norms; the lexicon concept of each word ("aussetzen" ->
"@pause") as unigrams and as bigrams of consecutive concepts; words after a negation ("do
NOT suspend") turned into different features from the same words outside one. Training,
prediction and explanations all go through doc_feature_keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from spacy.strings import hash_string
from spacy.tokens import Doc
from thinc.backends.numpy_ops import NumpyOps

from classifiers.input_text import regions, token_offsets
from classifiers.language import (
    CONCEPT_COLUMN,
    NORM_COLUMN,
    PUNCT_CONCEPT,
    SPACE_CONCEPT,
    lexeme_columns,
)

# XOR masks give a negated or subject feature a key of its own without a string lookup.
NEGATED_MASK = np.uint64(0x9E3779B97F4A7C15)
SUBJECT_MASK = np.uint64(0xC2B2AE3D27D4EB4F)
# Lexicon concepts that open a negation's scope ("not", "nicht", "jamais") and end it early
# ("but", "just", "sondern").
NEGATION = np.uint64(hash_string("@negation"))
CONTRAST = np.uint64(hash_string("@contrast"))
SPACE = np.uint64(hash_string(SPACE_CONCEPT))
PUNCT = np.uint64(hash_string(PUNCT_CONCEPT))

_OPS = NumpyOps()


@dataclass(frozen=True)
class FeatureSettings:
    """How features are built; stored in the pipeline config so training and use agree."""

    ngram_size: int = 2
    negation_scope: int = 3
    subject_features: bool = False


def doc_feature_keys(doc: Doc, settings: FeatureSettings) -> np.ndarray:
    """The distinct feature keys of one Doc's subject and new text (sorted uint64)."""
    columns = lexeme_columns(doc)
    words, concepts = columns[:, NORM_COLUMN], columns[:, CONCEPT_COLUMN]
    kept = concepts != SPACE
    area = regions(doc)
    if area.quoted_start < len(area.text) or settings.subject_features:
        offsets = token_offsets(doc)
        kept &= offsets < area.quoted_start
    # Words with a lexicon concept, told by their concept before negation marks it.
    has_concept = kept & (concepts != 0) & (concepts != PUNCT)
    if settings.negation_scope:
        negated = negated_positions(concepts, settings.negation_scope)
        if negated.size:
            words, concepts = words.copy(), concepts.copy()
            words[negated] ^= NEGATED_MASK
            concepts[negated] ^= NEGATED_MASK
    tagged = concepts[has_concept]
    # One concatenation of every n-gram list: each numpy call costs about a microsecond.
    keys = [*ngrams(words[kept], settings.ngram_size), *ngrams(tagged, 2)]
    if settings.subject_features:
        subject = words[kept & (offsets < area.subject_end)]
        keys += [grams ^ SUBJECT_MASK for grams in ngrams(subject, settings.ngram_size)]
    return distinct(np.concatenate(keys))


def negated_positions(concepts: np.ndarray, scope: int) -> np.ndarray:
    """Indices of words inside a negation's scope: up to `scope` words after a cue, ending
    early at punctuation, a contrast word or another cue ("please do NOT suspend us, we
    just need ..." marks "suspend" and "us")."""
    cues = (concepts == NEGATION).nonzero()[0]
    if cues.size == 0:
        return cues
    stops = (concepts == PUNCT) | (concepts == CONTRAST) | (concepts == NEGATION)
    spaces = concepts == SPACE
    marked: list[int] = []
    for cue in cues.tolist():
        words = 0
        for position in range(cue + 1, len(concepts)):
            if stops[position] or words == scope:
                break
            if not spaces[position]:
                marked.append(position)
                words += 1
    return np.array(marked, dtype="int64")


def distinct(keys: np.ndarray) -> np.ndarray:
    """Sorted keys without repeats; np.unique does the same at twice the cost here."""
    keys.sort()
    if len(keys) < 2:
        return keys
    first = np.empty(len(keys), dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    return keys[first]


def ngrams(unigrams: np.ndarray, ngram_size: int) -> list[np.ndarray]:
    """The unigram keys, then the hashed 2..n-grams, like spaCy's extract_ngrams."""
    unigrams = np.ascontiguousarray(unigrams, dtype="uint64")
    grams = [unigrams]
    for size in range(2, min(ngram_size, len(unigrams)) + 1):
        grams.append(_OPS.ngrams(size, unigrams))
    return grams
