"""Finding cases: read-only queries shared by the worker and the CLI.

`find_thread` decides whether a sender may learn about the case it found, so that no caller
can find a case without the ownership check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from peewee import fn

from db.database import is_postgresql
from db.history import OPEN_STATUSES
from db.models import (
    Case,
    CustomerAddress,
    Direction,
    Dispute,
    Message,
    QuarantinedMessage,
)
from db.records import (
    CaseNotFound,
)


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


def linked_addresses() -> list[CustomerAddress]:
    """Every address linked to an account, by account then address: who sees what."""
    return list(CustomerAddress.select().order_by(CustomerAddress.account,
                                                  CustomerAddress.email))


def account_of(address: str) -> str | None:
    """The account an address is linked to, if any."""
    link = CustomerAddress.get_or_none(CustomerAddress.email == address.lower())
    return link.account if link is not None else None


def addresses_of_account(account: str) -> list[str]:
    """Every address linked to `account`: they all see each other's cases."""
    return [row.email for row in CustomerAddress.select(CustomerAddress.email)
            .where(CustomerAddress.account == account).order_by(CustomerAddress.email)]


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


class IntakeHistory:
    """What the intake of one batch needs to know about past mail, read in two queries.

    Which of the batch's Message-IDs were recorded before, and how many automatic emails
    each sender was sent in the last hour. Read once per batch inside its transaction,
    then kept up to date as the batch goes, instead of two queries per email.
    """

    def __init__(self, known_message_ids: set[str], replies: Counter[str]) -> None:
        self._known = known_message_ids
        self._replies = replies

    def is_known(self, message_id: str) -> bool:
        """True when this Message-ID was recorded before (or earlier in this batch)."""
        return message_id in self._known

    def note_message(self, message_id: str) -> None:
        """This email is now recorded: a second copy later in the batch is a duplicate."""
        self._known.add(message_id)

    def automatic_replies_to(self, recipient: str) -> int:
        """Automatic emails to `recipient` in the last hour, counting this batch's."""
        return self._replies[recipient.lower()]

    def note_automatic_reply(self, recipient: str) -> None:
        self._replies[recipient.lower()] += 1


def intake_history(
    message_ids: Iterable[str], senders: Iterable[str], since: datetime
) -> IntakeHistory:
    """The `IntakeHistory` of a batch; automatic replies counted from `since`."""
    ids = list(set(message_ids))
    recipients = list({sender.lower() for sender in senders})
    known = {
        row.message_id for row in Message.select(Message.message_id).where(
            Message.message_id.in_(ids))
    } if ids else set()
    replies: Counter[str] = Counter()
    if recipients:
        replies.update({
            row.recipients: row.count for row in
            Message.select(Message.recipients, fn.COUNT(Message.id).alias("count"))
            .where(Message.direction == Direction.OUTBOUND,
                   Message.recipients.in_(recipients),
                   # A specialist's own reply is not automatic and never counts.
                   Message.kind != "reply", Message.created_at >= since)
            .group_by(Message.recipients)
        })
    return IntakeHistory(known, replies)


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


def reply_queued(kind: str, in_reply_to: str) -> bool:
    """True when an email of `kind` answering Message-ID `in_reply_to` was queued before.

    For answers to mail that leaves no inbound record (a quarantined email), so that
    reading it again never answers it twice.
    """
    return Message.select().where(
        Message.direction == Direction.OUTBOUND, Message.kind == kind,
        Message.in_reply_to == in_reply_to,
    ).exists()
