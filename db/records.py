"""Plain values that callers hand to the case operations, and the errors those raise.

`db/` knows nothing about MIME: the worker turns an email into an `InboundRecord`, and a
reply it wants sent into an `OutboundDraft` whose raw bytes are ready for delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from db.models import Case


@dataclass(frozen=True)
class InboundRecord:
    """What the database keeps of one email that reached the billing inbox."""

    message_id: str
    sender: str
    sender_name: str
    subject: str
    text: str
    received_at: datetime
    raw: bytes = b""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    source_key: str = ""
    attachments: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class OutboundDraft:
    """A fully composed outgoing email, stored as pending until the server accepts it."""

    message_id: str
    recipient: str
    subject: str
    text: str
    raw: bytes
    kind: str
    in_reply_to: str = ""
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class DisputeDraft:
    """The facts of an invoice charge correction, as far as the customer gave them."""

    invoice_number: str | None = None
    disputed_amount: Decimal | None = None
    currency: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class NewCaseRequest:
    """Everything needed to open a case from one inbound email."""

    inbound: InboundRecord
    process: str
    tracking_prefix: str
    confidence: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    dispute: DisputeDraft | None = None
    previous_case_id: int | None = None


# Called inside the transaction with the case (tracking number assigned) to build the
# email that goes out with it; the draft is stored in the same commit.
Composer = Callable[["Case"], OutboundDraft]


class CaseError(Exception):
    """Base of the errors a case operation reports to its caller."""


class DuplicateMessage(CaseError):
    """This Message-ID was recorded before: the email was already handled."""


class CaseNotFound(CaseError):
    """No case has this tracking number."""


class TransitionNotAllowed(CaseError):
    """The requested status change is not in the transition table."""
