"""Delivering the outbox: pending replies go out after the commit that created them.

A reply is marked sent only once the transport accepted it; anything else leaves it
pending with the error and a later retry time. `OutboxSender` does this on its own
thread, woken after every batch commit, so SMTP round trips overlap the work on the next
batch instead of adding to it; a second thread, `SentMarks`, writes the marks, so that
waiting for the database never holds up sending.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from db import outbox
from db.database import reset_connection
from inbox_worker.delivery import DeliveryError, Transport
from inbox_worker.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    failed: int = 0  # including the undeliverable ones
    undeliverable: int = 0


DELIVERY_PASS_LIMIT = 500
MARKS_PER_WRITE = 100


class SentMarks:
    """Writes "sent" on its own thread for the replies the server accepted.

    SQLite has one write lock, which the intake holds while it records a batch. A sender
    that waited for it after every few replies sent at half speed; now it goes on sending
    and this thread writes every mark gathered meanwhile in one statement. It gathers for
    up to `gather_seconds` (unless someone waits for the marks): a transaction per reply
    cost as much CPU as sending the reply. A crash before the write resends those replies,
    with their same Message-IDs: at most the replies accepted in that moment or while the
    intake held the lock (at-least-once delivery, as in every MTA).
    """

    def __init__(self, clock: Callable[[], datetime], retry_seconds: float = 5.0,
                 gather_seconds: float = 0.05) -> None:
        self.clock = clock
        self.retry_seconds = retry_seconds
        self.gather_seconds = gather_seconds
        self._unwritten: list[int] = []
        self._waiting = 0  # callers in wait_written: write at once, do not gather
        self._writing = self._failing = self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="outbox-marks", daemon=True)

    def start(self) -> SentMarks:
        self._thread.start()
        return self

    def add(self, message_id: int) -> None:
        """The server accepted this reply."""
        with self._changed:
            self._unwritten.append(message_id)
            self._changed.notify_all()

    def wait_written(self, timeout: float | None = None) -> bool:
        """Wait until every mark added so far is committed (False on timeout).

        Returns early while the database refuses the marks: they are retried meanwhile.
        """
        with self._changed:
            self._waiting += 1
            self._changed.notify_all()
            try:
                return self._changed.wait_for(
                    lambda: not (self._unwritten or self._writing) or self._failing
                    or not self._thread.is_alive(), timeout)
            finally:
                self._waiting -= 1

    def stop(self) -> None:
        """Write what is left, then end the thread."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join()

    def _write_now(self) -> bool:
        return (len(self._unwritten) >= MARKS_PER_WRITE or self._stopping
                or self._waiting > 0)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._unwritten or self._stopping)
                self._changed.wait_for(self._write_now, self.gather_seconds)
                if not self._unwritten:
                    return
                batch, self._unwritten, self._writing = self._unwritten, [], True
            try:
                outbox.mark_sent(batch, self.clock())
                written = True
            except Exception:  # the database went away: keep the marks and try again
                log.exception("could not mark %d sent replies as sent", len(batch))
                reset_connection()
                written = False
            with self._changed:
                self._writing, self._failing = False, not written
                if not written:
                    self._unwritten[:0] = batch
                self._changed.notify_all()
            if not written:
                if self._stopping:
                    # Stopping must not hang on a dead database. The replies stay pending
                    # and go out once more later: resent, never lost.
                    log.error("%d replies were sent but are still pending; they will be "
                              "sent again", len(self._unwritten))
                    return
                time.sleep(self.retry_seconds)


def deliver_pending(
    transport: Transport, settings: Settings, clock: Callable[[], datetime],
    marks: SentMarks, limit: int = DELIVERY_PASS_LIMIT,
) -> DeliveryReport:
    """Send every due reply (up to `limit`); failures are rescheduled, or marked
    undeliverable when the server refused the email for good; never dropped.

    Each accepted reply is handed to `marks`, which records it as sent.
    """
    sent = failed = undeliverable = 0
    while True:
        batch = outbox.claim_due(clock(), limit=min(limit - sent - failed, 100),
                                 lease=timedelta(seconds=settings.claim_lease_seconds))
        for message in batch:
            try:
                transport.send(bytes(message.raw), settings.from_address, [message.recipients])
            except DeliveryError as error:
                failed += 1
                if error.permanent:
                    undeliverable += 1
                    outbox.mark_undeliverable(message, str(error))
                    log.error("message_id=%s undeliverable (%s); kept, not retried: "
                              "`billing-inbox outbox retry` sends it again",
                              message.message_id, error)
                    continue
                retry_at = outbox.mark_failed(message, str(error), clock())
                log.warning("message_id=%s delivery failed (%s); retry at %s",
                            message.message_id, error, retry_at.isoformat(timespec="seconds"))
                continue
            sent += 1
            marks.add(message.id)
        if not batch or sent + failed >= limit or failed:
            return DeliveryReport(sent, failed, undeliverable)


class OutboxSender:
    """Delivers due replies on a background thread until stopped."""

    def __init__(
        self, open_transport: Callable[[], Transport], settings: Settings,
        clock: Callable[[], datetime], retry_seconds: float = 15.0,
    ) -> None:
        self.open_transport = open_transport
        self.settings = settings
        self.clock = clock
        self.retry_seconds = retry_seconds
        self.sent = self.failed = 0
        self._wake = threading.Event()
        self._stopping = False
        self._passes_requested = self._passes_done = 0
        self._progress = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
        self._marks = SentMarks(clock)

    def start(self) -> OutboxSender:
        self._marks.start()
        self._thread.start()
        return self

    def nudge(self) -> None:
        """New replies were committed: deliver them now."""
        with self._progress:
            self._passes_requested += 1
        self._wake.set()

    def drain(self, timeout: float | None = None) -> None:
        """Wait until everything due when this was called has been tried and recorded."""
        self.nudge()
        with self._progress:
            target = self._passes_requested
            self._progress.wait_for(lambda: self._passes_done >= target or
                                    not self._thread.is_alive(), timeout)
        self._marks.wait_written(timeout)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._marks.stop()

    def _run(self) -> None:
        transport = self.open_transport()
        # The first pass goes at once: replies left pending by a sender that stopped
        # (a restart, a crash) must not wait for the first retry interval.
        self._wake.set()
        try:
            while not self._stopping:
                self._wake.wait(self.retry_seconds)
                self._wake.clear()
                with self._progress:
                    requested = self._passes_requested
                self._deliver_safely(transport)
                with self._progress:
                    self._passes_done = requested
                    self._progress.notify_all()
        finally:
            transport.close()

    def _deliver_safely(self, transport: Transport) -> None:
        reconnected = False
        while True:
            try:
                report = deliver_pending(transport, self.settings, self.clock, self._marks)
            except Exception:  # the database went away: retried on the next wake
                log.exception("outbox delivery failed")
                reset_connection()
                if reconnected:
                    return
                # A restarted server ended our session: a new connection may work at once.
                reconnected = True
                continue
            self.sent += report.sent
            self.failed += report.failed
            if report.failed or report.sent < DELIVERY_PASS_LIMIT:
                return
