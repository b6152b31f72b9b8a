"""What the text categoriser sees: hashed n-grams of folded words and of their concepts.

Per Doc, over the subject and new text (not quoted history), with numpy: unigrams and bigrams of the folded token norms; the lexicon concept
of each word ("aussetzen" -> "@pause") as unigrams and as bigrams of consecutive concepts;
words after a negation ("do NOT suspend") turned into different features from the same
words outside one. Whitespace tokens are dropped. Training, prediction and explanations
all go through doc_feature_keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from spacy.attrs import IDX, IS_ALPHA, IS_PUNCT, IS_SPACE, LOWER, NORM
from spacy.strings import hash_string
from spacy.tokens import Doc
from thinc.backends.numpy_ops import NumpyOps

from classifiers.input_text import regions
from classifiers.language import CONCEPT_ATTR

# Cues that flip the meaning of the next few words, in the languages our customers write in.
NEGATION_CUES = (
    "not", "n't", "never", "no", "cannot", "dont", "without",
    "nicht", "kein", "keine", "keinen", "nie", "ohne",
    "ne", "pas", "jamais", "sans",
    "nunca", "sin",
)  # fmt: skip
# Words that end a negation's scope: "not X but Y", "not X, we just need Y".
SCOPE_ENDS = (
    "but", "just", "only", "instead", "rather", "however", "and",
    "aber", "sondern", "nur", "pero", "sino", "solo", "mais", "seulement",
)  # fmt: skip

# XOR masks give a negated or subject feature a key of its own without a string lookup.
NEGATED_MASK = np.uint64(0x9E3779B97F4A7C15)
SUBJECT_MASK = np.uint64(0xC2B2AE3D27D4EB4F)

_CUE_KEYS = np.array([hash_string(cue) for cue in NEGATION_CUES], dtype="uint64")
_SCOPE_END_KEYS = np.array([hash_string(word) for word in SCOPE_ENDS], dtype="uint64")
_OPS = NumpyOps()
_COLUMNS = [NORM, CONCEPT_ATTR, LOWER, IS_ALPHA, IS_PUNCT, IS_SPACE, IDX]


@dataclass(frozen=True)
class FeatureSettings:
    """How features are built; stored in the pipeline config so training and use agree."""

    ngram_size: int = 2
    negation_scope: int = 3
    subject_features: bool = False


def doc_feature_keys(doc: Doc, settings: FeatureSettings) -> np.ndarray:
    """All feature keys of one Doc's subject and new text (uint64; repeats allowed)."""
    columns = doc.to_array(_COLUMNS)
    area = regions(doc)
    words, concepts = columns[:, 0].copy(), columns[:, 1].copy()
    if settings.negation_scope:
        negated = negated_positions(columns[:, 2], columns[:, 3], columns[:, 4], settings)
        words[negated] ^= NEGATED_MASK
        concepts[negated] ^= NEGATED_MASK
    kept = (columns[:, 5] == 0) & (columns[:, 6] < area.quoted_start)
    concepts = concepts[kept & (columns[:, 1] != 0)]
    keys = [ngram_keys(words[kept], settings.ngram_size), ngram_keys(concepts, 2)]
    if settings.subject_features:
        subject = words[kept & (columns[:, 6] < area.subject_end)]
        keys.append(ngram_keys(subject, settings.ngram_size) ^ SUBJECT_MASK)
    return np.concatenate(keys)


def negated_positions(
    lower: np.ndarray, is_alpha: np.ndarray, is_punct: np.ndarray, settings: FeatureSettings
) -> np.ndarray:
    """Indices of words inside a negation's scope: up to N words after a cue, stopping early
    at punctuation or a contrast word ("please do NOT suspend us, we just need ..." marks
    "suspend" and "us")."""
    cues = np.flatnonzero(np.isin(lower, _CUE_KEYS))
    if cues.size == 0:
        return cues
    stops = (is_punct != 0) | np.isin(lower, _SCOPE_END_KEYS) | np.isin(lower, _CUE_KEYS)
    marked: list[int] = []
    for cue in cues.tolist():
        words = 0
        for position in range(cue + 1, len(lower)):
            if stops[position] or words == settings.negation_scope:
                break
            if is_alpha[position]:
                marked.append(position)
                words += 1
    return np.array(marked, dtype="int64")


def ngram_keys(unigrams: np.ndarray, ngram_size: int) -> np.ndarray:
    """Unigram keys followed by the hashed 2..n-grams, like spaCy's extract_ngrams."""
    unigrams = np.ascontiguousarray(unigrams, dtype="uint64")
    grams = [unigrams]
    for size in range(2, ngram_size + 1):
        if len(unigrams) >= size:
            grams.append(np.asarray(_OPS.ngrams(size, unigrams), dtype="uint64"))
    return np.concatenate(grams)
