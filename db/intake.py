"""The intake ledger: which worker is handling which message of the mailbox.

Several workers share one mailbox. Each claims a batch of source keys before reading
them, so no two workers parse and classify the same email, and an idle worker never
waits on another's transaction. A claim is a lease: a worker that dies mid-batch leaves
claims that run out and are taken over. The unique Message-ID stays the final guard.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from db.database import write_transaction
from db.models import IntakeClaim


def claim_messages(
    keys: Sequence[str], worker: str, now: datetime, lease: timedelta, limit: int
) -> list[str]:
    """Claim up to `limit` of `keys` (in their order) that nobody else holds."""
    if not keys or limit <= 0:
        return []
    with write_transaction():
        held = {
            claim.source_key: claim
            for claim in IntakeClaim.select().where(IntakeClaim.source_key.in_(list(keys)))
        }
        free = [key for key in keys if key not in held][:limit]
        if free:
            IntakeClaim.insert_many(
                [{"source_key": key, "worker": worker, "claimed_at": now} for key in free]
            ).on_conflict_ignore().execute()
        expired = [key for key, claim in held.items()
                   if claim.worker != worker and claim.claimed_at < now - lease]
        if expired and len(free) < limit:
            IntakeClaim.update(worker=worker, claimed_at=now).where(
                IntakeClaim.source_key.in_(expired[: limit - len(free)]),
                IntakeClaim.claimed_at < now - lease,
            ).execute()
        mine = {
            claim.source_key
            for claim in IntakeClaim.select(IntakeClaim.source_key).where(
                IntakeClaim.source_key.in_(list(keys)), IntakeClaim.worker == worker
            )
        }
    return [key for key in keys if key in mine][:limit]


def release_messages(keys: Sequence[str]) -> None:
    """Forget the claims of messages that have left the inbox."""
    if keys:
        with write_transaction():
            IntakeClaim.delete().where(IntakeClaim.source_key.in_(list(keys))).execute()
