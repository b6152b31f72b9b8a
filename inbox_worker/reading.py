"""Read: a batch of raw emails in, each one parsed and classified out.

The pure middle of the pipeline (no database, mailbox or network), so it can run in other
processes: with `reading_processes` at 1 (the default) a forked child parses and
classifies the next batch on the second core while the intake routes, acts on and
commits the one before. At 0 the intake reads each batch itself, when it gets to it.
Either way the same `read_batch` does the reading.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from classifiers.model import Classification, ClassifierInput, ProcessClassifier
from inbox_worker.message import InboundEmail, parse_email
from inbox_worker.sources import RawMessage

log = logging.getLogger(__name__)

# How often a reading process checks that its intake is still alive.
PARENT_CHECK_SECONDS = 0.5


@dataclass(frozen=True)
class ReadEmail:
    """One email of a batch, read: `email` is None when it could not be parsed (or was
    too large to fetch); `classification` is None when the email needs no reply or could
    not be classified. The intake decides what each None means for the email."""

    email: InboundEmail | None
    classification: Classification | None


def read_batch(
    batch: Sequence[RawMessage], classifier: ProcessClassifier, own_address: str,
    now: datetime,
) -> list[ReadEmail]:
    """Parse every email of the batch, then classify the ones that want an answer."""
    emails = [_parse(raw, own_address, now) for raw in batch]
    classifications = _classify(classifier, emails)
    if classifier.reload_if_grown():
        log.info("classifier reloaded to shed the vocabulary learned from past emails")
    return [ReadEmail(*pair) for pair in zip(emails, classifications, strict=True)]


def classifier_input(email: InboundEmail) -> ClassifierInput:
    """What the classifier reads of an email (also for the CLI's dry run)."""
    # The whole body: the classifier decides the process on the new text only, but takes
    # an invoice number from the quoted history when the new text has none.
    return ClassifierInput(email.subject, email.full_text, email.date)


def _parse(raw: RawMessage, own_address: str, now: datetime) -> InboundEmail | None:
    # parse_email records defects instead of raising; this guard is for the bug we do
    # not know about, which must not stop the emails behind this one.
    if raw.data is None:
        return None
    try:
        return parse_email(raw.data, own_address, now)
    except Exception:
        log.exception("source=%s could not be parsed", raw.source_key)
        return None


def _classify(
    classifier: ProcessClassifier, emails: Sequence[InboundEmail | None]
) -> list[Classification | None]:
    wanted = [email for email in emails if email is not None and not email.needs_no_reply]
    inputs = [classifier_input(email) for email in wanted]
    try:
        results = dict(zip(map(id, wanted), classifier.classify_many(inputs), strict=True))
    except Exception:
        log.exception("batch classification failed; classifying one by one")
        results = {id(email): _classify_one(classifier, email) for email in wanted}
    return [results.get(id(email)) for email in emails]


def _classify_one(classifier: ProcessClassifier, email: InboundEmail) -> Classification | None:
    try:
        return classifier.classify(classifier_input(email))
    except Exception:
        log.exception("message_id=%s classification failed", email.message_id)
        return None


class PendingRead(Protocol):
    """A batch being read; `result()` waits for it (a concurrent.futures.Future is one)."""

    def result(self) -> list[ReadEmail]: ...


class Reader(Protocol):
    def submit(self, batch: Sequence[RawMessage], now: datetime) -> PendingRead: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class _ReadWhenAsked:
    read: Callable[[], list[ReadEmail]]

    def result(self) -> list[ReadEmail]:
        return self.read()


class LocalReader:
    """Reads in the intake's own process, when the intake asks for the result."""

    def __init__(self, classifier: ProcessClassifier, own_address: str) -> None:
        self.classifier = classifier
        self.own_address = own_address

    def submit(self, batch: Sequence[RawMessage], now: datetime) -> PendingRead:
        return _ReadWhenAsked(lambda: read_batch(batch, self.classifier, self.own_address, now))

    def close(self) -> None:
        pass


class ReaderDied(RuntimeError):
    """A reading process ended; the worker restarts (its emails stay claimed, then retried)."""


class ReadingProcesses:
    """`count` forked children that read batches ahead of the intake, oldest first.

    Forked, not spawned: a child starts in milliseconds with the classifier the intake has
    already loaded, shared until either side writes to it. They are forked before the
    worker opens its mailbox or starts its threads. They ignore Ctrl-C and SIGTERM, which
    the intake handles by finishing its batch, and end when the intake ends, even when
    it is killed.
    """

    def __init__(self, count: int, classifier: ProcessClassifier, own_address: str) -> None:
        self._pool = ProcessPoolExecutor(
            count, mp_context=multiprocessing.get_context("fork"),
            initializer=_adopt, initargs=(classifier, own_address),
        )
        # Fork every child now, from this thread, rather than on the first batch (which
        # the mailbox thread submits while the intake works).
        self.pids = {self._pool.submit(os.getpid).result() for _ in range(count)}

    def submit(self, batch: Sequence[RawMessage], now: datetime) -> PendingRead:
        try:
            return self._pool.submit(_read_in_child, batch, now)
        except BrokenProcessPool as error:  # raised at once when a child has died
            failed: Future[list[ReadEmail]] = Future()
            failed.set_exception(error)
            return failed

    def check_alive(self) -> None:
        """Raise `ReaderDied` if a reading process has ended (the worker then restarts)."""
        probe = self.submit([], datetime.min)
        try:
            probe.result()
        except BrokenProcessPool as error:
            raise ReaderDied(f"a reading process ended: {error}") from None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# The classifier and own address of a reading child, set once when it is forked.
_child: tuple[ProcessClassifier, str] | None = None


def _adopt(classifier: ProcessClassifier, own_address: str) -> None:
    global _child
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _child = (classifier, own_address)
    threading.Thread(target=_end_with, args=(os.getppid(),), daemon=True).start()


def _end_with(intake: int) -> None:
    # A forked child holds both ends of its task pipe, so it would never see the end of
    # the file when its intake is killed: it watches for being orphaned instead.
    while os.getppid() == intake:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _read_in_child(batch: Sequence[RawMessage], now: datetime) -> list[ReadEmail]:
    assert _child is not None, "not a reading process"
    classifier, own_address = _child
    return read_batch(batch, classifier, own_address, now)
