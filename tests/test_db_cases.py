"""Case operations on a real database: every test runs on SQLite and on PostgreSQL.

The concurrency tests at the end start separate OS processes against PostgreSQL, as
several workers would, because thread tests in one process share a connection pool.
"""

from __future__ import annotations

import multiprocessing
import queue
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from db.cases import add_follow_up, open_case, record_inbound, record_quarantined
from db.database import connect_database, database, write_transaction
from db.history import ALLOWED_TRANSITIONS
from db.intake import claim_messages, release_messages
from db.lifecycle import (
    add_note,
    assign_case,
    change_status,
    decide_dispute,
    link_address,
    release_quarantined,
    send_reply,
)
from db.lookup import (
    find_thread,
    get_case,
    list_cases,
    list_disputes,
    list_quarantined,
    open_cases_for,
    sender_owns,
    thread_message_ids,
)
from db.models import (
    Case,
    CaseStatus,
    DeliveryState,
    Direction,
    Dispute,
    DisputeStatus,
    Message,
    SchemaVersion,
    StatusEvent,
)
from db.outbox import (
    claim_due,
    claimed_messages,
    mark_failed,
    mark_sent,
    pending_messages,
    release_reserved,
    reserve_due,
    retry_now,
)
from db.records import (
    CaseNotFound,
    DisputeDraft,
    DuplicateMessage,
    InboundRecord,
    NewCaseRequest,
    OutboundDraft,
    TransitionNotAllowed,
)
from db.schema import MIGRATIONS

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
CUSTOMER = "customer@example.com"


# --- helpers -------------------------------------------------------------------------------


def inbound(
    message_id: str | None = None,
    sender: str = CUSTOMER,
    references: Sequence[str] = (),
    subject: str = "Invoice INV-1001 charged twice",
) -> InboundRecord:
    return InboundRecord(
        message_id=message_id or f"<{uuid.uuid4().hex}@customer.example.com>",
        sender=sender,
        sender_name="Casey Customer",
        subject=subject,
        text="Line 3 was charged twice.",
        received_at=NOW,
        raw=b"From: customer@example.com\r\n\r\nLine 3 was charged twice.\r\n",
        references=tuple(references),
        source_key="maildir:cur/1",
    )


def reply_to(case: Case, kind: str = "case_opened") -> OutboundDraft:
    """The test composer: a minimal reply with its own Message-ID."""
    return OutboundDraft(
        message_id=f"<{uuid.uuid4().hex}@billing.example.com>",
        recipient=case.customer_email,
        subject=f"[{case.tracking_number}] We received your message",
        text=f"Your case is {case.tracking_number}.",
        raw=b"Subject: ack\r\n\r\nreceived\r\n",
        kind=kind,
    )


def open_new_case(
    message_id: str | None = None,
    sender: str = CUSTOMER,
    prefix: str = "BIL",
    dispute: DisputeDraft | None = None,
    acknowledge: Callable[[Case], OutboundDraft] = reply_to,
    now: datetime = NOW,
) -> Case:
    request = NewCaseRequest(
        inbound=inbound(message_id, sender=sender),
        process="charge_correction" if dispute else "general",
        tracking_prefix=prefix,
        confidence=0.9,
        dispute=dispute,
    )
    return open_case(request, acknowledge, now)


def outbound_of(case: Case) -> list[Message]:
    return list(Message.select().where(Message.case == case,
                                       Message.direction == Direction.OUTBOUND))


def events_of(case: Case) -> list[StatusEvent]:
    return list(StatusEvent.select().where(StatusEvent.case == case).order_by(StatusEvent.id))


def move_to(tracking_number: str, *statuses: CaseStatus, now: datetime = NOW) -> None:
    for status in statuses:
        change_status(tracking_number, status, "specialist", now)


def open_dispute_case(amount: str = "1250.10") -> Case:
    return open_new_case(dispute=DisputeDraft(
        invoice_number="INV-2025-0042", disputed_amount=Decimal(amount), currency="EUR",
        reason="line 3 charged twice",
    ))


# --- opening cases -------------------------------------------------------------------------


def test_tracking_numbers_count_up_from_one(database: str) -> None:
    first = open_new_case()
    second = open_new_case()

    assert [first.tracking_number, second.tracking_number] == ["BIL-000001", "BIL-000002"]
    assert get_case("BIL-000002").id == second.id


def test_tracking_prefix_is_configurable(database: str) -> None:
    case = open_new_case(prefix="ACME")

    assert case.tracking_number == "ACME-000001"
    assert get_case("acme-000001").id == case.id


def test_unknown_tracking_number_is_case_not_found(database: str) -> None:
    with pytest.raises(CaseNotFound):
        get_case("BIL-999999")


@pytest.mark.parametrize("amount", ["1250.10", "0.10", "999999999999.99"])
def test_charge_correction_keeps_dispute_amount_exactly(database: str, amount: str) -> None:
    case = open_dispute_case(amount)

    dispute = Dispute.get(Dispute.case == case)
    assert dispute.disputed_amount == Decimal(amount)
    assert str(dispute.disputed_amount) == amount
    assert isinstance(dispute.disputed_amount, Decimal)
    assert (dispute.currency, dispute.invoice_number) == ("EUR", "INV-2025-0042")
    assert dispute.status == DisputeStatus.OPEN


def test_open_case_stores_message_event_and_pending_acknowledgement(database: str) -> None:
    case = open_new_case("<first@customer.example.com>", sender="Customer@Example.com")

    stored = Case.get_by_id(case.id)
    assert (stored.status, stored.customer_email) == (CaseStatus.NEW, CUSTOMER)
    assert stored.created_at == NOW
    inbound_rows = list(Message.select().where(Message.direction == Direction.INBOUND))
    assert [(row.message_id, row.case_id) for row in inbound_rows] == [
        ("<first@customer.example.com>", case.id)
    ]
    assert [(e.kind, e.from_status, e.to_status) for e in events_of(case)] == [
        ("status", None, CaseStatus.NEW)
    ]
    [ack] = outbound_of(case)
    assert ack.delivery_state == DeliveryState.PENDING
    assert ack.next_attempt_at == NOW
    assert ack.recipients == CUSTOMER
    assert thread_message_ids(case) == ["<first@customer.example.com>", ack.message_id]


def test_composer_failure_stores_nothing_at_all(database: str) -> None:
    def broken_composer(case: Case) -> OutboundDraft:
        raise RuntimeError("template missing")

    with pytest.raises(RuntimeError):
        open_new_case("<once@customer.example.com>", dispute=DisputeDraft(
            disputed_amount=Decimal("5.00"), currency="EUR"), acknowledge=broken_composer)

    for model in (Case, Message, Dispute, StatusEvent):
        assert model.select().count() == 0, model.__name__
    # The email was not consumed: the next attempt opens its case normally.
    assert open_new_case("<once@customer.example.com>").status == CaseStatus.NEW


def test_same_message_id_twice_opens_one_case(database: str) -> None:
    open_new_case("<twice@customer.example.com>")

    with pytest.raises(DuplicateMessage):
        open_new_case("<twice@customer.example.com>")

    assert Case.select().count() == 1
    assert Message.select().where(Message.direction == Direction.OUTBOUND).count() == 1
    assert Message.select().where(Message.direction == Direction.INBOUND).count() == 1


def test_duplicate_inside_batch_does_not_break_other_cases_of_batch(database: str) -> None:
    open_new_case("<earlier@customer.example.com>")

    duplicates = []
    with write_transaction():
        for message_id in ("<a@customer.example.com>", "<earlier@customer.example.com>",
                           "<b@customer.example.com>", "<a@customer.example.com>",
                           "<c@customer.example.com>"):
            try:
                open_new_case(message_id)
            except DuplicateMessage:
                duplicates.append(message_id)

    assert duplicates == ["<earlier@customer.example.com>", "<a@customer.example.com>"]
    assert Case.select().count() == 4
    assert Message.select().where(Message.direction == Direction.OUTBOUND).count() == 4
    assert Message.select().where(Message.direction == Direction.INBOUND).count() == 4


def test_record_inbound_keeps_ignored_email_once(database: str) -> None:
    bounce = inbound("<bounce@mailer.example.com>", sender="mailer-daemon@example.com")

    record_inbound(bounce, "ignored_bounce", NOW, reason="delivery status notification")
    with pytest.raises(DuplicateMessage):
        record_inbound(bounce, "ignored_bounce", NOW)

    [row] = Message.select()
    assert (row.kind, row.case_id, row.reason) == (
        "ignored_bounce", None, "delivery status notification")


# --- status changes ------------------------------------------------------------------------


def test_new_case_can_go_in_progress_with_actor_and_note(database: str) -> None:
    case = open_new_case()

    changed = change_status(case.tracking_number, CaseStatus.IN_PROGRESS, "alice", NOW,
                            note="looking into it")

    assert changed.status == CaseStatus.IN_PROGRESS
    assert Case.get_by_id(case.id).status == CaseStatus.IN_PROGRESS
    last = events_of(case)[-1]
    assert (last.kind, last.from_status, last.to_status, last.actor, last.note) == (
        "status", CaseStatus.NEW, CaseStatus.IN_PROGRESS, "alice", "looking into it")


@pytest.mark.parametrize("target", list(CaseStatus))
def test_closed_case_cannot_change_status(database: str, target: CaseStatus) -> None:
    case = open_new_case()
    change_status(case.tracking_number, CaseStatus.CLOSED, "alice", NOW, note="duplicate")
    events_before = len(events_of(case))

    with pytest.raises(TransitionNotAllowed):
        change_status(case.tracking_number, target, "alice", NOW)

    assert Case.get_by_id(case.id).status == CaseStatus.CLOSED
    assert len(events_of(case)) == events_before


def test_closing_a_case_never_resolved_needs_a_note_resolved_ones_do_not(
    database: str,
) -> None:
    unresolved, resolved = open_new_case(), open_new_case()
    move_to(resolved.tracking_number, CaseStatus.IN_PROGRESS, CaseStatus.RESOLVED)

    with pytest.raises(TransitionNotAllowed, match="is new, not resolved: closing it needs"):
        change_status(unresolved.tracking_number, CaseStatus.CLOSED, "alice", NOW, note=" ")
    change_status(resolved.tracking_number, CaseStatus.CLOSED, "alice", NOW)

    assert Case.get_by_id(unresolved.id).status == CaseStatus.NEW
    assert Case.get_by_id(resolved.id).status == CaseStatus.CLOSED


def test_every_transition_outside_the_table_is_refused(database: str) -> None:
    case = open_new_case()

    for target in CaseStatus:
        if target in ALLOWED_TRANSITIONS[CaseStatus.NEW]:
            continue
        with pytest.raises(TransitionNotAllowed):
            change_status(case.tracking_number, target, "alice", NOW)
    assert Case.get_by_id(case.id).status == CaseStatus.NEW


def test_status_history_only_grows(database: str) -> None:
    case = open_new_case()
    steps = [CaseStatus.IN_PROGRESS, CaseStatus.AWAITING_CUSTOMER, CaseStatus.IN_PROGRESS,
             CaseStatus.RESOLVED, CaseStatus.CLOSED]

    for minute, status in enumerate(steps, start=1):
        change_status(case.tracking_number, status, f"agent{minute}",
                      NOW + timedelta(minutes=minute), note=f"step {minute}")

    history = [(e.from_status, e.to_status, e.actor, e.note) for e in events_of(case)]
    assert history == [
        (None, "new", "system", "opened by email"),
        ("new", "in_progress", "agent1", "step 1"),
        ("in_progress", "awaiting_customer", "agent2", "step 2"),
        ("awaiting_customer", "in_progress", "agent3", "step 3"),
        ("in_progress", "resolved", "agent4", "step 4"),
        ("resolved", "closed", "agent5", "step 5"),
    ]
    assert Case.get_by_id(case.id).resolved_at == NOW + timedelta(minutes=4)


def test_change_status_queues_notice_when_asked(database: str) -> None:
    case = open_new_case()

    change_status(case.tracking_number, CaseStatus.RESOLVED, "alice", NOW,
                  notify=lambda c: reply_to(c, kind="status_changed"))

    assert sorted(m.kind for m in outbound_of(case)) == ["case_opened", "status_changed"]


def test_assignment_and_notes_are_history_not_email(database: str) -> None:
    case = open_new_case()

    assign_case(case.tracking_number, "bob", "alice", NOW)
    add_note(case.tracking_number, "customer called too", "bob", NOW)

    assert Case.get_by_id(case.id).assignee == "bob"
    assert [(e.kind, e.to_status, e.actor, e.note) for e in events_of(case)[1:]] == [
        ("assignment", "bob", "alice", ""),
        ("note", None, "bob", "customer called too"),
    ]
    assert len(outbound_of(case)) == 1  # only the acknowledgement


def test_send_reply_queues_email_in_case_thread(database: str) -> None:
    case = open_new_case()

    send_reply(case.tracking_number, "bob", NOW, lambda c: reply_to(c, kind="reply"))

    assert sorted(m.kind for m in outbound_of(case)) == ["case_opened", "reply"]
    assert events_of(case)[-1].kind == "reply"
    assert len(thread_message_ids(case)) == 3


# --- follow-ups ----------------------------------------------------------------------------


def test_follow_up_moves_awaiting_customer_back_to_in_progress(database: str) -> None:
    case = open_new_case()
    move_to(case.tracking_number, CaseStatus.AWAITING_CUSTOMER)

    updated = add_follow_up(case, inbound(), NOW + timedelta(hours=1))

    assert updated.status == CaseStatus.IN_PROGRESS
    last = events_of(case)[-1]
    assert (last.from_status, last.to_status, last.actor) == (
        CaseStatus.AWAITING_CUSTOMER, CaseStatus.IN_PROGRESS, "customer")


def test_follow_up_reopens_resolved_case_within_reopen_window(database: str) -> None:
    case = open_new_case()
    move_to(case.tracking_number, CaseStatus.RESOLVED)

    updated = add_follow_up(case, inbound(), NOW + timedelta(days=3),
                            reopen_until=NOW + timedelta(days=14))

    assert Case.get_by_id(updated.id).status == CaseStatus.IN_PROGRESS


def test_follow_up_after_reopen_window_leaves_case_resolved(database: str) -> None:
    case = open_new_case()
    move_to(case.tracking_number, CaseStatus.RESOLVED)
    reply = inbound()

    add_follow_up(case, reply, NOW + timedelta(days=15), reopen_until=NOW + timedelta(days=14))

    assert Case.get_by_id(case.id).status == CaseStatus.RESOLVED
    # The reply is still kept with the case.
    assert Message.get(Message.message_id == reply.message_id).case_id == case.id


def test_follow_up_that_does_not_wake_case_leaves_status(database: str) -> None:
    case = open_new_case()
    move_to(case.tracking_number, CaseStatus.AWAITING_CUSTOMER)

    add_follow_up(case, inbound(), NOW, kind="status_request", wakes_case=False,
                  respond=lambda c: reply_to(c, kind="status_reply"))

    assert Case.get_by_id(case.id).status == CaseStatus.AWAITING_CUSTOMER
    assert sorted(m.kind for m in outbound_of(case)) == ["case_opened", "status_reply"]


def test_follow_up_with_known_message_id_is_duplicate(database: str) -> None:
    case = open_new_case()
    reply = inbound()
    add_follow_up(case, reply, NOW)

    with pytest.raises(DuplicateMessage):
        add_follow_up(case, reply, NOW)

    assert Message.select().where(Message.direction == Direction.INBOUND).count() == 2


# --- finding threads and who may see them --------------------------------------------------


def test_find_thread_by_our_message_id_in_references(database: str) -> None:
    case = open_new_case()
    [ack] = outbound_of(case)

    match = find_thread(CUSTOMER, ["<unrelated@elsewhere.example.com>", ack.message_id], [])

    assert match is not None
    assert match.case.id == case.id
    assert match.sender_may_see is True


def test_find_thread_by_tracking_number(database: str) -> None:
    open_new_case()
    case = open_new_case()

    match = find_thread("Customer@Example.com", [], ["bil-000002"])

    assert match is not None
    assert match.case.id == case.id
    assert match.sender_may_see is True


def test_find_thread_returns_none_for_unknown_references(database: str) -> None:
    open_new_case()

    assert find_thread(CUSTOMER, ["<nobody@example.com>"], ["BIL-000777"]) is None


def test_reply_from_other_address_does_not_reveal_case(database: str) -> None:
    case = open_new_case()

    match = find_thread("stranger@example.net", [], [case.tracking_number])

    assert match is not None
    assert match.sender_may_see is False


def test_address_linked_to_same_account_may_see_case(database: str) -> None:
    case = open_new_case()
    link_address(CUSTOMER, "ACC-1", NOW)
    link_address("Colleague@Example.com", "ACC-1", NOW)
    link_address("outsider@example.com", "ACC-2", NOW)

    assert find_thread("colleague@example.com", [], [case.tracking_number]).sender_may_see
    assert not sender_owns(case, "outsider@example.com")
    assert [c.id for c in open_cases_for("colleague@example.com")] == [case.id]
    assert open_cases_for("outsider@example.com") == []


def test_relinking_address_to_other_account_revokes_access(database: str) -> None:
    case = open_new_case()
    link_address(CUSTOMER, "ACC-1", NOW)
    link_address("colleague@example.com", "ACC-1", NOW)

    link_address("colleague@example.com", "ACC-2", NOW)

    assert not sender_owns(case, "colleague@example.com")


def test_list_cases_filters_by_status_and_customer(database: str) -> None:
    first = open_new_case()
    second = open_new_case(sender="other@example.com")
    move_to(second.tracking_number, CaseStatus.IN_PROGRESS)

    assert [c.id for c in list_cases(status="new")] == [first.id]
    assert [c.id for c in list_cases(customer="OTHER@example.com")] == [second.id]
    assert [c.id for c in list_cases()] == [second.id, first.id]


# --- disputes ------------------------------------------------------------------------------


def stored_dispute(case: Case) -> Dispute:
    return Dispute.get(Dispute.case == case)


def test_approval_without_amount_grants_disputed_amount(database: str) -> None:
    case = open_dispute_case("1250.10")

    decide_dispute(case.tracking_number, DisputeStatus.APPROVED, "bob", NOW, "duplicate line")

    dispute = stored_dispute(case)
    assert (dispute.status, dispute.approved_amount) == (
        DisputeStatus.APPROVED, Decimal("1250.10"))
    assert dispute.resolution_note == "duplicate line"
    last = events_of(case)[-1]
    assert (last.kind, last.from_status, last.to_status, last.actor) == (
        "dispute", DisputeStatus.OPEN, DisputeStatus.APPROVED, "bob")


def test_partial_approval_below_disputed_amount_is_kept(database: str) -> None:
    case = open_dispute_case("1250.10")

    decide_dispute(case.tracking_number, DisputeStatus.PARTIALLY_APPROVED, "bob", NOW,
                   "one line only", approved_amount=Decimal("0.10"))

    dispute = stored_dispute(case)
    assert (dispute.status, dispute.approved_amount) == (
        DisputeStatus.PARTIALLY_APPROVED, Decimal("0.10"))


@pytest.mark.parametrize("amount", [None, "0.00", "1250.10", "2000.00"])
def test_partial_approval_needs_amount_below_disputed(database: str, amount: str | None) -> None:
    case = open_dispute_case("1250.10")

    with pytest.raises(TransitionNotAllowed):
        decide_dispute(case.tracking_number, DisputeStatus.PARTIALLY_APPROVED, "bob", NOW,
                       "", approved_amount=Decimal(amount) if amount else None)

    dispute = stored_dispute(case)
    assert (dispute.status, dispute.approved_amount) == (DisputeStatus.OPEN, None)


def test_rejection_grants_zero(database: str) -> None:
    case = open_dispute_case("1250.10")

    decide_dispute(case.tracking_number, DisputeStatus.REJECTED, "bob", NOW, "charge is correct")

    dispute = stored_dispute(case)
    assert (dispute.status, dispute.approved_amount) == (DisputeStatus.REJECTED, Decimal("0.00"))
    assert str(dispute.approved_amount) == "0.00"


def test_deciding_case_without_dispute_is_not_found(database: str) -> None:
    case = open_new_case()

    with pytest.raises(CaseNotFound):
        decide_dispute(case.tracking_number, DisputeStatus.APPROVED, "bob", NOW, "")


def test_list_disputes_newest_first(database: str) -> None:
    first = open_dispute_case("10.00")
    open_new_case()
    second = open_dispute_case("20.00")

    assert [d.case.id for d in list_disputes()] == [second.id, first.id]


# --- outbox --------------------------------------------------------------------------------


def test_claimed_messages_are_not_claimed_again_during_lease(database: str) -> None:
    cases = [open_new_case() for _ in range(3)]

    claimed = claim_due(NOW)
    again = claim_due(NOW)
    a_minute_later = claim_due(NOW + timedelta(minutes=1))

    assert sorted(m.case_id for m in claimed) == sorted(c.id for c in cases)
    assert again == []
    assert a_minute_later == []
    assert len(pending_messages()) == 3


def test_replies_reserved_for_a_sender_are_its_alone_until_released(database: str) -> None:
    first, second = open_new_case(), open_new_case()
    lease = timedelta(minutes=2)

    token = reserve_due(NOW, limit=10, lease=lease)

    assert [m.case_id for m in claimed_messages(token)] == [first.id, second.id]
    assert claim_due(NOW + timedelta(minutes=1)) == []  # nobody else sends them
    assert claimed_messages(reserve_due(NOW, limit=10, lease=lease)) == []
    release_reserved([token], NOW + timedelta(seconds=5))  # that sender went away unread
    assert claimed_messages(token) == []
    assert sorted(m.case_id for m in claim_due(NOW + timedelta(seconds=5))) == [
        first.id, second.id]


def test_a_sent_reply_is_not_made_due_again_by_releasing_its_claim(database: str) -> None:
    open_new_case()
    token = reserve_due(NOW, limit=10, lease=timedelta(minutes=2))
    [message] = claimed_messages(token)
    mark_sent([message.id], NOW)

    release_reserved([token], NOW)

    assert pending_messages() == []
    assert claim_due(NOW + timedelta(days=1)) == []


def test_claim_due_skips_messages_not_yet_due(database: str) -> None:
    open_new_case(now=NOW + timedelta(minutes=10))

    assert claim_due(NOW) == []
    assert len(claim_due(NOW + timedelta(minutes=10))) == 1


def test_failed_delivery_stays_pending_and_retries_later(database: str) -> None:
    open_new_case()
    [message] = claim_due(NOW)

    retry_at = mark_failed(message, "421 try again later", NOW)

    assert retry_at > NOW
    stored = Message.get_by_id(message.id)
    assert (stored.delivery_state, stored.attempts, stored.last_error) == (
        DeliveryState.PENDING, 1, "421 try again later")
    assert stored.next_attempt_at == retry_at
    assert claim_due(retry_at - timedelta(seconds=1)) == []
    [retried] = claim_due(retry_at)
    second_retry = mark_failed(retried, "421 still busy", retry_at)
    assert Message.get_by_id(message.id).attempts == 2
    assert second_retry - retry_at > retry_at - NOW  # backs off


def test_sent_message_leaves_the_outbox(database: str) -> None:
    open_new_case()
    [message] = claim_due(NOW)

    mark_sent([message.id], NOW + timedelta(seconds=2))

    stored = Message.get_by_id(message.id)
    assert (stored.delivery_state, stored.sent_at) == (
        DeliveryState.SENT, NOW + timedelta(seconds=2))
    assert pending_messages() == []
    assert claim_due(NOW + timedelta(days=1)) == []


def test_retry_now_makes_pending_messages_due_again(database: str) -> None:
    open_new_case()
    open_new_case()
    for message in claim_due(NOW):
        mark_failed(message, "connection refused", NOW)
    sent = open_new_case()
    [to_send] = claim_due(NOW)
    mark_sent([to_send.id], NOW)

    assert claim_due(NOW) == []
    assert retry_now(NOW) == 2
    assert len(claim_due(NOW)) == 2
    assert outbound_of(sent)[0].delivery_state == DeliveryState.SENT


# --- intake ledger ---------------------------------------------------------------------------


def test_two_workers_claim_disjoint_batches_in_mailbox_order(database: str) -> None:
    keys = [f"imap:INBOX:7:{uid}" for uid in range(1, 8)]
    lease = timedelta(minutes=2)

    first = claim_messages(keys, "worker-a", NOW, lease, limit=3)
    second = claim_messages(keys, "worker-b", NOW, lease, limit=10)

    assert first == keys[:3]
    assert second == keys[3:]
    assert claim_messages(keys, "worker-a", NOW, lease, limit=10) == keys[:3]  # its own


def test_a_dead_workers_claims_are_taken_over_only_after_the_lease(database: str) -> None:
    keys = [f"imap:INBOX:7:{uid}" for uid in range(1, 4)]
    lease = timedelta(minutes=2)
    claim_messages(keys, "died", NOW, lease, limit=10)

    assert claim_messages(keys, "alive", NOW + timedelta(minutes=1), lease, limit=10) == []
    later = NOW + timedelta(minutes=3)
    assert claim_messages(keys, "alive", later, lease, limit=2) == keys[:2]
    # The two taken over are held again; the third is still the dead worker's.
    assert claim_messages(keys, "other", later, lease, limit=10) == keys[2:]


def test_released_messages_can_be_claimed_again(database: str) -> None:
    keys = ["maildir:cur/1", "maildir:cur/2"]
    lease = timedelta(minutes=2)
    claim_messages(keys, "worker-a", NOW, lease, limit=10)

    release_messages(keys[:1])

    assert claim_messages(keys, "worker-b", NOW, lease, limit=10) == keys[:1]


# --- quarantine ----------------------------------------------------------------------------


def test_quarantine_is_listed_until_released(database: str) -> None:
    email = inbound("<broken@customer.example.com>")
    record_quarantined(email, "UnicodeDecodeError: bad charset", NOW)

    [item] = list_quarantined()
    assert (item.message_id, item.reason, item.source_key) == (
        "<broken@customer.example.com>", "UnicodeDecodeError: bad charset", "maildir:cur/1")

    released = release_quarantined(item.id, NOW + timedelta(hours=1))

    assert released.released_at == NOW + timedelta(hours=1)
    assert list_quarantined() == []
    with pytest.raises(CaseNotFound):
        release_quarantined(item.id, NOW)


def test_released_email_is_processed_as_new(database: str) -> None:
    record_quarantined(inbound("<retry@customer.example.com>"), "parser crashed", NOW)

    case = open_new_case("<retry@customer.example.com>")

    assert case.status == CaseStatus.NEW


def test_releasing_unknown_quarantine_id_is_not_found(database: str) -> None:
    with pytest.raises(CaseNotFound):
        release_quarantined(12345, NOW)


# --- concurrency on PostgreSQL: separate processes, as separate workers would be ------------

PROCESS_TIMEOUT = 120


def _open_cases_in_process(
    url: str, message_ids: list[str], barrier: Any, results: Any
) -> None:
    """Child process: connect, wait for the others, then open cases as fast as possible."""
    try:
        connect_database(url)
        barrier.wait(timeout=PROCESS_TIMEOUT)
        opened, duplicates = [], []
        for message_id in message_ids:
            try:
                case = open_new_case(message_id)
            except DuplicateMessage:
                duplicates.append(message_id)
            else:
                opened.append((message_id, case.tracking_number))
        results.put(("ok", opened, duplicates))
    except BaseException as error:  # reported to the parent, which fails the test
        results.put(("error", repr(error), []))
    finally:
        database.close()


def _connect_in_process(url: str, message_ids: list[str], barrier: Any, results: Any) -> None:
    """Child process: connect to the empty schema at the same moment as the others."""
    try:
        barrier.wait(timeout=PROCESS_TIMEOUT)
        connect_database(url)
        results.put(("ok", [], []))
    except BaseException as error:
        results.put(("error", repr(error), []))
    finally:
        database.close()


def run_processes(
    target: Callable[..., None], url: str, message_id_lists: list[list[str]]
) -> list[tuple[list[tuple[str, str]], list[str]]]:
    """Start one spawned process per list, released together; their (opened, duplicates)."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(message_id_lists))
    results = context.Queue()
    processes = [context.Process(target=target, args=(url, ids, barrier, results))
                 for ids in message_id_lists]
    for process in processes:
        process.start()
    outcomes = []
    try:
        for _ in processes:
            outcomes.append(results.get(timeout=PROCESS_TIMEOUT))
    except queue.Empty:
        pytest.fail("a worker process did not report back in time")
    finally:
        for process in processes:
            process.join(timeout=PROCESS_TIMEOUT)
            if process.is_alive():
                process.terminate()
    errors = [detail for status, detail, _ in outcomes if status == "error"]
    assert not errors, f"worker processes failed: {errors}"
    return [(opened, duplicates) for _, opened, duplicates in outcomes]


@pytest.fixture
def connected_postgres(postgres_url: str):
    """The PostgreSQL schema URL; the parent connects afterwards to count what was stored."""
    yield postgres_url
    database.close()


def test_parallel_workers_never_share_tracking_number(connected_postgres: str) -> None:
    workers, per_worker = 4, 50
    message_ids = [[f"<w{worker}-{n}@customer.example.com>" for n in range(per_worker)]
                   for worker in range(workers)]
    connect_database(connected_postgres)  # schema first; this test is about case numbers
    database.close()

    outcomes = run_processes(_open_cases_in_process, connected_postgres, message_ids)

    tracking_numbers = [number for opened, _ in outcomes for _, number in opened]
    assert len(tracking_numbers) == workers * per_worker
    assert len(set(tracking_numbers)) == len(tracking_numbers)
    assert all(duplicates == [] for _, duplicates in outcomes)
    connect_database(connected_postgres)
    assert Case.select().count() == workers * per_worker
    assert Message.select().where(Message.direction == Direction.OUTBOUND).count() == (
        workers * per_worker)


def test_workers_racing_on_same_emails_open_one_case_each(connected_postgres: str) -> None:
    same_ids = [f"<shared-{n}@customer.example.com>" for n in range(50)]
    connect_database(connected_postgres)
    database.close()

    outcomes = run_processes(_open_cases_in_process, connected_postgres,
                             [same_ids, list(same_ids)])

    opened = Counter(message_id for won, _ in outcomes for message_id, _ in won)
    lost = Counter(message_id for _, duplicates in outcomes for message_id in duplicates)
    assert opened == Counter(same_ids)  # every email opened exactly once
    assert lost == Counter(same_ids)  # and refused exactly once as a duplicate
    connect_database(connected_postgres)
    assert Case.select().count() == len(same_ids)
    assert Message.select().where(Message.direction == Direction.OUTBOUND).count() == len(
        same_ids)


def test_workers_starting_together_create_schema_once(connected_postgres: str) -> None:
    run_processes(_connect_in_process, connected_postgres, [[], [], [], []])

    connect_database(connected_postgres)
    versions = [row.version for row in SchemaVersion.select().order_by(SchemaVersion.version)]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert open_new_case().tracking_number == "BIL-000001"


def test_a_version_1_database_is_upgraded_with_the_claim_token_index(database: str) -> None:
    from db.models import SchemaVersion
    from db.schema import schema_version, upgrade_schema

    # Make it what the first release left: no index, version 1.
    database_obj = Message._meta.database
    database_obj.execute_sql('DROP INDEX IF EXISTS "message_claim_token"')
    SchemaVersion.delete().where(SchemaVersion.version > 1).execute()
    assert schema_version() == 1

    assert upgrade_schema() == 2
    assert schema_version() == 2
    assert "message_claim_token" in {index.name for index in database_obj.get_indexes("message")}
    assert upgrade_schema() == 2  # a second start changes nothing


def test_postgresql_without_its_driver_says_which_extra_to_install(monkeypatch) -> None:
    # The driver is installed here, so its absence is simulated: None in sys.modules
    # makes `import psycopg2` fail as it does on a machine without the extra.
    monkeypatch.setitem(sys.modules, "psycopg2", None)

    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[postgres\]'"):
        connect_database("postgresql://postgres@127.0.0.1:5432/test")
