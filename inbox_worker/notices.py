"""What we tell the customer, and when: one function per kind of customer-visible email.

Each returns a `Composer`, called by the case operation inside its transaction once the
case is up to date, so the email always shows the state that was committed with it.
Case emails continue the customer's thread: In-Reply-To the case's latest message and
References the whole chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from classifiers.catalog import load_catalog
from db.lookup import thread_message_ids
from db.models import Case, CaseStatus, Dispute, StatusEvent
from db.records import Composer, OutboundDraft
from inbox_worker.compose import compose_email, thread_subject
from inbox_worker.message import InboundEmail
from inbox_worker.settings import Settings

STATUS_LABELS = {
    CaseStatus.NEW: "received, waiting for a specialist",
    CaseStatus.IN_PROGRESS: "in progress",
    CaseStatus.AWAITING_CUSTOMER: "waiting for your reply",
    CaseStatus.RESOLVED: "resolved",
    CaseStatus.CLOSED: "closed",
}

NEXT_STEPS = {
    CaseStatus.NEW: "A billing specialist will pick up your case and reply in this thread.",
    CaseStatus.IN_PROGRESS: "A billing specialist is working on it and will reply in this "
    "thread.",
    CaseStatus.AWAITING_CUSTOMER: "We need information from you to continue: please reply "
    "to this email.",
    CaseStatus.RESOLVED: "Nothing more is needed from you. If something is still not right, "
    "reply to this email and we will reopen the case.",
    CaseStatus.CLOSED: "This case is closed. If you write to us about it again, we will open "
    "a new case and link it to this one.",
}

DISPUTE_LABELS = {
    "open": "received",
    "under_review": "under review",
    "approved": "approved in full",
    "partially_approved": "partially approved",
    "rejected": "not approved",
}


DECIDED_LABELS = frozenset({"approved", "partially_approved", "rejected"})


def money_text(amount: Decimal | None, currency: str | None) -> str:
    """`1,250.00 USD`, or "" when there is no amount."""
    return f"{amount:,.2f} {currency or ''}".strip() if amount is not None else ""


def acknowledgement(
    settings: Settings, email: InboundEmail, details: dict[str, Any], now: datetime
) -> Composer:
    """The instant reply to a new case, with its tracking number."""

    def compose(case: Case) -> OutboundDraft:
        # The acknowledgement shows the extracted details; no need to read the dispute back.
        context = {
            **_case_context(settings, case, with_dispute=False),
            # Mail about a finished case opens a new one: say which, as the closing promised.
            "previous_tracking_number":
                case.previous_case.tracking_number if case.previous_case_id else None,
            "previous_case_status":
                case.previous_case.status if case.previous_case_id else None,
            "details": {**details, "amount_text": money_text(
                Decimal(details["amount"]) if details.get("amount") else None,
                details.get("currency"))},
        }
        return compose_email(
            settings, kind="acknowledgement", template="acknowledgement", context=context,
            recipient=case.customer_email, recipient_name=case.customer_name,
            subject=thread_subject(email.subject, case.tracking_number),
            **_answering(email),
            now=now, process=case.process,
        )

    return compose


def status_changed(settings: Settings, note: str, now: datetime) -> Composer:
    """Tells the customer their case moved to a new status."""
    return _case_notice(settings, "status_update", "status_changed", now, note=note)


def specialist_reply(settings: Settings, text: str, now: datetime) -> Composer:
    """A specialist's own words, sent in the case thread."""
    return _case_notice(settings, "reply", "specialist_reply", now, auto_submitted=None,
                        text=text)


def status_reply(settings: Settings, email: InboundEmail, now: datetime) -> Composer:
    """The automatic answer to "any update?", to whoever asked (owner or linked address)."""
    return _case_notice(settings, "status_reply", "status_reply", now,
                        auto_submitted="auto-replied",
                        recipient=(email.sender, email.sender_name))


def dispute_under_review(settings: Settings, note: str, now: datetime) -> Composer:
    """Tells the customer their disputed charge is being investigated, and what comes next:
    the decision by email in this thread, and that they can reply with documents."""
    return _case_notice(settings, "dispute_review", "dispute_under_review", now, note=note)


def dispute_decided(settings: Settings, now: datetime) -> Composer:
    """The decision on a disputed charge, with the amount credited; a revised decision
    says which earlier one it replaces."""

    def compose(case: Case) -> OutboundDraft:
        return _case_notice(settings, "dispute_decision", "dispute_decided", now,
                            replaced_decision=_replaced_decision(case))(case)

    return compose


def _replaced_decision(case: Case) -> str:
    """The label of the decision before the one just recorded, if there was one."""
    events = list(
        StatusEvent.select()
        .where(StatusEvent.case == case, StatusEvent.kind == "dispute")
        .order_by(StatusEvent.id.desc())
        .limit(2)
    )
    earlier = events[1].to_status if len(events) == 2 else None
    return DISPUTE_LABELS.get(earlier, "") if earlier in DECIDED_LABELS else ""


def not_your_case(settings: Settings, email: InboundEmail, now: datetime) -> Composer:
    """A neutral answer to someone asking about a case that is not theirs."""

    def compose(case: Case) -> OutboundDraft:
        return compose_email(
            settings, kind="not_your_case", template="not_your_case",
            context={"from_name": settings.from_name, "tracking_number": None},
            recipient=email.sender, recipient_name=email.sender_name,
            # Fixed subject: echoing theirs could repeat a tracking number or case subject.
            subject=thread_subject("", None),
            **_answering(email),
            now=now,
        )

    return compose


def too_large(settings: Settings, email: InboundEmail, size: int, now: datetime
              ) -> OutboundDraft:
    """Tells the sender their email was too large to read, so they can send it again."""
    context = {
        "customer_name": email.sender_name, "subject": email.subject or "(no subject)",
        "size_text": _megabytes(size), "limit_text": _megabytes(settings.max_message_bytes),
        "from_name": settings.from_name, "tracking_number": None,
    }
    return compose_email(
        settings, kind="too_large", template="too_large", context=context,
        recipient=email.sender, recipient_name=email.sender_name,
        subject=thread_subject(email.subject, None), **_answering(email), now=now,
    )


def _megabytes(size: int) -> str:
    """"31.2 MB", or "5 KB" below a megabyte."""
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    return f"{max(1, round(size / 1000))} KB"


def case_list(
    settings: Settings, email: InboundEmail, cases: Sequence[Case], now: datetime
) -> OutboundDraft:
    """The sender's open cases: the email counterpart of a portal's Cases tab."""
    catalog = load_catalog()
    rows = [
        {
            "tracking_number": case.tracking_number,
            "status_label": STATUS_LABELS[CaseStatus(case.status)],
            "process": catalog[case.process].display_name if case.process in catalog
            else case.process,
            "opened": case.created_at.date().isoformat(),
            "subject": case.subject,
        }
        for case in cases
    ]
    context = {
        "cases": rows, "customer_name": email.sender_name, "customer_email": email.sender,
        "from_name": settings.from_name, "tracking_number": None,
    }
    return compose_email(
        settings, kind="case_list", template="case_list", context=context,
        recipient=email.sender, recipient_name=email.sender_name,
        subject=thread_subject(email.subject, None), **_answering(email), now=now,
    )


def _answering(email: InboundEmail) -> dict[str, Any]:
    """Threading headers of a direct answer to `email`, under it in the sender's client."""
    return {"in_reply_to": email.message_id,
            "references": [*email.references, email.message_id]}


def _case_notice(
    settings: Settings, kind: str, template: str, now: datetime,
    auto_submitted: str | None = "auto-generated",
    recipient: tuple[str, str] | None = None, **extra: Any,
) -> Composer:
    def compose(case: Case) -> OutboundDraft:
        thread = thread_message_ids(case)
        address, name = recipient or (case.customer_email, case.customer_name)
        # Greet whoever it goes to: a colleague linked to the account, not the case owner.
        context = {**_case_context(settings, case), "customer_name": name, **extra}
        return compose_email(
            settings, kind=kind, template=template, context=context,
            recipient=address, recipient_name=name,
            subject=thread_subject(case.subject, case.tracking_number),
            in_reply_to=thread[-1] if thread else "", references=thread, now=now,
            process=case.process, auto_submitted=auto_submitted,
        )

    return compose


def _last_change(case: Case) -> str:
    """"status changed to in progress on 2026-03-02 14:05 UTC": what the customer sees."""
    event = (
        StatusEvent.select()
        .where(StatusEvent.case == case, StatusEvent.kind.in_(["status", "dispute"]))
        .order_by(StatusEvent.id.desc())
        .first()
    )
    when = (event.created_at if event else case.updated_at).strftime("%Y-%m-%d %H:%M UTC")
    if event is None:
        return when
    if event.kind == "dispute":
        return f"dispute {DISPUTE_LABELS.get(event.to_status, event.to_status)} on {when}"
    label = STATUS_LABELS.get(CaseStatus(event.to_status), event.to_status)
    return f"status changed to {label} on {when}"


def _case_context(settings: Settings, case: Case, with_dispute: bool = True) -> dict[str, Any]:
    process = load_catalog().get(case.process) or load_catalog()["general"]
    status = CaseStatus(case.status)
    dispute = Dispute.get_or_none(Dispute.case == case) if with_dispute else None
    return {
        "tracking_number": case.tracking_number,
        "customer_name": case.customer_name,
        "customer_email": case.customer_email,
        "from_name": settings.from_name,
        "process": process,
        "status_label": STATUS_LABELS[status],
        # A closed case takes no more mail: the footer must not invite a reply to it.
        "case_closed": status == CaseStatus.CLOSED,
        "next_step": NEXT_STEPS[status],
        "last_change": _last_change(case) if with_dispute else "",
        "note": "",
        "dispute_label": DISPUTE_LABELS.get(dispute.status, "") if dispute else "",
        "invoice_number": dispute.invoice_number if dispute else None,
        "disputed_amount_text": money_text(dispute.disputed_amount, dispute.currency)
        if dispute else "",
        "approved_amount_text": money_text(dispute.approved_amount, dispute.currency)
        if dispute else "",
        "resolution_note": dispute.resolution_note if dispute else "",
    }
