"""The pipeline, written down once: source -> read (parse, classify) -> route -> act -> reply.

A batch is claimed and fetched, read as a whole (reading.py: parsed and classified, in a
reading process while the batch before is being acted on), then each email is routed and
acted on inside one batch transaction. Only after that commit are the emails moved out
of the inbox, and only then is the outbox drained. Any error while handling one email
quarantines that email and never stops the ones behind it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from classifiers.model import Classification, ProcessClassifier
from db import cases
from db.database import write_transaction
from db.intake import claim_messages, release_messages
from db.lookup import IntakeHistory, reply_queued
from db.outbox import reserve_due
from db.records import OutboundDraft
from inbox_worker import notices
from inbox_worker.act import Outcome, act_on, allow_auto_reply, history_for, inbound_record
from inbox_worker.clock import Clock, utc_now
from inbox_worker.compose import preload_templates
from inbox_worker.message import InboundEmail, parse_email, synthesised_message_id
from inbox_worker.outbox import release_replies
from inbox_worker.reading import LocalReader, PendingRead, ReadEmail, Reader, read_batch
from inbox_worker.route import route_message
from inbox_worker.settings import Settings
from inbox_worker.sources import MailSource, RawMessage

log = logging.getLogger(__name__)

# How many replies queued before a batch (retries, the specialists' replies) its
# transaction claims for the sender at most, beyond room for the batch's own.
RESERVE_BEYOND_BATCH = 100


@dataclass
class RunSummary:
    """What one `run --once` (or one cycle) did."""

    outcomes: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    send_failures: int = 0

    def line(self, with_replies: bool = True) -> str:
        """One line for people: emails by outcome, and (after `run --once`) replies."""
        handled = sum(self.outcomes.values())
        parts = ", ".join(f"{count} {name}" for name, count in sorted(self.outcomes.items()))
        line = f"{handled} messages processed ({parts or 'none'})"
        if with_replies:
            line += f"; {self.sent} replies sent, {self.send_failures} delivery failures"
        return line


@dataclass(frozen=True)
class _Handled:
    raw: RawMessage
    email: InboundEmail | None
    outcome: Outcome
    milliseconds: float


class Worker:
    """One worker: a classifier loaded once and the settings it runs with."""

    def __init__(
        self, settings: Settings, classifier: ProcessClassifier, clock: Clock = utc_now
    ) -> None:
        self.settings = settings
        self.classifier = classifier
        self.clock = clock
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        preload_templates()

    def process_available(
        self, source: MailSource, replies_ready: Callable[[str], None],
        reader: Reader | None = None,
    ) -> RunSummary:
        """Handle every email now in the inbox, batch by batch.

        Each batch's transaction also claims the replies due then (`reserve_due`), and
        `replies_ready` is called with that claim's token after the commit, to send them.
        The mailbox is used by one helper thread, in order: fetching the next batch and
        moving the last one (network round trips to a distant server) happen while this
        thread works on the current batch. That thread hands each batch it fetched to the
        `reader` (reading.py; by default this thread reads it, when it gets to it).
        """
        reader = reader or LocalReader(self.classifier, self.settings.from_address)
        summary = RunSummary()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailbox") as mailbox:
            moves: list[tuple[Future[None], list[str]]] = []
            for batch, reading, keys in self._claimed_batches(mailbox, source, reader):
                handled, replies = self.process_batch(batch, self._read(batch, reading))
                # The commit above recorded every email: only now may they leave the inbox.
                moves.append((mailbox.submit(_move, source, handled), keys))
                self._hand_over(replies, replies_ready)
                summary.outcomes.update(item.outcome.outcome for item in handled)
                _release_moved(moves, wait=False)
            _release_moved(moves, wait=True)
        return summary

    def _hand_over(self, reserved: str, replies_ready: Callable[[str], None]) -> None:
        try:
            replies_ready(reserved)
        except Exception:
            # The sender is gone (the worker restarts): the replies claimed for it must
            # not wait for the claim to run out before the next sender sends them.
            release_replies([reserved], self.clock())
            raise

    def _claimed_batches(
        self, mailbox: ThreadPoolExecutor, source: MailSource, reader: Reader
    ) -> Iterator[tuple[list[RawMessage], PendingRead, list[str]]]:
        """(batch, its reading, its keys) claimed for this worker, each fetched (and handed
        to the reader) during the one before.

        One SEARCH, then batch after batch from it; then one more SEARCH for what arrived
        meanwhile. A message that stays in the inbox (its move failed) is retried next
        cycle, not in a tight loop now.
        """
        attempted: set[str] = set()  # claimed by this worker, or held by others
        while True:
            keys = [key for key in mailbox.submit(source.list_keys).result()
                    if key not in attempted]
            claimed = self._claim(keys, attempted)
            if not claimed:
                return  # nothing new, or all of it claimed by other workers
            upcoming: Future[tuple[list[RawMessage], PendingRead]] | None = mailbox.submit(
                self._fetch_and_read, source, claimed, reader)
            while upcoming is not None:
                (batch, reading), batch_keys = upcoming.result(), claimed
                keys = [key for key in keys if key not in attempted]
                claimed = self._claim(keys, attempted)
                upcoming = (mailbox.submit(self._fetch_and_read, source, claimed, reader)
                            if claimed else None)
                yield batch, reading, batch_keys
            if keys:
                return  # the rest are claimed by other workers

    def _fetch_and_read(
        self, source: MailSource, keys: list[str], reader: Reader
    ) -> tuple[list[RawMessage], PendingRead]:
        batch = source.fetch(keys)
        return batch, reader.submit(batch, self.clock())

    def _read(self, batch: list[RawMessage], reading: PendingRead) -> list[ReadEmail]:
        try:
            return reading.result()
        except BrokenProcessPool:
            # Nothing is lost: this thread reads the batch instead, and the worker starts
            # new reading processes when it next restarts (runner.py checks them).
            log.error("a reading process ended; reading this batch in the worker")
            return self._read_here(batch, self.clock())

    def _read_here(self, batch: Sequence[RawMessage], now: datetime) -> list[ReadEmail]:
        return read_batch(batch, self.classifier, self.settings.from_address, now)

    def _claim(self, keys: Sequence[str], attempted: set[str]) -> list[str]:
        """Claim the next batch nobody else is working on (see db/intake.py).

        Every key looked at goes into `attempted`: those not claimed here are held by
        other workers, and passing over them for the rest of the cycle keeps a claim to
        one transaction, where it was one per window others held, for every batch. A dead
        worker's claims are taken over in a later cycle, once their lease has run out.
        """
        size = self.settings.batch_size
        lease = timedelta(seconds=self.settings.claim_lease_seconds)
        # Window by window: one batch's worth of keys per query keeps the SQL small; a
        # window that others hold in part gives a smaller batch, not a wait.
        for start in range(0, len(keys), size):
            window = keys[start:start + size]
            attempted.update(window)
            claimed = claim_messages(window, self.worker_id, self.clock(), lease, size)
            if claimed:
                return claimed
        return []

    def process_batch(
        self, batch: Sequence[RawMessage], read: Sequence[ReadEmail]
    ) -> tuple[list[_Handled], str]:
        """Route and act on one read batch, committed as one transaction, which also
        claims the replies due for this worker's sender; returns the handled emails and
        that claim's token."""
        now = self.clock()
        with write_transaction():
            history = history_for([item.email for item in read if item.email is not None], now)
            handled = [
                self._handle(raw, item.email, item.classification, history, now)
                for raw, item in zip(batch, read, strict=True)
            ]
            # The batch's own replies (at most one per email), and older ones due
            # meanwhile: retries, the specialists' replies.
            reserved = reserve_due(now, limit=len(batch) + RESERVE_BEYOND_BATCH,
                                   lease=timedelta(seconds=self.settings.claim_lease_seconds))
        for item in handled:
            _log_outcome(item)
        return handled, reserved

    def _handle(
        self,
        raw: RawMessage,
        email: InboundEmail | None,
        classification: Classification | None,
        history: IntakeHistory,
        now: datetime,
    ) -> _Handled:
        started = time.perf_counter()
        try:
            # No savepoint of its own: acting is one case operation, whose transaction
            # (a savepoint inside the batch's) undoes only this email when it fails.
            outcome = self._decide_and_act(raw, email, classification, history, now)
        except Exception as error:
            log.exception("source=%s processing failed; quarantining", raw.source_key)
            outcome = self._quarantine(raw, email, f"{error.__class__.__name__}: {error}", now)
        return _Handled(raw, email, outcome, (time.perf_counter() - started) * 1000)

    def _decide_and_act(
        self,
        raw: RawMessage,
        email: InboundEmail | None,
        classification: Classification | None,
        history: IntakeHistory,
        now: datetime,
    ) -> Outcome:
        if email is None and raw.data is None:
            return self._quarantine_too_large(raw, history, now)
        if email is None:
            return self._quarantine(raw, None, "could not be parsed", now)
        if classification is None and not email.needs_no_reply:
            return self._quarantine(raw, email, "could not be classified", now)
        decision = route_message(email, classification, self.settings, history, now)
        return act_on(decision, email, raw.source_key, self.settings, history, now)

    def _quarantine_too_large(
        self, raw: RawMessage, history: IntakeHistory, now: datetime
    ) -> Outcome:
        """Quarantined unread; its sender (from the header section alone) is told so."""
        reason = f"larger than max_message_bytes ({raw.size} bytes)"
        head = parse_email(raw.headers, self.settings.from_address, now) if raw.headers else None
        if head is None or not head.sender:
            return self._quarantine(raw, None, reason, now)
        head = replace(head, raw=b"")  # never read: there is nothing to release
        notice = None
        if (not head.needs_no_reply and not reply_queued("too_large", head.message_id)
                and allow_auto_reply(history, head.sender, self.settings)):
            notice = notices.too_large(self.settings, head, raw.size, now)
        return self._quarantine(raw, head, reason, now, notice)

    def _quarantine(
        self, raw: RawMessage, email: InboundEmail | None, reason: str, now: datetime,
        notice: OutboundDraft | None = None,
    ) -> Outcome:
        if email is None:
            message_id = synthesised_message_id(raw.data or raw.source_key.encode())
            email = parse_email(b"", self.settings.from_address, now)
            # Keep the bytes that could not be parsed, so the email can be released later.
            email = replace(email, message_id=message_id, raw=raw.data or b"")
        record = inbound_record(email, raw.source_key, now)
        with write_transaction():
            cases.record_quarantined(record, reason, now, reply=notice)
        if notice is not None:
            reason += "; sender told"
        return Outcome("quarantined", reason=reason)


def _move(source: MailSource, handled: Sequence[_Handled]) -> None:
    """Out of the inbox: to Processed, or to Quarantine. Only ever after the commit."""
    source.move_to_processed(
        [item.raw.source_key for item in handled if item.outcome.outcome != "quarantined"])
    source.quarantine(
        [item.raw.source_key for item in handled if item.outcome.outcome == "quarantined"])


def _release_moved(moves: list[tuple[Future[None], list[str]]], wait: bool) -> None:
    """Drop the claims of batches whose move finished; a failed move raises here."""
    while moves and (wait or moves[0][0].done()):
        move, keys = moves.pop(0)
        move.result()
        release_messages(keys)


def _log_outcome(item: _Handled) -> None:
    email, outcome = item.email, item.outcome
    log.info(
        "message_id=%s source=%s outcome=%s case=%s process=%s ms=%.0f%s",
        email.message_id if email else "-",
        item.raw.source_key,
        outcome.outcome,
        outcome.case or "-",
        outcome.process or "-",
        item.milliseconds,
        f" reason={outcome.reason!r}" if outcome.reason else "",
    )
