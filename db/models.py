"""Tables of the case database: cases, disputes, every email in or out, and history.

Nothing here is ever deleted: status changes append a `StatusEvent`, and every email
that reached us (even one we ignored) keeps a `Message` row, whose unique Message-ID is
what makes processing the same email twice harmless.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from peewee import (
    BlobField,
    CharField,
    DateTimeField,
    DecimalField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from db.database import database


class CaseStatus(StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    AWAITING_CUSTOMER = "awaiting_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


class DisputeStatus(StrEnum):
    OPEN = "open"
    UNDER_REVIEW = "under_review"
    APPROVED = "approved"
    PARTIALLY_APPROVED = "partially_approved"
    REJECTED = "rejected"


class Direction(StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    # Refused for good by the server (5xx for this email); kept, and `outbox retry` sends
    # it again.
    UNDELIVERABLE = "undeliverable"


class UtcDateTimeField(DateTimeField):
    """Stores naive UTC and hands back timezone-aware UTC datetimes."""

    def db_value(self, value: datetime | None) -> Any:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value: Any) -> datetime | None:
        value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class MoneyField(DecimalField):
    """Decimal with two places; SQLite would otherwise hand back floats' digits."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=14, decimal_places=2, auto_round=True, **kwargs)

    def python_value(self, value: Any) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)).quantize(Decimal("0.01"))


class JsonTextField(TextField):
    """A small JSON document kept as text, the same on SQLite and PostgreSQL."""

    def db_value(self, value: Any) -> str:
        return json.dumps(value if value is not None else None, sort_keys=True)

    def python_value(self, value: str | None) -> Any:
        return json.loads(value) if value else None


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Case(BaseModel):
    # Derived from the id by the INSERT itself (db.database.insert_numbered_row); the
    # column stays nullable as schema version 1 created it.
    tracking_number = CharField(max_length=32, unique=True, null=True)
    process = CharField(max_length=64, index=True)
    status = CharField(max_length=32, index=True, default=CaseStatus.NEW)
    customer_email = CharField(max_length=320, index=True)
    customer_name = CharField(max_length=200, default="")
    subject = TextField(default="")
    assignee = CharField(max_length=100, null=True, index=True)
    confidence = FloatField(null=True)
    details = JsonTextField(default=dict)
    previous_case = ForeignKeyField("self", null=True, backref="follow_on_cases")
    created_at = UtcDateTimeField(index=True)
    updated_at = UtcDateTimeField()
    resolved_at = UtcDateTimeField(null=True)


class Dispute(BaseModel):
    case = ForeignKeyField(Case, unique=True, backref="disputes")
    invoice_number = CharField(max_length=64, null=True)
    disputed_amount = MoneyField(null=True)
    currency = CharField(max_length=3, null=True)
    reason = TextField(default="")
    status = CharField(max_length=32, index=True, default=DisputeStatus.OPEN)
    approved_amount = MoneyField(null=True)
    resolution_note = TextField(default="")
    created_at = UtcDateTimeField()
    updated_at = UtcDateTimeField()


class Message(BaseModel):
    case = ForeignKeyField(Case, null=True, backref="messages", index=True)
    direction = CharField(max_length=3)
    message_id = CharField(max_length=998, unique=True)
    in_reply_to = TextField(default="")
    references = TextField(default="", column_name="references_header")
    sender = CharField(max_length=320, default="")
    recipients = TextField(default="")
    subject = TextField(default="")
    body_text = TextField(default="")
    raw = BlobField(null=True)
    # Inbound: the outcome (case_opened, ignored_bounce, ...). Outbound: what it is.
    kind = CharField(max_length=32)
    reason = TextField(default="")
    source_key = CharField(max_length=500, null=True)
    attachments = JsonTextField(default=list)
    delivery_state = CharField(max_length=16, null=True, index=True)
    attempts = IntegerField(default=0)
    # Set by the worker that is sending it, so two workers never send the same email.
    # Indexed: the sender reads its claim back by it (schema version 2).
    claim_token = CharField(max_length=64, null=True, index=True)
    next_attempt_at = UtcDateTimeField(null=True)
    last_error = TextField(default="")
    sent_at = UtcDateTimeField(null=True)
    created_at = UtcDateTimeField(index=True)

    class Meta:
        # For the per-recipient reply limit (inbox_worker/act.py may_auto_reply).
        indexes = ((("recipients", "created_at"), False),)


class StatusEvent(BaseModel):
    case = ForeignKeyField(Case, backref="events", index=True)
    kind = CharField(max_length=32)
    from_status = CharField(max_length=32, null=True)
    to_status = CharField(max_length=32, null=True)
    actor = CharField(max_length=100)
    note = TextField(default="")
    created_at = UtcDateTimeField(index=True)


class QuarantinedMessage(BaseModel):
    """An email that could not be processed, kept with the reason until released.

    Not a `Message` row: its Message-ID must stay free so a released email is handled
    as new rather than as a duplicate.
    """

    message_id = CharField(max_length=998, index=True)
    sender = CharField(max_length=320, default="")
    subject = TextField(default="")
    source_key = CharField(max_length=500)
    reason = TextField()
    raw = BlobField(null=True)
    created_at = UtcDateTimeField(index=True)
    released_at = UtcDateTimeField(null=True)


class IntakeClaim(BaseModel):
    """A worker's lease on one message still in the mailbox (see db/intake.py)."""

    source_key = CharField(max_length=500, unique=True)
    worker = CharField(max_length=100)
    claimed_at = UtcDateTimeField()


class CustomerAddress(BaseModel):
    """An email address linked by the operator to a customer account."""

    email = CharField(max_length=320, unique=True)
    account = CharField(max_length=100, index=True)
    created_at = UtcDateTimeField()


class SchemaVersion(BaseModel):
    version = IntegerField()
    applied_at = UtcDateTimeField()


ALL_MODELS = (
    Case, Dispute, Message, StatusEvent, QuarantinedMessage, IntakeClaim, CustomerAddress,
    SchemaVersion,
)
