"""Intake operations: each runs in one transaction and is shared by the worker and the CLI.

The inbound message row (unique Message-ID) is written in every intake operation, so a
second attempt at the same email fails with `DuplicateMessage` and leaves no trace.
Outgoing replies are stored as pending `Message` rows in the same commit.
"""

from __future__ import annotations

from datetime import datetime

from peewee import IntegrityError

from db.database import insert_numbered_row, insert_row, write_transaction
from db.history import add_event, set_status
from db.models import (
    Case,
    CaseStatus,
    DeliveryState,
    Direction,
    Dispute,
    Message,
    QuarantinedMessage,
)
from db.records import (
    Composer,
    DisputeDraft,
    DuplicateMessage,
    InboundRecord,
    NewCaseRequest,
    OutboundDraft,
)


def open_case(request: NewCaseRequest, acknowledge: Composer | None, now: datetime) -> Case:
    """Record the email, open its case (and dispute) and queue the acknowledgement.

    `acknowledge` is None when the sender has had too many automatic replies lately.
    """
    inbound = request.inbound
    values = {
        "process": request.process,
        "status": CaseStatus.NEW,
        "customer_email": inbound.sender.lower(),
        "customer_name": inbound.sender_name,
        "subject": inbound.subject,
        "confidence": request.confidence,
        "details": request.details,
        "previous_case": request.previous_case_id,
        "created_at": now,
        "updated_at": now,
    }
    with write_transaction():
        # Derived from the database-assigned id, so two workers can never share one.
        case = Case(id=insert_numbered_row(Case, "tracking_number", request.tracking_prefix,
                                           **values), **values)
        case.tracking_number = f"{request.tracking_prefix}-{case.id:06d}"
        # A duplicate fails here and takes the case above with it (same transaction).
        _insert_inbound(inbound, kind="case_opened", now=now, case=case)
        if request.dispute is not None:
            insert_dispute(case, request.dispute, now)
        add_event(case, "status", None, CaseStatus.NEW, "system", "opened by email", now)
        if acknowledge is not None:
            queue_outbound(case, acknowledge(case), now)
        else:
            # The specialist must know the customer has no tracking number from us yet.
            add_event(case, "note", None, None, "system", "no acknowledgement sent: the "
                      "sender reached the limit of automatic replies per hour", now)
    return case


def insert_dispute(case: Case, draft: DisputeDraft, now: datetime) -> Dispute:
    """The case's dispute record, as far as the customer gave its facts."""
    values = {"case": case, "invoice_number": draft.invoice_number,
              "disputed_amount": draft.disputed_amount, "currency": draft.currency,
              "reason": draft.reason, "created_at": now, "updated_at": now}
    return Dispute(id=insert_row(Dispute, **values), **values)


def record_inbound(
    inbound: InboundRecord,
    kind: str,
    now: datetime,
    reason: str = "",
    reply: OutboundDraft | None = None,
) -> int:
    """Keep an email that opens no case (an ignored bounce, a request for the case list)."""
    with write_transaction():
        message = _insert_inbound(inbound, kind=kind, now=now, reason=reason)
        if reply is not None:
            queue_outbound(None, reply, now)
    return message


def record_quarantined(
    inbound: InboundRecord, reason: str, now: datetime, reply: OutboundDraft | None = None
) -> None:
    """Note an email that could not be processed; the operator can release it later.

    `reply`, when given, tells the sender (an email too large to read).
    """
    with write_transaction():
        QuarantinedMessage.create(
            message_id=inbound.message_id, sender=inbound.sender, subject=inbound.subject,
            source_key=inbound.source_key, reason=reason[:2000], raw=inbound.raw or None,
            created_at=now,
        )
        if reply is not None:
            queue_outbound(None, reply, now)



def add_follow_up(
    case: Case,
    inbound: InboundRecord,
    now: datetime,
    *,
    kind: str = "follow_up",
    reopen_until: datetime | None = None,
    respond: Composer | None = None,
    wakes_case: bool = True,
) -> Case:
    """Attach a customer's reply to its case, moving the case back to work if it waited.

    A reply to a case awaiting the customer, or to a resolved case while `reopen_until`
    has not passed, puts it back `in_progress` (unless `wakes_case` is false, as for a
    mere status question). `respond`, when given, queues an answer in the thread.
    """
    with write_transaction():
        _insert_inbound(inbound, kind=kind, now=now, case=case)
        case = Case.get_by_id(case.id)
        status = CaseStatus(case.status)
        reopen = (
            status == CaseStatus.RESOLVED
            and reopen_until is not None
            and now <= reopen_until
        )
        if wakes_case and (status == CaseStatus.AWAITING_CUSTOMER or reopen):
            set_status(case, CaseStatus.IN_PROGRESS, "customer", "customer replied", now)
        else:
            case.updated_at = now
            case.save(only=[Case.updated_at])
        if respond is not None:
            queue_outbound(case, respond(case), now)
    return case


# How much of a refused email the specialist sees in the history.
REFUSED_TEXT_CHARS = 500


def _refused_note(inbound: InboundRecord) -> str:
    """What a specialist must see of mail about a case from someone who is not its
    customer: a colleague's information, or a fraud attempt ("change the IBAN to ...")."""
    text = " ".join(inbound.text.split())
    if len(text) > REFUSED_TEXT_CHARS:
        text = text[:REFUSED_TEXT_CHARS] + " [...]"
    return (f"{inbound.sender} wrote about this case and was told nothing (not an address "
            f"of this customer; `customers link` if it should be). Subject: "
            f"{inbound.subject!r}. Text: {text or '(none)'}")


def record_refused(
    case: Case, inbound: InboundRecord, now: datetime, respond: Composer | None = None
) -> None:
    """Keep mail that named a case its sender does not own, and note the attempt."""
    with write_transaction():
        _insert_inbound(inbound, kind="refused_foreign_sender", now=now,
                        reason=f"sender does not own {case.tracking_number}")
        add_event(case, "security", None, None, "system", _refused_note(inbound), now)
        if respond is not None:
            draft = respond(case)
            queue_outbound(None, draft, now)


def queue_outbound(case: Case | None, draft: OutboundDraft, now: datetime) -> int:
    """Store an outgoing email as pending; the outbox delivers it after the commit."""
    return insert_row(
        Message,
        case=case,
        direction=Direction.OUTBOUND,
        message_id=draft.message_id,
        in_reply_to=draft.in_reply_to,
        references=" ".join(draft.references),
        recipients=draft.recipient,
        subject=draft.subject,
        body_text=draft.text,
        raw=draft.raw,
        kind=draft.kind,
        delivery_state=DeliveryState.PENDING,
        next_attempt_at=now,
        created_at=now,
    )


def _insert_inbound(
    inbound: InboundRecord, kind: str, now: datetime, reason: str = "", case: Case | None = None
) -> int:
    """Record the email; its unique Message-ID makes a second attempt fail here.

    Callers run this inside their own transaction (a savepoint when batched), so the
    IntegrityError rolls back just that operation and the batch stays usable.
    """
    try:
        return insert_row(
            Message,
            case=case,
            direction=Direction.INBOUND,
            message_id=inbound.message_id,
            in_reply_to=inbound.in_reply_to,
            references=" ".join(inbound.references),
            sender=inbound.sender.lower(),
            recipients=", ".join(inbound.recipients),
            subject=inbound.subject,
            body_text=inbound.text,
            raw=inbound.raw,
            kind=kind,
            reason=reason,
            source_key=inbound.source_key,
            attachments=list(inbound.attachments),
            created_at=now,
        )
    except IntegrityError:
        raise DuplicateMessage(inbound.message_id) from None
