"""Keeping the worker running: IDLE for prompt answers, `schedule` for polling, backoff.

While connected, the worker waits in IMAP IDLE (or watches the Maildir) and handles new
mail the moment it arrives; a `schedule` job also polls every `poll_seconds` in case a
notification was missed, and the outbox sender retries failed replies on its own clock.
Any connection or database error closes everything, waits with exponential backoff, and
starts again: every step is idempotent, so starting again is always safe.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import TYPE_CHECKING

import schedule

from db.database import reset_connection
from inbox_worker.compose import preload_templates
from inbox_worker.pipeline import RunSummary, Worker
from inbox_worker.reading import ReadingProcesses
from inbox_worker.sender_process import OutboxProcess
from inbox_worker.settings import Settings
from inbox_worker.sources import open_source

if TYPE_CHECKING:
    from classifiers.model import ProcessClassifier

log = logging.getLogger(__name__)

# How long one IDLE wait lasts at most: bounds how late we notice a stop request.
WAKE_SECONDS = 2.0
OUTBOX_RETRY_SECONDS = 15
MAX_BACKOFF_SECONDS = 60.0


def run_once(worker: Worker) -> RunSummary:
    """Handle everything now in the mailbox, deliver pending replies, and return."""
    with (
        _outbox_sender(worker) as sender,
        _reading_processes(worker) as reader,
        closing(open_source(worker.settings)) as source,
    ):
        summary = worker.process_available(source, sender.nudge, reader)
        sender.drain()
    summary.sent, summary.send_failures = sender.sent, sender.failed
    return summary


@contextmanager
def _reading_processes(worker: Worker) -> Iterator[ReadingProcesses | None]:
    # Forked before the mailbox connection and any thread (the pool starts one): see
    # reading.py.
    count = worker.settings.reading_processes
    if count == 0:
        yield None
        return
    reader = ReadingProcesses(count, worker.classifier, worker.settings.from_address)
    try:
        yield reader
    finally:
        reader.close()


@contextmanager
def _outbox_sender(worker: Worker) -> Iterator[OutboxProcess]:
    # Its own process, forked first of all, while this process has no other thread and
    # no mailbox connection to hand down: see inbox_worker/sender_process.py.
    sender = OutboxProcess(worker.settings, retry_seconds=OUTBOX_RETRY_SECONDS).start()
    try:
        yield sender
    finally:
        sender.stop()


def serve(worker: Worker, stop: threading.Event) -> None:
    """Run until `stop` is set, reconnecting with backoff after failures."""
    backoff = 1.0
    while not stop.is_set():
        connected_at = time.monotonic()
        try:
            _serve_connected(worker, stop)
            return
        except Exception:  # one place decides: log, wait, reconnect
            if time.monotonic() - connected_at > MAX_BACKOFF_SECONDS:
                backoff = 1.0  # it had been working: this is a new outage, not the same one
            log.exception("worker cycle failed; reconnecting in %.0f s", backoff)
            reset_connection()  # the database may be the part that went away
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


def _serve_connected(worker: Worker, stop: threading.Event) -> None:
    settings = worker.settings
    with (
        _outbox_sender(worker) as sender,
        _reading_processes(worker) as reader,
        closing(open_source(settings)) as source,
    ):
        log.info("serving %s", getattr(source, "label", settings.mailbox.scheme))

        def cycle() -> None:
            summary = worker.process_available(source, sender.nudge, reader)
            if summary.outcomes:
                # Replies go out on the sender's own time: this counts emails only.
                log.info("cycle: %s", summary.line(with_replies=False))

        # The sender retries failed replies on its own clock; this job polls the mailbox
        # in case an IDLE notification was missed (or the server has no IDLE).
        scheduler = schedule.Scheduler()
        scheduler.every(settings.poll_seconds).seconds.do(cycle)
        cycle()
        while not stop.is_set():
            wait = min(max(scheduler.idle_seconds or 0.0, 0.0), WAKE_SECONDS)
            if source.wait_for_mail(wait):
                cycle()
            scheduler.run_pending()
            sender.check_alive()  # raises if it died: serve() then starts everything again
            if reader is not None:
                reader.check_alive()  # the same for the reading processes


def serve_until_signalled(worker: Worker) -> None:
    """`serve` until SIGTERM or Ctrl-C; the batch in hand is finished first."""
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    serve(worker, stop)
    log.info("stopped")


# A `--once` worker's exit code when it handled its emails but some replies could not be
# sent (they stay in the outbox): run_processes reports it apart from a failure.
REPLIES_PENDING_EXIT = 3


@dataclasses.dataclass(frozen=True)
class WorkersOutcome:
    """How K worker processes ended: the names of those that failed, and of those whose
    replies were not all sent (`--once`)."""

    failed: list[str]
    replies_pending: list[str]


def run_processes(settings: Settings, count: int, once: bool) -> WorkersOutcome:
    """Run `count` workers as separate processes on the same mailbox and database.

    The classifier is loaded (or trained) once, here, and the workers are forked from
    this process: they share its pages, and on 2 cores four model loads took 8 s of CPU
    where one takes 2. Each reads its own batches (no reading processes): the workers
    already fill the cores, and on 2 cores 4 workers with a reading process each went
    slower than without (224-257 against 332 emails/s in bench.py's scale-out).
    """
    from inbox_worker.training import load_classifier

    settings = dataclasses.replace(settings, reading_processes=0)
    classifier = load_classifier(settings)
    preload_templates()  # compiled once, here, like the classifier: the workers share them
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_worker_process, args=(settings, classifier, once),
                        name=f"worker-{n}")
        for n in range(1, count + 1)
    ]
    for process in processes:
        process.start()

    def forward(signal_number: int, _frame: object) -> None:
        for process in processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in processes:
        process.join()
    pending = [p.name for p in processes if p.exitcode == REPLIES_PENDING_EXIT]
    failed = [p.name for p in processes if p.exitcode and p.name not in pending]
    if failed:
        log.error("workers failed: %s", ", ".join(failed))
    return WorkersOutcome(failed, pending)


def _worker_process(settings: Settings, classifier: ProcessClassifier, once: bool) -> None:
    from db.database import connect_database, forget_inherited_connection

    _name_the_worker_in_log_lines(settings)
    forget_inherited_connection()
    connect_database(settings.database_url)
    worker = Worker(settings, classifier)
    if once:
        summary = run_once(worker)
        print(f"{multiprocessing.current_process().name}: {summary.line()}", flush=True)
        if summary.send_failures:
            sys.exit(REPLIES_PENDING_EXIT)
    else:
        serve_until_signalled(worker)


def _name_the_worker_in_log_lines(settings: Settings) -> None:
    """Log as the parent does (the CLI's handler and its filter), naming the worker."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=settings.log_level.upper())
    for handler in root.handlers:
        formatter = type(handler.formatter or logging.Formatter())
        handler.setFormatter(formatter(
            "%(asctime)s %(levelname)s %(processName)s %(name)s %(message)s"))
