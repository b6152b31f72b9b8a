"""The case history: which status changes are allowed, and the append-only event log.

Every change to a case goes through `set_status` or `add_event`; nothing is ever deleted.
"""

from __future__ import annotations

from datetime import datetime

from db.database import insert_row
from db.models import (
    Case,
    CaseStatus,
    StatusEvent,
)

ALLOWED_TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.NEW: frozenset(
        {CaseStatus.IN_PROGRESS, CaseStatus.AWAITING_CUSTOMER, CaseStatus.RESOLVED,
         CaseStatus.CLOSED}
    ),
    CaseStatus.IN_PROGRESS: frozenset(
        {CaseStatus.AWAITING_CUSTOMER, CaseStatus.RESOLVED, CaseStatus.CLOSED}
    ),
    CaseStatus.AWAITING_CUSTOMER: frozenset(
        {CaseStatus.IN_PROGRESS, CaseStatus.RESOLVED, CaseStatus.CLOSED}
    ),
    CaseStatus.RESOLVED: frozenset({CaseStatus.IN_PROGRESS, CaseStatus.CLOSED}),
    # Closed is final: later mail about it opens a new case linked to this one.
    CaseStatus.CLOSED: frozenset(),
}


OPEN_STATUSES = (CaseStatus.NEW, CaseStatus.IN_PROGRESS, CaseStatus.AWAITING_CUSTOMER)


def set_status(case: Case, to_status: CaseStatus, actor: str, note: str, now: datetime) -> None:
    previous = case.status
    case.status = to_status
    case.updated_at = now
    case.resolved_at = now if to_status == CaseStatus.RESOLVED else case.resolved_at
    case.save(only=[Case.status, Case.updated_at, Case.resolved_at])
    add_event(case, "status", previous, to_status, actor, note, now)


def add_event(
    case: Case,
    kind: str,
    from_status: str | None,
    to_status: str | None,
    actor: str,
    note: str,
    now: datetime,
) -> None:
    """Append one entry to the case's history."""
    insert_row(
        StatusEvent, case=case, kind=kind, from_status=from_status, to_status=to_status,
        actor=actor, note=note, created_at=now,
    )
