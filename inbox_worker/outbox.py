"""Delivering the outbox: pending replies go out after the commit that created them.

A reply is marked sent only once the transport accepted it; anything else leaves it
pending with the error and a later retry time. `OutboxSender` does this on its own
thread, woken after every batch commit with the replies the intake claimed for it in
that commit, so SMTP round trips overlap the work on the next batch instead of adding to
it; a second thread, `SentMarks`, writes the marks, so that waiting for the database
never holds up sending.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from db import outbox
from db.database import reset_connection
from db.models import Message
from inbox_worker.delivery import DeliveryError, Transport
from inbox_worker.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    failed: int = 0  # including the undeliverable ones
    undeliverable: int = 0
    unreachable: bool = False  # the server could not be reached: the pass stopped

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(self.sent + other.sent, self.failed + other.failed,
                              self.undeliverable + other.undeliverable,
                              self.unreachable or other.unreachable)


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
    reserved: Sequence[tuple[str, float]] = (), claim: bool = True,
    already_sent: set[int] | None = None,
) -> DeliveryReport:
    """Send the replies claimed for us (`reserved`: tokens of `db.outbox.reserve_due`,
    each with the `time.monotonic()` it was handed over), then, with `claim`, every other
    due reply (up to `limit` in all). Failures are rescheduled, or marked undeliverable
    when the server refused the email for good; never dropped.

    A claim is sent under only while half its lease is left: when it runs out another
    worker may take its replies over, and no reply may go out twice; what is left then
    goes to whoever claims it next. When the server cannot be reached at all, one reply
    is tried and the rest wait for `FIRST_RETRY`, untried. Each accepted reply is handed
    to `marks`, which records it as sent, and its id added to `already_sent`: a claimed
    reply stays claimed until its mark is written, and one in that set is not sent again
    when the same claim is read once more (after a database error).
    """
    already_sent = set() if already_sent is None else already_sent
    usable = settings.claim_lease_seconds / 2
    report = DeliveryReport()
    for position, (token, handed_over) in enumerate(reserved):
        if report.unreachable:
            outbox.release_reserved([later for later, _ in reserved[position:]],
                                    clock() + outbox.FIRST_RETRY)
            return report
        if time.monotonic() - handed_over < usable:
            report += _send_each(outbox.claimed_messages(token), transport, settings, clock,
                                 marks, already_sent, until=handed_over + usable)
    while claim and report.sent + report.failed < limit and not report.failed:
        claimed_at = time.monotonic()
        batch = outbox.claim_due(clock(), limit=min(limit - report.sent - report.failed, 100),
                                 lease=timedelta(seconds=settings.claim_lease_seconds))
        report += _send_each(batch, transport, settings, clock, marks, already_sent,
                             until=claimed_at + usable)
        if not batch:
            break
    return report


def _send_each(
    messages: Sequence[Message], transport: Transport, settings: Settings,
    clock: Callable[[], datetime], marks: SentMarks, already_sent: set[int], until: float,
) -> DeliveryReport:
    sent = failed = undeliverable = 0
    for position, message in enumerate(messages):
        if message.id in already_sent:
            continue
        if time.monotonic() > until:
            break  # the claim could run out mid-send: the rest go to the next claim
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
            if error.unreachable:
                # Each of the rest would wait for the same failure (30 s apiece where the
                # network drops packets): they wait a first retry's delay, untried.
                rest = [later.id for later in messages[position + 1:]
                        if later.id not in already_sent]
                outbox.postpone(rest, clock() + outbox.FIRST_RETRY)
                return DeliveryReport(sent, failed, undeliverable, unreachable=True)
            continue
        sent += 1
        already_sent.add(message.id)
        marks.add(message.id)
    return DeliveryReport(sent, failed, undeliverable)


def release_replies(reserved: Sequence[str], now: datetime) -> None:
    """Claimed replies that nobody read go back to the outbox, due at once."""
    if not reserved:
        return
    try:
        outbox.release_reserved(reserved, now)
    except Exception:  # their claim runs out instead, and then they go out
        log.exception("could not release %d claims on replies", len(reserved))
        reset_connection()


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
        self._reserved: list[tuple[str, float]] = []  # (token, when handed over)
        self._look_for_all = True
        self._progress = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
        self._marks = SentMarks(clock)

    def start(self) -> OutboxSender:
        self._marks.start()
        self._thread.start()
        return self

    def nudge(self, reserved: str | None = None) -> None:
        """New replies were committed: deliver them now.

        `reserved` is the token the intake claimed them under (`db.outbox.reserve_due`):
        only those are sent then, with no claim of our own to wait for. Without one, every
        due reply is looked for, as on the retry clock.
        """
        with self._progress:
            self._passes_requested += 1
            if reserved is None:
                self._look_for_all = True
            else:
                self._reserved.append((reserved, time.monotonic()))
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
        with self._progress:
            unread, self._reserved = self._reserved, []
        release_replies([token for token, _ in unread], self.clock())

    def _run(self) -> None:
        transport = self.open_transport()
        # The first pass goes at once and looks for everything: replies left pending by
        # a sender that stopped (a restart, a crash) must not wait for the retry clock.
        self._wake.set()
        try:
            while not self._stopping:
                woken = self._wake.wait(self.retry_seconds)
                self._wake.clear()
                with self._progress:
                    requested = self._passes_requested
                    reserved, self._reserved = self._reserved, []
                    look_for_all = self._look_for_all or not woken
                    self._look_for_all = False
                self._deliver_safely(transport, reserved, look_for_all)
                with self._progress:
                    self._passes_done = requested
                    self._progress.notify_all()
        finally:
            transport.close()

    def _deliver_safely(
        self, transport: Transport, reserved: list[tuple[str, float]], look_for_all: bool
    ) -> None:
        reconnected = False
        already_sent: set[int] = set()
        while True:
            try:
                report = deliver_pending(transport, self.settings, self.clock, self._marks,
                                         reserved=reserved, claim=look_for_all,
                                         already_sent=already_sent)
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
            if report.failed or report.sent < DELIVERY_PASS_LIMIT or not look_for_all:
                return
            reserved = []
