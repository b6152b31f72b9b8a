"""Releasing quarantined email: the operator's way to have a fixed problem reprocessed.

The stored raw bytes go back into the inbox and the next pass treats them as new mail
(their Message-ID was never recorded as handled). The copy in the Quarantine folder
stays as a record.
"""

from __future__ import annotations

from contextlib import closing
from datetime import datetime

from db.database import write_transaction
from db.lifecycle import release_quarantined
from inbox_worker.settings import Settings
from inbox_worker.sources import open_source


class ReleaseError(Exception):
    """The email cannot be put back (it was never read: too large)."""


def release(settings: Settings, item_id: int, now: datetime) -> str:
    """Put quarantined email `item_id` back in the inbox; returns a one-line report."""
    with write_transaction():
        item = release_quarantined(item_id, now)
        if item.raw is None:
            raise ReleaseError(f"email {item_id} was never read ({item.reason}); "
                               "fetch it from the Quarantine folder by hand")
        # Inside the transaction: if the append fails, the release is rolled back.
        with closing(open_source(settings)) as source:
            source.put_back(bytes(item.raw))
    return f"released {item.message_id} from {item.sender or 'unknown sender'} to the inbox"
