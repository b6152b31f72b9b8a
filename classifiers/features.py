"""What the text categoriser sees: hashed n-grams of folded token norms.

Three things are added to a plain bag of n-grams, all computed with numpy per Doc:
words after a negation ("do NOT suspend") become different features from the same words
outside one, the subject's n-grams count once more as subject features, and whitespace
tokens are dropped. The same function serves training, prediction and explanations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from spacy.attrs import IS_ALPHA, IS_PUNCT, IS_SPACE, LOWER, NORM, PREFIX
from spacy.strings import hash_string
from spacy.tokens import Doc
from thinc.backends.numpy_ops import NumpyOps

from classifiers.language import subject_token_count

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

# XOR masks give a negated or subject token a key of its own without a string lookup.
NEGATED_MASK = np.uint64(0x9E3779B97F4A7C15)
SUBJECT_MASK = np.uint64(0xC2B2AE3D27D4EB4F)

_CUE_KEYS = np.array([hash_string(cue) for cue in NEGATION_CUES], dtype="uint64")
_SCOPE_END_KEYS = np.array([hash_string(word) for word in SCOPE_ENDS], dtype="uint64")
_OPS = NumpyOps()
STEM_MASK = np.uint64(0x165667B19E3779F9)
EXPERIMENT: dict = {}


@dataclass(frozen=True)
class FeatureSettings:
    """How n-grams are built; stored in the pipeline config so training and use agree."""

    ngram_size: int = 2
    negation_scope: int = 3
    subject_features: bool = True


def doc_feature_keys(doc: Doc, settings: FeatureSettings) -> np.ndarray:
    """All feature keys of one Doc (uint64, with repeats: a repeat counts twice)."""
    columns = doc.to_array([NORM, LOWER, IS_ALPHA, IS_PUNCT, IS_SPACE, PREFIX])
    norms = columns[:, 0].copy()
    if settings.negation_scope:
        negated = negated_positions(columns[:, 1], columns[:, 2], columns[:, 3], settings)
        norms[negated] ^= NEGATED_MASK
    kept = columns[:, 4] == 0
    keys = [_ngram_keys(norms[kept], settings.ngram_size)]
    if settings.subject_features:
        subject_tokens = subject_token_count(doc)
        subject = norms[:subject_tokens][kept[:subject_tokens]]
        keys.append(_ngram_keys(subject, settings.ngram_size) ^ SUBJECT_MASK)
    if EXPERIMENT.get("stems"):
        stems = columns[:, 5][kept & (columns[:, 2] != 0)]
        keys.append(stems ^ STEM_MASK)
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
    stops = (is_punct != 0) | np.isin(lower, _SCOPE_END_KEYS)
    marked: list[int] = []
    for cue in cues.tolist():
        words = 0
        for position in range(cue + 1, len(lower)):
            if stops[position] or words == settings.negation_scope:
                break
            if is_alpha[position] and lower[position] not in _CUE_KEYS:
                marked.append(position)
                words += 1
    return np.array(marked, dtype="int64")


def _ngram_keys(unigrams: np.ndarray, ngram_size: int) -> np.ndarray:
    """Unigram keys followed by the hashed 2..n-grams, like spaCy's extract_ngrams."""
    unigrams = np.ascontiguousarray(unigrams, dtype="uint64")
    grams = [unigrams]
    for size in range(2, ngram_size + 1):
        if len(unigrams) >= size:
            grams.append(np.asarray(_OPS.ngrams(size, unigrams), dtype="uint64"))
    return np.concatenate(grams)
