"""Delivering the outbox: pending replies go out after the commit that created them.

A reply is marked sent only once the transport accepted it; anything else leaves it
pending with the error and a later retry time. The outbox is drained after every batch,
so a new case's acknowledgement leaves within the same cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from db import outbox
from inbox_worker.delivery import DeliveryError, Transport
from inbox_worker.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    failed: int = 0


def deliver_pending(
    transport: Transport, settings: Settings, clock: Callable[[], datetime], limit: int = 500
) -> DeliveryReport:
    """Send every due reply (up to `limit`); failures are rescheduled, never dropped."""
    sent = failed = 0
    while True:
        batch = outbox.claim_due(clock(), limit=min(limit - sent - failed, 100),
                                 lease=timedelta(seconds=settings.claim_lease_seconds))
        for message in batch:
            try:
                transport.send(bytes(message.raw), settings.from_address, [message.recipients])
            except DeliveryError as error:
                retry_at = outbox.mark_failed(message, str(error), clock())
                failed += 1
                log.warning("message_id=%s delivery failed (%s); retry at %s",
                            message.message_id, error, retry_at.isoformat(timespec="seconds"))
                continue
            outbox.mark_sent(message, clock())
            sent += 1
        if not batch or sent + failed >= limit or failed:
            return DeliveryReport(sent, failed)
