"""What specialists do to a case: status, assignment, notes, replies, dispute decisions.

Each operation runs in one transaction; a customer-visible change queues its email in the
same commit (see db/outbox.py), so the customer hears of every change exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from db.cases import insert_dispute, queue_outbound
from db.database import write_transaction
from db.history import ALLOWED_TRANSITIONS, OPEN_STATUSES, add_event, set_status
from db.lookup import get_case
from db.models import (
    Case,
    CaseStatus,
    CustomerAddress,
    Dispute,
    DisputeStatus,
    QuarantinedMessage,
)
from db.records import (
    CaseNotFound,
    Composer,
    DisputeDraft,
    TransitionNotAllowed,
)


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
        if to_status == CaseStatus.CLOSED:
            _refuse_undecided_dispute(case)
            _refuse_unexplained_close(case, note)
        set_status(case, to_status, actor, note, now)
        if notify is not None:
            queue_outbound(case, notify(case), now)
    return case


@dataclass(frozen=True)
class Refiling:
    """What `change_process` did: the case, its process before, and the dispute it opened
    or removed (None when neither)."""

    case: Case
    previous: str
    dispute_opened: Dispute | None = None
    dispute_removed: bool = False


def change_process(
    tracking_number: str, process: str, opens_dispute: bool, actor: str, now: datetime
) -> Refiling:
    """File a misclassified case under `process`; internal, the customer is not emailed.

    A charge correction needs its dispute record, made from what the email said; leaving
    that process removes a dispute nobody has acted on yet. One that was reviewed or
    decided has been emailed about, and one a specialist amended holds their corrections,
    so the case keeps its process.
    """
    with write_transaction():
        case = get_case(tracking_number, for_update=True)
        _refuse_closed(case, "it cannot be filed under another process")
        previous = case.process
        if process == previous:
            return Refiling(case, previous)
        dispute = Dispute.get_or_none(Dispute.case == case)
        if dispute is not None and not opens_dispute and dispute.status != DisputeStatus.OPEN:
            raise TransitionNotAllowed(
                f"the dispute of {tracking_number} is {dispute.status} and the customer was "
                f"told so: it stays a charge correction")
        if dispute is not None and not opens_dispute and dispute.updated_at > dispute.created_at:
            raise TransitionNotAllowed(
                f"the dispute of {tracking_number} was amended (disputes amend): it stays a "
                f"charge correction, so the corrections are not lost")
        case.process, case.updated_at = process, now
        case.save(only=[Case.process, Case.updated_at])
        add_event(case, "process", previous, process, actor, "filed under another process",
                  now)
        if dispute is not None and not opens_dispute:
            dispute.delete_instance()
            return Refiling(case, previous, dispute_removed=True)
        if dispute is None and opens_dispute:
            opened = insert_dispute(case, _draft_from_details(case), now)
            return Refiling(case, previous, dispute_opened=opened)
        return Refiling(case, previous)


def _draft_from_details(case: Case) -> DisputeDraft:
    """The dispute's facts from the fields extracted when the case opened."""
    details = case.details or {}
    amount = details.get("amount")
    return DisputeDraft(invoice_number=details.get("invoice_number"),
                        disputed_amount=Decimal(amount) if amount else None,
                        currency=details.get("currency"), reason=case.subject)


@dataclass(frozen=True)
class Assignment:
    """What `assign_case` did: `changed` is False when the case already had that assignee
    (nothing was written, no history event)."""

    case: Case
    previous: str | None
    changed: bool


def assign_case(tracking_number: str, assignee: str, actor: str, now: datetime) -> Assignment:
    """Give the case to a specialist; recorded in the history, not emailed.

    Giving it to the specialist who already has it changes nothing: no "maria -> maria"
    event in the history.
    """
    with write_transaction():
        case = get_case(tracking_number, for_update=True)
        previous = case.assignee
        if previous == assignee:
            return Assignment(case, previous, changed=False)
        case.assignee = assignee
        case.updated_at = now
        case.save(only=[Case.assignee, Case.updated_at])
        add_event(case, "assignment", previous, assignee, actor, "", now)
    return Assignment(case, previous, changed=True)


def add_note(tracking_number: str, note: str, actor: str, now: datetime) -> Case:
    """An internal note: kept in the history, never sent to the customer."""
    with write_transaction():
        case = get_case(tracking_number, for_update=True)
        add_event(case, "note", None, None, actor, note, now)
    return case


def send_reply(tracking_number: str, actor: str, now: datetime, compose: Composer) -> Case:
    """Queue a specialist's reply to the customer in the case thread.

    A case still `new` moves to `in_progress` first: a specialist has picked it up, and
    the reply says so instead of "waiting for a specialist".
    """
    with write_transaction():
        case = get_case(tracking_number, for_update=True)
        if CaseStatus(case.status) == CaseStatus.NEW:
            set_status(case, CaseStatus.IN_PROGRESS, actor, "replied to the customer", now)
        draft = compose(case)
        queue_outbound(case, draft, now)
        add_event(case, "reply", None, None, actor, draft.text, now)
        case.updated_at = now
        case.save(only=[Case.updated_at])
    return case


@dataclass(frozen=True)
class DisputeReview:
    """What `review_dispute` did.

    `started` is False when the dispute was already under review (nothing changed and
    no email was queued); `case_moved` is True when the case went from new to in progress.
    """

    dispute: Dispute
    started: bool
    case_moved: bool


def review_dispute(
    tracking_number: str,
    actor: str,
    now: datetime,
    note: str = "",
    notify: Composer | None = None,
) -> DisputeReview:
    """Mark the case's dispute under review and tell the customer the charge is investigated.

    Marking it twice changes nothing and sends nothing: the customer hears of the review
    once. A decided dispute cannot go back under review (the customer has the decision;
    only `decide --revise` changes it), and neither can the dispute of a resolved or closed
    case: the email promises the decision in this thread, which such a case no longer is.
    A case still `new` moves to `in_progress` with it, since a specialist is now on it.
    """
    with write_transaction():
        case, dispute = _locked_dispute(tracking_number)
        if dispute.status in DECIDED_DISPUTES:
            raise TransitionNotAllowed(
                f"the dispute of {case.tracking_number} was already decided "
                f"({dispute.status}) and cannot go back under review; to change the "
                f"decision, use disputes decide --revise")
        if dispute.status == DisputeStatus.UNDER_REVIEW:
            return DisputeReview(dispute, started=False, case_moved=False)
        status = CaseStatus(case.status)
        if status not in OPEN_STATUSES:
            # Resolved can be reopened explicitly (the customer is told why); closed is final.
            remedy = (f"reopen it first (cases reopen {case.tracking_number})"
                      if status == CaseStatus.RESOLVED else "a closed case cannot change")
            raise TransitionNotAllowed(
                f"{case.tracking_number} is {status.value}: its dispute cannot go under "
                f"review; {remedy}")
        case_moved = status == CaseStatus.NEW
        if case_moved:
            # Before the dispute event, so the customer's "last change" is the review.
            set_status(case, CaseStatus.IN_PROGRESS, actor, "dispute under review", now)
        previous = dispute.status
        dispute.status = DisputeStatus.UNDER_REVIEW
        dispute.updated_at = now
        dispute.save(only=[Dispute.status, Dispute.updated_at])
        add_event(case, "dispute", previous, DisputeStatus.UNDER_REVIEW, actor, note, now)
        case.updated_at = now
        case.save(only=[Case.updated_at])
        if notify is not None:
            queue_outbound(case, notify(case), now)
    return DisputeReview(dispute, started=True, case_moved=case_moved)


def decide_dispute(
    tracking_number: str,
    decision: DisputeStatus,
    actor: str,
    now: datetime,
    note: str,
    approved_amount: Decimal | None = None,
    notify: Composer | None = None,
    revise: bool = False,
) -> Dispute:
    """Record a specialist's decision on the case's dispute and tell the customer.

    A dispute already decided is changed only with `revise`: the customer has been told
    the first decision, and the second email must say that it replaces it. The dispute of
    a closed case is not decided at all (the customer was told the case is closed, and
    closed is final); a resolved case's dispute may be, since deciding often resolves it.
    """
    with write_transaction():
        case, dispute = _locked_dispute(tracking_number)
        _refuse_closed(case, "its dispute cannot be decided")
        if dispute.status in DECIDED_DISPUTES and not revise:
            raise TransitionNotAllowed(
                f"the dispute of {case.tracking_number} was already decided "
                f"({dispute.status}); to change the decision, use --revise (the customer "
                f"is told that it replaces the earlier one)")
        approved_amount = _approved_amount(dispute, decision, approved_amount)
        previous = dispute.status
        dispute.status = decision
        dispute.approved_amount = approved_amount
        dispute.resolution_note = note
        dispute.updated_at = now
        dispute.save()
        add_event(case, "dispute", previous, decision, actor, note, now)
        case.updated_at = now
        case.save(only=[Case.updated_at])
        if notify is not None:
            queue_outbound(case, notify(case), now)
    return dispute


DECIDED_DISPUTES = frozenset(
    {DisputeStatus.APPROVED, DisputeStatus.PARTIALLY_APPROVED, DisputeStatus.REJECTED})


def _refuse_closed(case: Case, consequence: str) -> None:
    """Closed is final: the customer was told so."""
    if CaseStatus(case.status) == CaseStatus.CLOSED:
        raise TransitionNotAllowed(f"{case.tracking_number} is closed: {consequence}; a "
                                   f"closed case cannot change")


def _refuse_unexplained_close(case: Case, note: str) -> None:
    """A resolved case was explained to the customer when it was resolved; one closed
    from any other status was not, and the notice would say "closed" and nothing else."""
    if CaseStatus(case.status) != CaseStatus.RESOLVED and not note.strip():
        raise TransitionNotAllowed(
            f"{case.tracking_number} is {case.status}, not resolved: closing it needs a "
            f"--note telling the customer why (billing-inbox cases status "
            f"{case.tracking_number} closed --note TEXT)")


def _refuse_undecided_dispute(case: Case) -> None:
    """Closed is final, and a closed case's dispute cannot be decided: it would stay open
    in the dispute list for good. So it is decided first."""
    dispute = Dispute.get_or_none(Dispute.case == case)
    if dispute is not None and dispute.status not in DECIDED_DISPUTES:
        raise TransitionNotAllowed(
            f"{case.tracking_number} has an undecided dispute ({dispute.status}): decide "
            f"it first (billing-inbox disputes decide {case.tracking_number} ...), then "
            f"close the case")


def _locked_dispute(tracking_number: str) -> tuple[Case, Dispute]:
    """The case (row-locked) and its dispute; CaseNotFound when it has none."""
    case = get_case(tracking_number, for_update=True)
    dispute = Dispute.get_or_none(Dispute.case == case)
    if dispute is None:
        raise CaseNotFound(f"{tracking_number} has no dispute")
    return case, dispute


# What a MoneyField holds (14 digits, 2 of them decimals).
MAX_AMOUNT = Decimal("999999999999.99")


def _approved_amount(
    dispute: Dispute, decision: DisputeStatus, amount: Decimal | None
) -> Decimal | None:
    """The credit a decision grants; refuses amounts that contradict the decision.

    The amount is emailed to the customer as credited, so it must be a real amount of
    money: finite, in cents (never rounded silently), more than zero for an approval, the
    disputed amount for a full approval and less than it for a partial one.
    """
    disputed = dispute.disputed_amount
    if disputed is not None and not (disputed.is_finite() and disputed > 0):
        disputed = None  # nothing usable on record: as if the customer gave no amount
    if amount is not None:
        amount = _in_cents(amount)
    if decision == DisputeStatus.REJECTED:
        if amount:
            raise TransitionNotAllowed("a rejected dispute cannot approve an amount")
        return Decimal("0.00")
    if amount is not None and amount <= 0:
        raise TransitionNotAllowed(
            f"the approved amount must be more than zero, not {amount}; to grant nothing, "
            f"use rejected")
    if decision == DisputeStatus.APPROVED:
        if amount is None and disputed is None:
            raise TransitionNotAllowed("no disputed amount on record: give --amount, or put "
                                       "it on record first (disputes amend ... --amount X)")
        if amount is not None and disputed is not None and amount != disputed:
            raise TransitionNotAllowed(
                f"approved grants the whole disputed {disputed}, not {amount}; to credit "
                f"part of it, use partially_approved")
        return amount if amount is not None else disputed
    if amount is None:
        raise TransitionNotAllowed("a partial approval needs a positive --amount")
    if disputed is not None and amount >= disputed:
        raise TransitionNotAllowed(
            f"partial approval must be less than the disputed {disputed}; use approved"
        )
    return amount


def _in_cents(amount: Decimal) -> Decimal:
    """`amount` as money in cents; refuses NaN, infinity, fractions of a cent (never
    rounded silently) and what a MoneyField cannot hold."""
    if not amount.is_finite():
        raise TransitionNotAllowed(f"the amount must be a number, not {amount}")
    if amount.copy_abs() > MAX_AMOUNT or amount != amount.quantize(Decimal("0.01")):
        raise TransitionNotAllowed(
            f"the amount {amount} is not an amount in cents up to {MAX_AMOUNT}")
    return amount.quantize(Decimal("0.01"))


@dataclass(frozen=True)
class DisputeAmendment:
    """What `amend_dispute` did: each field it changed, with its value before and after
    (empty when the record already said so: nothing was written)."""

    dispute: Dispute
    changes: dict[str, tuple[object, object]]


def amend_dispute(
    tracking_number: str,
    actor: str,
    now: datetime,
    amount: Decimal | None = None,
    currency: str | None = None,
    invoice_number: str | None = None,
) -> DisputeAmendment:
    """Correct what the dispute record says is disputed: an amount or invoice the
    extractor missed, or that the customer sent in a later email. Internal: the customer
    is not emailed; the history keeps each value before and after.

    Refused once the dispute is decided (the decision, emailed to the customer, was made
    on the old record: `decide --revise` changes it) and for a closed case.
    """
    wanted: dict[str, object] = {}
    if amount is not None:
        disputed = _in_cents(amount)
        if disputed <= 0:
            raise TransitionNotAllowed(f"a disputed amount is more than zero, not {amount}")
        wanted["disputed_amount"] = disputed
    if currency is not None:
        wanted["currency"] = currency
    if invoice_number is not None:
        wanted["invoice_number"] = invoice_number
    with write_transaction():
        case, dispute = _locked_dispute(tracking_number)
        _refuse_closed(case, "its dispute cannot change")
        if dispute.status in DECIDED_DISPUTES:
            raise TransitionNotAllowed(
                f"the dispute of {case.tracking_number} was already decided "
                f"({dispute.status}) on the record as it was; to change the decision, use "
                f"disputes decide --revise")
        changes = {field: (getattr(dispute, field), value) for field, value in wanted.items()
                   if getattr(dispute, field) != value}
        if changes:
            for field, (_, value) in changes.items():
                setattr(dispute, field, value)
            dispute.updated_at = now
            dispute.save()
            note = "; ".join(f"{field}: {before if before is not None else '-'} -> {after}"
                             for field, (before, after) in changes.items())
            add_event(case, "dispute details", None, None, actor, note, now)
            case.updated_at = now
            case.save(only=[Case.updated_at])
    return DisputeAmendment(dispute, changes)


def link_address(email: str, account: str, now: datetime) -> CustomerAddress:
    """Link an email address to a customer account (replacing an earlier link)."""
    with write_transaction():
        CustomerAddress.delete().where(CustomerAddress.email == email.lower()).execute()
        return CustomerAddress.create(email=email.lower(), account=account, created_at=now)


def unlink_address(email: str) -> CustomerAddress:
    """Remove an address's link to its account (it then sees only its own cases)."""
    with write_transaction():
        link = CustomerAddress.get_or_none(CustomerAddress.email == email.lower())
        if link is None:
            raise CaseNotFound(f"{email.lower()} is not linked to any account")
        link.delete_instance()
        return link


def release_quarantined(item_id: int, now: datetime) -> QuarantinedMessage:
    """Mark a quarantined email released (the caller puts it back in the inbox)."""
    with write_transaction():
        item = QuarantinedMessage.get_or_none(QuarantinedMessage.id == item_id)
        if item is None or item.released_at is not None:
            raise CaseNotFound(f"no quarantined email with id {item_id}")
        item.released_at = now
        item.save(only=[QuarantinedMessage.released_at])
    return item
