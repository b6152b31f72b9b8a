"""The transactional outbox: outgoing emails wait here until the mail server accepts them.

A worker claims due emails with a lease (a conditional UPDATE, so two workers never take
the same row), sends them, and marks each sent only after the server's 250. A failed
attempt is counted and retried later with backoff; a worker that dies mid-send leaves a
lease that simply runs out. An email the server refuses for good (5xx to its recipient
or content) is marked undeliverable instead of retried forever; it stays listed until
`outbox retry` sends it again. Nothing is dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from peewee import Expression

from db.database import database, is_postgresql, write_transaction
from db.models import DeliveryState, Direction, Message

FIRST_RETRY = timedelta(seconds=5)  # after a first failure; doubled after each one more
MAX_BACKOFF = timedelta(hours=1)
CLAIM_LEASE = timedelta(minutes=2)
# What `outbox list` shows and `outbox retry` sends again.
NOT_SENT = (DeliveryState.PENDING, DeliveryState.UNDELIVERABLE)


def claim_due(now: datetime, limit: int = 100, lease: timedelta = CLAIM_LEASE) -> list[Message]:
    """Take up to `limit` pending emails that are due, for this caller alone, for `lease`."""
    return claimed_messages(reserve_due(now, limit, lease))


def reserve_due(now: datetime, limit: int, lease: timedelta) -> str:
    """Claim up to `limit` due emails under a new token, and return it.

    `claimed_messages(token)` reads them back. The intake calls this inside the
    transaction that queued a batch's replies, where it already holds SQLite's write
    lock, and hands the token to its sender: a sender claiming for itself had to wait for
    the lock between two of the intake's batches, and the replies with it.
    """
    token = uuid.uuid4().hex
    due = (
        Message.select(Message.id)
        .where(
            Message.direction == Direction.OUTBOUND,
            Message.delivery_state == DeliveryState.PENDING,
            Message.next_attempt_at <= now,
        )
        .order_by(Message.id)
        .limit(limit)
    )
    if is_postgresql():
        # Several senders claim at once: each takes rows nobody holds, never waiting for
        # another's claim to commit (SQLite serialises claims with its write lock).
        due = due.for_update(skip_locked=True)
    with write_transaction():
        # Re-checked per row under its lock: a row another worker just claimed has a
        # future next_attempt_at and no longer matches.
        Message.update(claim_token=token, next_attempt_at=now + lease).where(
            Message.id.in_(due),
            Message.delivery_state == DeliveryState.PENDING,
            Message.next_attempt_at <= now,
        ).execute()
    return token


def claimed_messages(token: str) -> list[Message]:
    """The emails claimed under `token` and not yet sent or failed, oldest first."""
    # Only what sending needs: the stored body text and case columns are not read back.
    sending = (Message.id, Message.case, Message.message_id, Message.recipients,
               Message.raw, Message.attempts)
    return list(Message.select(*sending).where(Message.claim_token == token)
                .order_by(Message.id))


def release_reserved(tokens: Sequence[str], now: datetime) -> None:
    """Give up claims that were never read (the sender they were meant for is gone or
    stopping, or the server unreachable): their emails are due at `now` for whichever
    sender looks next, instead of waiting for the claim to run out. Never for a claim
    whose emails may have been sent."""
    if tokens:
        _hand_back(Message.claim_token.in_(list(tokens)), now)


def postpone(message_ids: Sequence[int], until: datetime) -> None:
    """Hand claimed emails back untried, due at `until` (the server was unreachable)."""
    if message_ids:
        _hand_back(Message.id.in_(list(message_ids)), until)


def _hand_back(which: Expression, due_at: datetime) -> None:
    """Unclaim the pending emails `which` selects, due at `due_at`, attempts unchanged."""
    with write_transaction():
        Message.update(claim_token=None, next_attempt_at=due_at).where(
            which, Message.delivery_state == DeliveryState.PENDING
        ).execute()


def pending_messages() -> list[Message]:
    """Every outgoing email not yet accepted by the server (pending or undeliverable),
    oldest first."""
    return list(
        Message.select()
        .where(Message.direction == Direction.OUTBOUND,
               Message.delivery_state.in_(NOT_SENT))
        .order_by(Message.id)
    )


def mark_sent(message_ids: Sequence[int], now: datetime) -> None:
    """The server accepted these emails."""
    if not message_ids:
        return
    with _relaxed_commit():
        Message.update(
            delivery_state=DeliveryState.SENT, sent_at=now, last_error="", claim_token=None
        ).where(Message.id.in_(list(message_ids))).execute()


@contextmanager
def _relaxed_commit() -> Iterator[None]:
    """A transaction whose commit need not wait for the disk, on PostgreSQL.

    Marking a reply sent is the one write per email outside the intake transaction, and
    waiting for its WAL flush capped all workers together at the disk's flush rate. If
    PostgreSQL itself crashes right after, the mark may be lost and the reply resent with
    the same Message-ID: the at-least-once delivery every mail system has. Case data
    never takes this path.
    """
    with write_transaction():
        if is_postgresql():
            database.execute_sql("SET LOCAL synchronous_commit TO OFF")
        yield


def mark_failed(message: Message, error: str, now: datetime) -> datetime:
    """Count a failed attempt and schedule the next one; returns when that is."""
    delay = min(FIRST_RETRY * 2 ** min(message.attempts, 10), MAX_BACKOFF)
    next_attempt = now + delay
    _record_failed_attempt(message, error, next_attempt_at=next_attempt)
    return next_attempt


def mark_undeliverable(message: Message, error: str) -> None:
    """Count the attempt and stop retrying: the server refused this email for good."""
    _record_failed_attempt(message, error, delivery_state=DeliveryState.UNDELIVERABLE)


def _record_failed_attempt(message: Message, error: str, **outcome: object) -> None:
    """One more attempt, its error, the claim released, and what happens next."""
    with write_transaction():
        Message.update(
            attempts=message.attempts + 1, last_error=error[:500], claim_token=None,
            **outcome,
        ).where(Message.id == message.id).execute()


def retry_now(now: datetime) -> int:
    """Make every pending or undeliverable email due immediately (`outbox retry`);
    returns how many."""
    with write_transaction():
        return (
            Message.update(next_attempt_at=now, delivery_state=DeliveryState.PENDING)
            .where(Message.direction == Direction.OUTBOUND,
                   Message.delivery_state.in_(NOT_SENT),
                   # A row a worker is sending right now keeps its lease: no double send.
                   Message.claim_token.is_null())
            .execute()
        )
