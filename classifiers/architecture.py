"""The text categoriser's network, registered with spaCy so a saved pipeline can be loaded.

A bag of n-grams (features.py) feeding one sparse linear layer and a softmax: the same
shape as spaCy's TextCatBOW, which only reads case-sensitive ORTH, so it cannot see our
folded norms, lexicon concepts or negation scope.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from spacy.ml.models.textcat import resize_and_set_ref
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Logistic, Model, SparseLinear_v2, chain, resizable, softmax_activation
from thinc.layers.resizable import resize_linear_weighted
from thinc.types import Floats2d

from classifiers.features import FeatureSettings, doc_feature_keys

ARCHITECTURE = "billing_inbox.NgramBOW.v1"
# Same starting bias as spaCy's BOW: labels added later start out impossible, not equal.
_NEW_LABEL_BIAS = -5000


@registry.architectures(ARCHITECTURE)
def build_ngram_bow(
    exclusive_classes: bool,
    ngram_size: int = 2,
    negation_scope: int = 3,
    subject_features: bool = False,
    length: int = 262144,
    temperature: float = 1.0,
    nO: int | None = None,
) -> Model[list[Doc], Floats2d]:
    """Featurise -> hashed sparse linear -> temperature -> softmax (or logistic).

    The temperature only applies when predicting: below 1 it sharpens scores that the
    averaged, regularised weights leave too flat, so that a threshold such as 0.5 means
    "right about half the time or better" (fitted on cross-validated training mail).
    """
    settings = FeatureSettings(ngram_size, negation_scope, subject_features)
    sparse_linear = SparseLinear_v2(nO=nO, length=length)
    fill_defaults = {"b": _NEW_LABEL_BIAS, "W": 0}
    resizable_layer = resizable(
        sparse_linear, resize_layer=partial(resize_linear_weighted, fill_defaults=fill_defaults)
    )
    output = softmax_activation() if exclusive_classes else Logistic()
    model = chain(featurise_docs(settings), resizable_layer, at_prediction(temperature), output)
    if nO is not None:
        model.set_dim("nO", nO)
    model.set_ref("output_layer", sparse_linear)
    model.attrs["multi_label"] = not exclusive_classes
    model.attrs["resize_output"] = partial(resize_and_set_ref, resizable_layer=resizable_layer)
    return model


def at_prediction(temperature: float) -> Model:
    """Divide the scores by `temperature` when predicting; pass them through in training."""
    return Model("temperature", _temperature_forward, attrs={"temperature": temperature})


def _temperature_forward(model: Model, scores: Floats2d, is_train: bool):
    if is_train:
        return scores, lambda d_scores: d_scores
    temperature = model.attrs["temperature"]
    return scores / temperature, lambda d_scores: d_scores / temperature


def featurise_docs(settings: FeatureSettings) -> Model:
    """A layer from Docs to SparseLinear's (keys, values, lengths) input; nothing to learn."""
    # Plain values only: thinc serialises layer attrs with msgpack.
    attrs = {
        "ngram_size": settings.ngram_size,
        "negation_scope": settings.negation_scope,
        "subject_features": settings.subject_features,
    }
    return Model("billing_ngrams", _featurise_forward, attrs=attrs)


def _featurise_forward(model: Model, docs: list[Doc], is_train: bool):
    settings = FeatureSettings(
        model.attrs["ngram_size"], model.attrs["negation_scope"], model.attrs["subject_features"]
    )
    per_doc = [doc_feature_keys(doc, settings) for doc in docs]
    lengths = np.array([len(keys) for keys in per_doc], dtype="int32")
    keys = np.concatenate(per_doc) if per_doc else np.zeros(0, dtype="uint64")
    # Presence, not counts: a long email repeating a word is not more of that process.
    values = np.ones(len(keys), dtype="float32")
    return (keys, values, lengths), lambda d_output: []
