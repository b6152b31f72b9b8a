"""Case operations: each runs in one transaction and is shared by the worker and the CLI.

The inbound message row (unique Message-ID) is written first in every intake operation,
so a second attempt at the same email fails with `DuplicateMessage` before any other
effect. Outgoing replies are stored as pending `Message` rows in the same commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from peewee import IntegrityError

from db.database import is_postgresql, write_transaction
from db.models import (
    Case,
    CaseStatus,
    CustomerAddress,
    DeliveryState,
    Direction,
    Dispute,
    DisputeStatus,
    Message,
    QuarantinedMessage,
    StatusEvent,
)
from db.records import (
    CaseNotFound,
    Composer,
    DuplicateMessage,
    InboundRecord,
    NewCaseRequest,
    OutboundDraft,
    TransitionNotAllowed,
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


def open_case(request: NewCaseRequest, acknowledge: Composer, now: datetime) -> Case:
    """Record the email, open its case (and dispute) and queue the acknowledgement."""
    inbound = request.inbound
    with write_transaction():
        case = Case.create(
            process=request.process,
            status=CaseStatus.NEW,
            customer_email=inbound.sender.lower(),
            customer_name=inbound.sender_name,
            subject=inbound.subject,
            confidence=request.confidence,
            details=request.details,
            previous_case=request.previous_case_id,
            created_at=now,
            updated_at=now,
        )
        # Derived from the database-assigned id, so two workers can never share one.
        case.tracking_number = f"{request.tracking_prefix}-{case.id:06d}"
        case.save(only=[Case.tracking_number])
        # A duplicate fails here and takes the case above with it (same transaction).
        _insert_inbound(inbound, kind="case_opened", now=now, case=case)
        if request.dispute is not None:
            draft = request.dispute
            Dispute.create(
                case=case,
                invoice_number=draft.invoice_number,
                disputed_amount=draft.disputed_amount,
                currency=draft.currency,
                reason=draft.reason,
                created_at=now,
                updated_at=now,
            )
        _add_event(case, "status", None, CaseStatus.NEW, "system", "opened by email", now)
        queue_outbound(case, acknowledge(case), now)
    return case


def record_inbound(
    inbound: InboundRecord,
    kind: str,
    now: datetime,
    reason: str = "",
    reply: OutboundDraft | None = None,
) -> Message:
    """Keep an email that opens no case (an ignored bounce, a request for the case list)."""
    with write_transaction():
        message = _insert_inbound(inbound, kind=kind, now=now, reason=reason)
        if reply is not None:
            _insert_outbound(None, reply, now)
    return message


def record_quarantined(inbound: InboundRecord, reason: str, now: datetime) -> None:
    """Note an email that could not be processed; the operator can release it later."""
    with write_transaction():
        QuarantinedMessage.create(
            message_id=inbound.message_id, sender=inbound.sender, subject=inbound.subject,
            source_key=inbound.source_key, reason=reason[:2000], raw=inbound.raw or None,
            created_at=now,
        )


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
            _set_status(case, CaseStatus.IN_PROGRESS, "customer", "customer replied", now)
        else:
            case.updated_at = now
            case.save(only=[Case.updated_at])
        if respond is not None:
            queue_outbound(case, respond(case), now)
    return case


def record_refused(
    case: Case, inbound: InboundRecord, now: datetime, respond: Composer | None = None
) -> None:
    """Keep mail that named a case its sender does not own, and note the attempt."""
    with write_transaction():
        _insert_inbound(inbound, kind="refused_foreign_sender", now=now,
                        reason=f"sender does not own {case.tracking_number}")
        _add_event(case, "security", None, None, "system",
                   f"{inbound.sender} asked about this case and was told nothing", now)
        if respond is not None:
            draft = respond(case)
            _insert_outbound(None, draft, now)


def change_status(
    tracking_number: str,
    to_status: CaseStatus,
    actor: str,
    now: datetime,
    note: str = "",
    notify: Composer | None = None,
    only_from: CaseStatus | None = None,
) -> Case:
    """Move a case to `to_status` if the transition table allows it; queue the notice.

    `only_from` narrows the table for commands with a specific meaning (`reopen` is
    resolved -> in_progress, not any -> in_progress).
    """
    with write_transaction():
        case = get_case(tracking_number, for_update=True)
        current = CaseStatus(case.status)
        allowed = to_status in ALLOWED_TRANSITIONS[current]
        if not allowed or (only_from is not None and current != only_from):
            raise TransitionNotAllowed(
                f"{tracking_number} cannot go from {current.value} to {to_status.value}"
            )
        _set_status(case, to_status, actor, note, now)
        if notify is not None:
            queue_outbound(case, notify(case), now)
    return case


def assign_case(tracking_number: str, assignee: str, actor: str, now: datetime) -> Case:
    """Give the case to a specialist; recorded in the history, not emailed."""
    with write_transaction():
        case = get_case(tracking_number, for_update=True)
        previous = case.assignee
        case.assignee = assignee
        case.updated_at = now
        case.save(only=[Case.assignee, Case.updated_at])
        _add_event(case, "assignment", previous, assignee, actor, "", now)
    return case


def add_note(tracking_number: str, note: str, actor: str, now: datetime) -> Case:
    """An internal note: kept in the history, never sent to the customer."""
    with write_transaction():
        case = get_case(tracking_number, for_update=True)
        _add_event(case, "note", None, None, actor, note, now)
    return case


def send_reply(tracking_number: str, actor: str, now: datetime, compose: Composer) -> Case:
    """Queue a specialist's reply to the customer in the case thread."""
    with write_transaction():
        case = get_case(tracking_number, for_update=True)
        draft = compose(case)
        queue_outbound(case, draft, now)
        _add_event(case, "reply", None, None, actor, draft.text, now)
        case.updated_at = now
        case.save(only=[Case.updated_at])
    return case


def decide_dispute(
    tracking_number: str,
    decision: DisputeStatus,
    actor: str,
    now: datetime,
    note: str,
    approved_amount: Decimal | None = None,
    notify: Composer | None = None,
) -> Dispute:
    """Record a specialist's decision on the case's dispute and tell the customer."""
    with write_transaction():
        case = get_case(tracking_number, for_update=True)
        dispute = Dispute.get_or_none(Dispute.case == case)
        if dispute is None:
            raise CaseNotFound(f"{tracking_number} has no dispute")
        approved_amount = _approved_amount(dispute, decision, approved_amount)
        previous = dispute.status
        dispute.status = decision
        dispute.approved_amount = approved_amount
        dispute.resolution_note = note
        dispute.updated_at = now
        dispute.save()
        _add_event(case, "dispute", previous, decision, actor, note, now)
        case.updated_at = now
        case.save(only=[Case.updated_at])
        if notify is not None:
            queue_outbound(case, notify(case), now)
    return dispute


def _approved_amount(
    dispute: Dispute, decision: DisputeStatus, amount: Decimal | None
) -> Decimal | None:
    """The credit a decision grants; refuses amounts that contradict the decision."""
    disputed = dispute.disputed_amount
    if decision == DisputeStatus.REJECTED:
        if amount:
            raise TransitionNotAllowed("a rejected dispute cannot approve an amount")
        return Decimal("0.00")
    if decision == DisputeStatus.APPROVED:
        if amount is None and disputed is None:
            raise TransitionNotAllowed("no disputed amount on record: give --amount")
        return amount if amount is not None else disputed
    if amount is None or amount <= 0:
        raise TransitionNotAllowed("a partial approval needs a positive --amount")
    if disputed is not None and amount >= disputed:
        raise TransitionNotAllowed(
            f"partial approval must be less than the disputed {disputed}; use approved"
        )
    return amount


def list_disputes() -> list[Dispute]:
    """Every dispute with its case, newest first."""
    return list(Dispute.select(Dispute, Case).join(Case).order_by(Dispute.id.desc()))


def list_quarantined() -> list[QuarantinedMessage]:
    """Quarantined emails not yet released, newest first."""
    return list(
        QuarantinedMessage.select()
        .where(QuarantinedMessage.released_at.is_null())
        .order_by(QuarantinedMessage.id.desc())
    )


def release_quarantined(item_id: int, now: datetime) -> QuarantinedMessage:
    """Mark a quarantined email released (the caller puts it back in the inbox)."""
    with write_transaction():
        item = QuarantinedMessage.get_or_none(QuarantinedMessage.id == item_id)
        if item is None or item.released_at is not None:
            raise CaseNotFound(f"no quarantined email with id {item_id}")
        item.released_at = now
        item.save(only=[QuarantinedMessage.released_at])
    return item


def get_case(tracking_number: str, for_update: bool = False) -> Case:
    """The case with this tracking number (case-insensitive), or `CaseNotFound`."""
    query = Case.select().where(Case.tracking_number == tracking_number.strip().upper())
    if for_update and is_postgresql():
        # SQLite has no row locks; its write transactions are IMMEDIATE, which serialises.
        query = query.for_update()
    case = query.first()
    if case is None:
        raise CaseNotFound(f"case {tracking_number} not found")
    return case


def list_cases(
    status: str | None = None,
    process: str | None = None,
    assignee: str | None = None,
    customer: str | None = None,
    statuses: Sequence[str] | None = None,
) -> list[Case]:
    """Cases matching every filter given, newest first."""
    query = Case.select()
    if status:
        query = query.where(Case.status == status)
    if statuses:
        query = query.where(Case.status.in_(list(statuses)))
    if process:
        query = query.where(Case.process == process)
    if assignee:
        query = query.where(Case.assignee == assignee)
    if customer:
        query = query.where(Case.customer_email == customer.lower())
    return list(query.order_by(Case.created_at.desc(), Case.id.desc()))


@dataclass(frozen=True)
class ThreadMatch:
    """The case an email belongs to, and whether its sender may learn about it."""

    case: Case
    sender_may_see: bool


def find_thread(
    sender: str, message_ids: Sequence[str], tracking_numbers: Sequence[str]
) -> ThreadMatch | None:
    """The case an email continues, by our Message-IDs first, then tracking numbers.

    The ownership check lives here so that no caller can find a case without it.
    """
    case = find_case_by_message_ids(message_ids) or find_case_by_tracking_numbers(
        tracking_numbers
    )
    if case is None:
        return None
    return ThreadMatch(case=case, sender_may_see=sender_owns(case, sender))


def sender_owns(case: Case, sender: str) -> bool:
    """The case's own address, or one the operator linked to the same account."""
    sender = sender.lower()
    if sender == case.customer_email:
        return True
    accounts = CustomerAddress.select(CustomerAddress.account).where(
        CustomerAddress.email == sender
    )
    return (
        CustomerAddress.select()
        .where(CustomerAddress.email == case.customer_email,
               CustomerAddress.account.in_(accounts))
        .exists()
    )


def open_cases_for(sender: str) -> list[Case]:
    """Open cases of this address and of addresses linked to the same account."""
    sender = sender.lower()
    accounts = CustomerAddress.select(CustomerAddress.account).where(
        CustomerAddress.email == sender
    )
    linked = CustomerAddress.select(CustomerAddress.email).where(
        CustomerAddress.account.in_(accounts)
    )
    return list(
        Case.select()
        .where((Case.customer_email == sender) | Case.customer_email.in_(linked),
               Case.status.in_(list(OPEN_STATUSES)))
        .order_by(Case.created_at.desc())
    )


def link_address(email: str, account: str, now: datetime) -> CustomerAddress:
    """Link an email address to a customer account (replacing an earlier link)."""
    with write_transaction():
        CustomerAddress.delete().where(CustomerAddress.email == email.lower()).execute()
        return CustomerAddress.create(email=email.lower(), account=account, created_at=now)


def is_known_message(message_id: str) -> bool:
    """True when this Message-ID was recorded (in or out) before."""
    return Message.select().where(Message.message_id == message_id).exists()


def find_case_by_message_ids(message_ids: Iterable[str]) -> Case | None:
    """The case of the newest of our stored messages among `message_ids`, if any."""
    ids = [message_id for message_id in message_ids if message_id]
    if not ids:
        return None
    message = (
        Message.select()
        .where(Message.message_id.in_(ids), Message.case.is_null(False))
        .order_by(Message.id.desc())
        .first()
    )
    return message.case if message else None


def find_case_by_tracking_numbers(tracking_numbers: Iterable[str]) -> Case | None:
    """The first existing case among the tracking numbers found in an email."""
    for tracking_number in tracking_numbers:
        case = Case.get_or_none(Case.tracking_number == tracking_number.upper())
        if case is not None:
            return case
    return None


def thread_message_ids(case: Case) -> list[str]:
    """Message-IDs of the case's emails, oldest first: the References chain."""
    query = Message.select(Message.message_id).where(Message.case == case).order_by(Message.id)
    return [message.message_id for message in query]


def queue_outbound(case: Case | None, draft: OutboundDraft, now: datetime) -> Message:
    """Store an outgoing email as pending; the outbox delivers it after the commit."""
    return _insert_outbound(case, draft, now)


def _insert_outbound(case: Case | None, draft: OutboundDraft, now: datetime) -> Message:
    return Message.create(
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
) -> Message:
    """Record the email; its unique Message-ID makes a second attempt fail here.

    Callers run this inside their own transaction (a savepoint when batched), so the
    IntegrityError rolls back just that operation and the batch stays usable.
    """
    try:
        return Message.create(
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


def _set_status(case: Case, to_status: CaseStatus, actor: str, note: str, now: datetime) -> None:
    previous = case.status
    case.status = to_status
    case.updated_at = now
    case.resolved_at = now if to_status == CaseStatus.RESOLVED else case.resolved_at
    case.save(only=[Case.status, Case.updated_at, Case.resolved_at])
    _add_event(case, "status", previous, to_status, actor, note, now)


def _add_event(
    case: Case,
    kind: str,
    from_status: str | None,
    to_status: str | None,
    actor: str,
    note: str,
    now: datetime,
) -> StatusEvent:
    return StatusEvent.create(
        case=case, kind=kind, from_status=from_status, to_status=to_status,
        actor=actor, note=note, created_at=now,
    )
