"""The process classifier: a spaCy text categoriser plus the field extractor on one Doc.

`train_model` (training.py) writes a pipeline to a folder; `ProcessClassifier.load` reads
it back and sorts new inquiries into catalog processes, falling back to "general" when
unsure. Each email is tokenised once; categoriser and extractor read the same Doc.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import spacy
from spacy.language import Language

from classifiers import architecture  # noqa: F401  (registers the network for spacy.load)
from classifiers.catalog import GENERAL, load_catalog
from classifiers.classification import Classification, ClassifierInput
from classifiers.explain import Explanation, explain_classification
from classifiers.extract import extractor_for
from classifiers.fields import ExtractedFields
from classifiers.input_text import make_input_doc
from classifiers.language import prepare_nlp
from classifiers.training import TEXTCAT, TrainingSettings, TrainReport, train_model

__all__ = [
    "Classification",
    "ClassifierInput",
    "ProcessClassifier",
    "TrainReport",
    "TrainingSettings",
    "train_model",
]

DEFAULT_THRESHOLD = 0.5
BATCH_SIZE = 256


# About 10-20 MB of strings before a reload (which takes well under a second).
MAX_NEW_STRINGS = 100_000


class ProcessClassifier:
    """A trained pipeline and its confidence threshold; build once, use for many emails."""

    def __init__(
        self, nlp: Language, threshold: float = DEFAULT_THRESHOLD, path: Path | None = None
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, not {threshold}")
        self.nlp = nlp
        self.threshold = threshold
        self.path = path
        self.extractor = extractor_for(nlp.vocab)
        self._catalog = load_catalog()
        self._loaded_strings = len(nlp.vocab.strings)

    @classmethod
    def load(cls, path: Path, threshold: float = DEFAULT_THRESHOLD) -> ProcessClassifier:
        """Read a pipeline written by train_model; refuses labels the catalog lacks."""
        nlp = spacy.load(path)
        prepare_nlp(nlp)
        unknown = set(nlp.get_pipe(TEXTCAT).labels) - set(load_catalog())
        if unknown:
            raise ValueError(f"model at {path} has labels not in the catalog: {sorted(unknown)}")
        return cls(nlp, threshold, path)

    def reload_if_grown(self, max_new_strings: int = MAX_NEW_STRINGS) -> bool:
        """Start from the saved model again once the vocabulary has grown too much.

        spaCy keeps every string it has seen (each invoice number, name, address), and its
        `memory_zone` would turn off the tokenizer cache (4x slower), so a long-running
        worker sheds the words it learned this way instead. Returns True if it reloaded.
        """
        grown = len(self.nlp.vocab.strings) - self._loaded_strings
        if self.path is None or grown <= max_new_strings:
            return False
        fresh = ProcessClassifier.load(self.path, self.threshold)
        self.nlp, self.extractor = fresh.nlp, fresh.extractor
        self._loaded_strings = fresh._loaded_strings
        return True

    @property
    def labels(self) -> tuple[str, ...]:
        """The processes the model was trained on."""
        return tuple(self.nlp.get_pipe(TEXTCAT).labels)

    def classify(self, item: ClassifierInput) -> Classification:
        """Classify one inquiry (see classify_many)."""
        return self.classify_many([item])[0]

    def classify_many(
        self, items: Sequence[ClassifierInput], batch_size: int = BATCH_SIZE
    ) -> list[Classification]:
        """Classify and extract fields for many inquiries in one pass over the pipeline."""
        results = []
        docs = (make_input_doc(self.nlp, item.subject, item.text) for item in items)
        for item, doc in zip(items, self.nlp.pipe(docs, batch_size=batch_size), strict=True):
            process = self.choose_process(doc.cats)
            # The complaint sentence is looked for only where the process asks for it.
            with_reason = "reason" in self._catalog[process].wanted_fields
            fields = self.extractor.extract(doc, item.received_at, with_reason)
            results.append(self.decide(doc.cats, fields))
        return results

    def explain(self, item: ClassifierInput) -> Explanation:
        """Why `classify(item)` says what it says: the words that pushed the decision and
        the extraction rules that matched (for `billing-inbox classify --explain`)."""
        return explain_classification(self, item)

    def choose_process(self, cats: Mapping[str, float]) -> str:
        """The top label, or "general" when its score is below the threshold."""
        best = max(cats, key=cats.__getitem__)
        return best if cats[best] >= self.threshold else GENERAL

    def decide(self, cats: Mapping[str, float], fields: ExtractedFields) -> Classification:
        """Scores and fields -> Classification, applying the threshold."""
        scores = dict(sorted(cats.items(), key=lambda item: -item[1]))
        confidence = next(iter(scores.values()))
        return Classification(
            self.choose_process(cats), confidence, MappingProxyType(scores), fields
        )
