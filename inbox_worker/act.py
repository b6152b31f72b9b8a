"""Act: carry out a routing decision with one case operation, and name the outcome.

Every branch is a single call into `db/`, which records the email, its effect and any
reply in one transaction. A `DuplicateMessage` from the database (another worker won the
race) is an outcome, not an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from classifiers.catalog import load_catalog
from classifiers.model import Classification
from db import cases
from db.lookup import IntakeHistory, intake_history, open_cases_for
from db.records import DisputeDraft, DuplicateMessage, InboundRecord, NewCaseRequest
from inbox_worker import notices
from inbox_worker.message import InboundEmail
from inbox_worker.route import (
    Decision,
    Duplicate,
    FollowUp,
    Ignore,
    NewCase,
    NotYours,
    StatusRequest,
    reopen_until,
)
from inbox_worker.settings import Settings


@dataclass(frozen=True)
class Outcome:
    """What happened to one email, for the log line and the run summary."""

    outcome: str
    case: str | None = None
    process: str | None = None
    reason: str = ""


def act_on(
    decision: Decision,
    email: InboundEmail,
    source_key: str,
    settings: Settings,
    history: IntakeHistory,
    now: datetime,
) -> Outcome:
    """Apply `decision` to the database (one transaction) and describe the result.

    `history` counts the automatic replies this queues, for the per-sender limit.
    """
    record = inbound_record(email, source_key, now)
    try:
        outcome = _apply(decision, email, record, settings, history, now)
    except DuplicateMessage:  # its savepoint in db/cases.py undid what it had written
        return Outcome("duplicate", reason="recorded by another worker meanwhile")
    history.note_message(email.message_id)
    return outcome


def _apply(
    decision: Decision,
    email: InboundEmail,
    record: InboundRecord,
    settings: Settings,
    history: IntakeHistory,
    now: datetime,
) -> Outcome:
    match decision:
        case Ignore(outcome, reason):
            cases.record_inbound(record, outcome, now, reason=reason)
            return Outcome(outcome, reason=reason)
        case Duplicate():
            return Outcome("duplicate")
        case NewCase(classification, previous_case):
            acknowledge = None
            if allow_auto_reply(history, email.sender, settings):
                acknowledge = notices.acknowledgement(
                    settings, email, case_details(classification), now)
            case = cases.open_case(
                new_case_request(record, classification, settings, previous_case),
                acknowledge, now,
            )
            reason = "" if acknowledge else "acknowledgement withheld: reply limit reached"
            return Outcome("case_opened", case.tracking_number, case.process, reason)
        case FollowUp(case, wakes_case):
            case = cases.add_follow_up(case, record, now, wakes_case=wakes_case,
                                       reopen_until=reopen_until(case, settings))
            return Outcome("follow_up_added", case.tracking_number, case.process)
        case StatusRequest(None):
            reply = None
            if allow_auto_reply(history, email.sender, settings):
                reply = notices.case_list(settings, email, open_cases_for(email.sender), now)
            cases.record_inbound(record, "status_request", now, reply=reply)
            return Outcome("case_list_sent" if reply else "status_request_unanswered")
        case StatusRequest(case):
            respond = None
            if allow_auto_reply(history, email.sender, settings):
                respond = notices.status_reply(settings, email, now)
            # Asking wakes a case that waited for the customer or was resolved: "PO-778
            # attached, any update?" answers our question, and "still waiting" after a
            # resolution is what our resolution email said to reply if something is wrong.
            cases.add_follow_up(case, record, now, kind="status_request",
                                reopen_until=reopen_until(case, settings), respond=respond)
            outcome = "status_sent" if respond else "status_request_unanswered"
            return Outcome(outcome, case.tracking_number, case.process)
        case NotYours(case):
            respond = None
            if allow_auto_reply(history, email.sender, settings):
                respond = notices.not_your_case(settings, email, now)
            cases.record_refused(case, record, now, respond)
            reason = f"sender does not own {case.tracking_number}"
            return Outcome("refused_foreign_sender", reason=reason)
    raise AssertionError(f"unhandled decision {decision!r}")


# The period `max_auto_replies_per_hour` counts over.
AUTO_REPLY_WINDOW = timedelta(hours=1)


def history_for(emails: Sequence[InboundEmail], now: datetime) -> IntakeHistory:
    """The `IntakeHistory` these emails are routed and acted on with."""
    return intake_history([email.message_id for email in emails],
                          [email.sender for email in emails], now - AUTO_REPLY_WINDOW)


def allow_auto_reply(history: IntakeHistory, sender: str, settings: Settings) -> bool:
    """True, and counted, until a sender had `max_auto_replies_per_hour` automatic emails.

    The last defence against a loop with a robot that marks its mail as nothing: every
    email is still recorded (and cases still open); only our automatic answers stop. The
    reply is counted when allowed, so a burst inside one batch meets the limit too.
    """
    if history.automatic_replies_to(sender) >= settings.max_auto_replies_per_hour:
        return False
    history.note_automatic_reply(sender)
    return True


def new_case_request(
    record: InboundRecord,
    classification: Classification,
    settings: Settings,
    previous_case: cases.Case | None = None,
) -> NewCaseRequest:
    """The case to open for a classified email, with a dispute when the process has one."""
    process = load_catalog()[classification.process]
    fields = classification.fields
    dispute = None
    if process.opens_dispute:
        dispute = DisputeDraft(
            invoice_number=fields.invoice_number,
            disputed_amount=fields.amount,
            currency=fields.currency,
            reason=fields.reason or record.subject,
        )
    return NewCaseRequest(
        inbound=record,
        process=process.name,
        tracking_prefix=settings.tracking_prefix,
        confidence=round(classification.confidence, 4),
        details=case_details(classification),
        dispute=dispute,
        previous_case_id=previous_case.id if previous_case else None,
    )


def case_details(classification: Classification) -> dict[str, Any]:
    """Extracted fields as JSON-ready values (decimal and date as strings)."""
    fields = classification.fields
    return {
        "invoice_number": fields.invoice_number,
        "amount": str(fields.amount) if fields.amount is not None else None,
        "currency": fields.currency,
        "account_number": fields.account_number,
        "requested_date": fields.requested_date.isoformat() if fields.requested_date else None,
    }


def inbound_record(email: InboundEmail, source_key: str, now: datetime) -> InboundRecord:
    """The database's view of an email: no MIME, just what a specialist needs."""
    return InboundRecord(
        message_id=email.message_id,
        sender=email.sender,
        sender_name=email.sender_name,
        subject=email.subject,
        text=email.text,
        received_at=now,
        raw=email.raw,
        in_reply_to=email.in_reply_to,
        references=email.references,
        recipients=email.recipients,
        source_key=source_key,
        attachments=tuple(
            {"name": item.name, "type": item.content_type, "size": item.size}
            for item in email.attachments
        ),
    )
