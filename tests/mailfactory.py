"""Building customer emails for tests: plain, HTML-only, replies, bounces, auto-replies."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

_numbers = itertools.count(1)

BILLING_ADDRESS = "billing@acme-billing.example"


def customer_email(
    subject: str,
    body: str,
    sender: str = "pat.customer@example.org",
    name: str = "Pat Customer",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    html: str | None = None,
    headers: dict[str, str] | None = None,
    date: datetime | None = None,
) -> bytes:
    """An email as a customer's mail client would send it (CRLF line ends)."""
    message = EmailMessage()
    message["From"] = formataddr((name, sender))
    message["To"] = BILLING_ADDRESS
    message["Subject"] = subject
    message["Date"] = format_datetime(date or datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    message["Message-ID"] = message_id or f"<test-{next(_numbers)}@mail.example.org>"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = " ".join(references)
    for header, value in (headers or {}).items():
        message[header] = value
    if html is not None and body:
        message.set_content(body)
        message.add_alternative(html, subtype="html")
    elif html is not None:
        message.set_content(html, subtype="html")
    else:
        message.set_content(body)
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def reply_to(ack: EmailMessage, body: str, sender: str = "pat.customer@example.org",
             subject_prefix: str = "Re: ") -> bytes:
    """The customer's reply to one of our emails, threaded the way mail clients do."""
    references = [*str(ack.get("References", "")).split(), str(ack["Message-ID"])]
    quoted = "\n".join(f"> {line}" for line in
                       ack.get_body(preferencelist=("plain",)).get_content().splitlines())
    return customer_email(
        subject=f"{subject_prefix}{ack['Subject'].removeprefix('Re: ')}",
        body=f"{body}\n\nOn Mon, 2 Mar 2026 at 10:00, Billing <{BILLING_ADDRESS}> wrote:\n"
        f"{quoted}\n",
        sender=sender,
        in_reply_to=str(ack["Message-ID"]),
        references=references,
    )


def dsn_bounce(original_recipient: str = "gone@example.org") -> bytes:
    """An RFC 3464 delivery-status report from a mailer daemon."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        f"To: {BILLING_ADDRESS}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <bounce-{next(_numbers)}@mx.example.org>\r\n"
        "Date: Mon, 2 Mar 2026 09:31:00 +0000\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n'
        "\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
        f"Your message to {original_recipient} could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Final-Recipient: rfc822; {original_recipient}\r\nAction: failed\r\n"
        "Status: 5.1.1\r\n--b1--\r\n"
    ).encode()


def out_of_office(sender: str = "lee.away@example.org") -> bytes:
    """An out-of-office auto-reply, marked the RFC 3834 way."""
    return customer_email(
        subject="Automatic reply: Invoice question",
        body="I am out of the office until 9 March with limited access to email.",
        sender=sender, name="Lee Away",
        headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
    )
