"""The trained classifier on disk: built on first use, rebuilt when the examples change.

The labelled examples are whole email bodies, as the worker hands the classifier whole
bodies: the classifier reads only the new text for the process, and the quoted history
too for fields (a reply often names its invoice only in the quote).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from classifiers.catalog import CATALOG_PATH
from classifiers.examples import EXAMPLES_DIR, LabelledExample, load_examples
from classifiers.model import ProcessClassifier, TrainReport, train_model
from inbox_worker.settings import Settings

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "billing-inbox-fingerprint"


def needs_training(settings: Settings) -> bool:
    """True when no stored model matches the packaged examples (first use, new examples)."""
    return _stored_fingerprint(settings.resolved_model_dir()) != examples_fingerprint()


def load_classifier(settings: Settings) -> ProcessClassifier:
    """The classifier, training it first when none matches the packaged examples."""
    model_dir = settings.resolved_model_dir()
    if needs_training(settings):
        with _training_lock(model_dir):
            # Another worker may have trained it while we waited for the lock.
            if _stored_fingerprint(model_dir) != examples_fingerprint():
                log.info("training the classifier in %s (first use or new examples)",
                         model_dir)
                train_classifier(settings)
    return ProcessClassifier.load(model_dir, threshold=settings.confidence_threshold)


@contextmanager
def _training_lock(model_dir: Path) -> Iterator[None]:
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(model_dir.parent / f".{model_dir.name}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


def train_classifier(settings: Settings, seed: int = 0) -> TrainReport:
    """Train on the `train` split and install the model atomically in `model_dir`."""
    model_dir = settings.resolved_model_dir()
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    examples = [
        (example.subject, example.body, example.label)
        for example in load_examples("train")
    ]
    staging = Path(tempfile.mkdtemp(prefix=".training-", dir=model_dir.parent))
    # spaCy logs its set-up steps through a handler of its own and again through ours;
    # neither says anything an operator needs, beyond our one line about training.
    logging.getLogger("spacy").setLevel(logging.WARNING)
    try:
        report = train_model(examples, staging, seed=seed)
        (staging / FINGERPRINT_FILE).write_text(examples_fingerprint())
        _replace_directory(staging, model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def heldout_examples() -> list[LabelledExample]:
    """The examples kept out of training, for `evaluate`."""
    return load_examples("heldout")


def examples_fingerprint() -> str:
    """Changes whenever the examples, the catalog or the classifier's code change.

    The code counts too: a model saved by an older architecture cannot be loaded by a
    newer one, and an upgrade must retrain rather than fail.
    """
    digest = hashlib.sha256()
    package = CATALOG_PATH.parent
    sources = sorted([*package.glob("*.py"), *package.glob("*.toml"), *package.glob("*.json")])
    for path in [*sources, *sorted((EXAMPLES_DIR / "train").glob("*.jsonl"))]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _stored_fingerprint(model_dir: Path) -> str | None:
    try:
        return (model_dir / FINGERPRINT_FILE).read_text()
    except OSError:
        return None


def _replace_directory(staging: Path, target: Path) -> None:
    # Renamed into place whole, so a reader never sees a half-written model.
    old = target.with_name(f".old-{os.getpid()}-{target.name}")
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
