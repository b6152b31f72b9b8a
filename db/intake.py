"""The intake ledger: which worker is handling which message of the mailbox.

Several workers share one mailbox. Each claims a batch of source keys before reading
them, so no two workers parse and classify the same email, and an idle worker never
waits on another's transaction. A claim is a lease: a worker that dies mid-batch leaves
claims that run out and are taken over. The unique Message-ID stays the final guard.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from db.database import database, write_transaction
from db.models import IntakeClaim

# The statements are written out rather than built by peewee: with a hundred keys in each
# IN list and a hundred rows to insert, building them cost more than running them (3 ms
# a batch). Their texts depend only on how many keys, so each is built once per count.
_TEXTS: dict[tuple[str, int, str], str] = {}


def claim_messages(
    keys: Sequence[str], worker: str, now: datetime, lease: timedelta, limit: int
) -> list[str]:
    """Claim up to `limit` of `keys` (in their order) that nobody else holds."""
    if not keys or limit <= 0:
        return []
    keys = list(keys)
    expires_before = now - lease
    with write_transaction():
        held = {key: (holder, IntakeClaim.claimed_at.python_value(claimed_at))
                for key, holder, claimed_at in _execute("held", keys, keys).fetchall()}
        free = [key for key in keys if key not in held][:limit]
        if free:
            claimed_at = IntakeClaim.claimed_at.db_value(now)
            _execute("insert", free, [value for key in free
                                      for value in (key, worker, claimed_at)])
        expired = [key for key, (holder, claimed_at) in held.items()
                   if holder != worker and claimed_at < expires_before]
        if expired and len(free) < limit:
            taken = expired[: limit - len(free)]
            _execute("take over", taken, [worker, IntakeClaim.claimed_at.db_value(now),
                                          IntakeClaim.claimed_at.db_value(expires_before),
                                          *taken])
        mine = {key for (key,) in _execute("mine", keys, [worker, *keys]).fetchall()}
    return [key for key in keys if key in mine][:limit]


def release_messages(keys: Sequence[str]) -> None:
    """Forget the claims of messages that have left the inbox."""
    if keys:
        with write_transaction():
            _execute("release", keys, list(keys))


def _execute(statement: str, keys: Sequence[str], params: list[Any]) -> Any:
    """Run one of the ledger's statements for `len(keys)` keys; returns the cursor."""
    mark = database.obj.param
    text = _TEXTS.get((statement, len(keys), mark))
    if text is None:
        marks = ", ".join([mark] * len(keys))
        text = {
            "held": f"SELECT source_key, worker, claimed_at FROM intake_claim "
                    f"WHERE source_key IN ({marks})",
            "insert": "INSERT INTO intake_claim (source_key, worker, claimed_at) VALUES "
                      + ", ".join([f"({mark}, {mark}, {mark})"] * len(keys))
                      + " ON CONFLICT (source_key) DO NOTHING",
            "take over": f"UPDATE intake_claim SET worker = {mark}, claimed_at = {mark} "
                         f"WHERE claimed_at < {mark} AND source_key IN ({marks})",
            "mine": f"SELECT source_key FROM intake_claim WHERE worker = {mark} "
                    f"AND source_key IN ({marks})",
            "release": f"DELETE FROM intake_claim WHERE source_key IN ({marks})",
        }[statement]
        _TEXTS[(statement, len(keys), mark)] = text
    return database.execute_sql(text, params)
