"""Replies are safe to send: customer text is escaped in HTML and cannot add headers."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

from classifiers.catalog import load_catalog
from inbox_worker.compose import compose_email, thread_subject
from inbox_worker.settings import Settings

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _acknowledgement(customer_name: str, subject: str, recipient: str = "pat@example.org"):
    context = {
        "tracking_number": "BIL-000042", "customer_name": customer_name,
        "customer_email": recipient, "from_name": "Billing Team",
        "process": load_catalog()["invoice_copy"],
        "details": {"invoice_number": "<b>7781</b>", "requested_date": None, "amount_text": ""},
    }
    draft = compose_email(
        Settings(from_address="billing@acme-billing.example"), kind="acknowledgement",
        template="acknowledgement", context=context, recipient=recipient,
        recipient_name=customer_name, subject=thread_subject(subject, "BIL-000042"),
        in_reply_to="<customer-1@example.org>", references=["<customer-1@example.org>"],
        now=NOW, process="invoice_copy",
    )
    return draft, email.message_from_bytes(draft.raw, policy=email.policy.default)


def test_customer_text_is_escaped_in_the_html_part_and_kept_in_the_text_part():
    _, message = _acknowledgement('<script>alert("x")</script>', "Copy please")

    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;7781&lt;/b&gt;" in html
    assert '<script>alert("x")</script>' in text  # plain text needs no escaping


def test_customer_text_cannot_add_header_lines():
    draft, message = _acknowledgement("Eve\r\nBcc: victim@example.com",
                                      "Hi\r\nBcc: victim@example.com\nX-Evil: 1")

    assert message["Bcc"] is None and message["X-Evil"] is None
    headers = draft.raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in headers and b"\r\nX-Evil:" not in headers
    assert message["Subject"].startswith("Re: [BIL-000042] Hi")
    assert [address.addr_spec for address in message["To"].addresses] == ["pat@example.org"]


def test_reply_subject_keeps_one_token_and_drops_stacked_prefixes():
    assert thread_subject("AW: Re: SV: [BIL-000042] Invoice question", "BIL-000042") == (
        "Re: [BIL-000042] Invoice question")
    assert thread_subject("", None) == "Re: your billing request"
