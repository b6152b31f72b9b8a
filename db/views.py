"""Explicit JSON shapes of cases, disputes, messages and history for `--json` output.

These shapes are an interface that scripts rely on: fields are added, never renamed.
Money is a decimal string, times are ISO 8601 UTC.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from db.models import Case, Dispute, Message, QuarantinedMessage, StatusEvent


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _money(value: Decimal | None) -> str | None:
    return str(value) if value is not None else None


def dispute_json(dispute: Dispute | None) -> dict[str, Any] | None:
    if dispute is None:
        return None
    return {
        "invoice_number": dispute.invoice_number,
        "disputed_amount": _money(dispute.disputed_amount),
        "currency": dispute.currency,
        "reason": dispute.reason,
        "status": dispute.status,
        "approved_amount": _money(dispute.approved_amount),
        "resolution_note": dispute.resolution_note,
    }


def case_json(case: Case) -> dict[str, Any]:
    """One row of `cases list --json`."""
    return {
        "tracking_number": case.tracking_number,
        "process": case.process,
        "status": case.status,
        "customer_email": case.customer_email,
        "customer_name": case.customer_name,
        "subject": case.subject,
        "created_at": _time(case.created_at),
        "updated_at": _time(case.updated_at),
        "assignee": case.assignee,
        "confidence": case.confidence,
        "details": case.details or {},
        "previous_case": case.previous_case.tracking_number if case.previous_case else None,
        "dispute": dispute_json(Dispute.get_or_none(Dispute.case == case)),
    }


def message_json(message: Message) -> dict[str, Any]:
    return {
        "direction": message.direction,
        "kind": message.kind,
        "message_id": message.message_id,
        "in_reply_to": message.in_reply_to,
        "sender": message.sender,
        "recipients": message.recipients,
        "subject": message.subject,
        "text": message.body_text,
        "attachments": message.attachments or [],
        "delivery_state": message.delivery_state,
        "attempts": message.attempts,
        "last_error": message.last_error,
        "created_at": _time(message.created_at),
        "sent_at": _time(message.sent_at),
    }


def event_json(event: StatusEvent) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "from": event.from_status,
        "to": event.to_status,
        "actor": event.actor,
        "note": event.note,
        "created_at": _time(event.created_at),
    }


def case_detail_json(case: Case) -> dict[str, Any]:
    """`cases show --json`: the case, its thread in and out, and its history."""
    messages = case.messages.order_by(Message.id)
    events = case.events.order_by(StatusEvent.id)
    return {
        **case_json(case),
        "messages": [message_json(message) for message in messages],
        "history": [event_json(event) for event in events],
    }


def quarantined_json(item: QuarantinedMessage) -> dict[str, Any]:
    return {
        "id": item.id,
        "message_id": item.message_id,
        "sender": item.sender,
        "subject": item.subject,
        "source_key": item.source_key,
        "reason": item.reason,
        "created_at": _time(item.created_at),
        "released_at": _time(item.released_at),
    }
