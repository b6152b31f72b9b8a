"""Sorting new billing inquiries into service processes and reading their fields.

Offline and self-contained: spaCy from `spacy.blank("en")`, the catalog, lexicon and
labelled examples in this package. Imports nothing else from billing-inbox.

    report = train_model(triples, Path("model"))
    classifier = ProcessClassifier.load(Path("model"), threshold=0.5)
    classifier.classify_many([ClassifierInput(subject, text, received_at)])
"""

from classifiers.catalog import GENERAL, ServiceProcess, load_catalog
from classifiers.classification import Classification, ClassifierInput
from classifiers.evaluation import EvaluationReport, evaluate, format_report
from classifiers.examples import LabelledExample, load_examples
from classifiers.explain import Explanation, format_explanation
from classifiers.extract import extract_fields
from classifiers.fields import ExtractedFields
from classifiers.model import ProcessClassifier
from classifiers.training import TrainingSettings, TrainReport, train_model

__all__ = [
    "GENERAL",
    "Classification",
    "ClassifierInput",
    "EvaluationReport",
    "Explanation",
    "ExtractedFields",
    "LabelledExample",
    "ProcessClassifier",
    "ServiceProcess",
    "TrainReport",
    "TrainingSettings",
    "evaluate",
    "extract_fields",
    "format_explanation",
    "format_report",
    "load_catalog",
    "load_examples",
    "train_model",
]
