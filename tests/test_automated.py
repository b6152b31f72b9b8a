"""Bounces and automatic replies are recognised; mail a person wrote is never mistaken for them.

Both directions matter: answering a robot starts a mail loop, and flagging a customer
silently drops their request (automated mail opens no case).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from inbox_worker.message import InboundEmail, parse_email

EMAILS = Path(__file__).parent / "emails"
OWN_ADDRESS = "billing@acme-billing.example"
RECEIVED_AT = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def parse_fixture(name: str) -> InboundEmail:
    return parse_email((EMAILS / name).read_bytes(), OWN_ADDRESS, RECEIVED_AT)


def person_message(
    sender: str = "Olivia Bennett <olivia.bennett@bennett-partners.example>", headers: str = ""
) -> bytes:
    """An ordinary customer request, with extra header lines for the case under test."""
    return (
        f"From: {sender}\r\n"
        "To: billing@acme-billing.example\r\n"
        "Subject: Please pause billing during our office move\r\n"
        "Date: Thu, 19 Mar 2026 09:00:00 +0000\r\n"
        "Message-ID: <person.move.2026@bennett-partners.example>\r\n"
        f"{headers}"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Please suspend billing for account ACC-55012 from 1 April to 30 April 2026.\r\n"
    ).encode()


def parse_bytes(raw: bytes) -> InboundEmail:
    return parse_email(raw, OWN_ADDRESS, RECEIVED_AT)


# --- bounces --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bounce_dsn.eml", "delivery-status report (RFC 3464)"),
        ("bounce_qmail.eml", "sender mailer-daemon@mail.oldhost.example is a mail system"),
        ("bounce_exim.eml", "sender mailer-daemon@smtp.hosting-provider.example is a mail system"),
        ("bounce_undeliverable_subject.eml", "delivery failure subject"),
    ],
)
def test_bounce_is_flagged_with_its_reason(name: str, reason: str) -> None:
    email = parse_fixture(name)

    assert email.is_bounce
    assert email.bounce_reason == reason


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bounce_dsn.eml", "Auto-Submitted: auto-replied"),
        ("bounce_qmail.eml", "empty Return-Path"),
        ("bounce_exim.eml", "Auto-Submitted: auto-replied"),
    ],
)
def test_bounce_is_also_never_answered(name: str, reason: str) -> None:
    assert parse_fixture(name).automated_reason == reason


# --- automatic replies and other robots ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("ooo_auto_submitted.eml", "Auto-Submitted: auto-replied"),
        ("ooo_x_autoreply.eml", "x-autoreply header present"),
        ("ooo_precedence_bulk.eml", "Precedence: bulk"),
        ("ooo_subject_automatic_reply.eml", "out-of-office subject"),
        ("ooo_subject_abwesenheitsnotiz.eml", "out-of-office subject"),
        ("ooo_subject_reponse_automatique.eml", "out-of-office subject"),
        ("ooo_subject_respuesta_automatica.eml", "out-of-office subject"),
        ("ooo_subject_out_of_office.eml", "out-of-office subject"),
        ("mailing_list.eml", "list-id header present"),
        ("noreply_sender.eml", "sender no-reply@payflow-payments.example is an automated address"),
        ("from_own_address.eml", "sent from our own address"),
        ("own_message_id_loop.eml", "carries our own Message-ID domain"),
        ("no_from.eml", "no sender address"),
    ],
)
def test_automated_mail_is_flagged_with_its_reason(name: str, reason: str) -> None:
    email = parse_fixture(name)

    assert email.is_automated
    assert email.automated_reason == reason


@pytest.mark.parametrize("name", sorted(p.name for p in EMAILS.glob("ooo_*.eml")))
def test_out_of_office_reply_is_not_a_bounce(name: str) -> None:
    assert not parse_fixture(name).is_bounce


# --- people ----------------------------------------------------------------------------------

PEOPLE = [
    "plain_text.eml",
    "multipart_alternative.eml",
    "html_only_blockquote.eml",
    "koi8r.eml",
    "latin1_quoted_printable.eml",
    "wrong_charset_latin1_as_utf8.eml",
    "rfc2231_attachment.eml",
    "broken_mime.eml",
    "no_message_id.eml",
    "no_date.eml",
    "pgp_signed.eml",
    "reply_gmail.eml",
    "reply_gmail_wrapped.eml",
    "reply_outlook.eml",
    "reply_outlook_german.eml",
    "reply_apple_mail.eml",
    "reply_original_message.eml",
    "reply_angle_quoted.eml",
    "reply_sv.eml",
    "signature.eml",
    "person_noreen.eml",
    "person_nora_reply.eml",
    "auto_response_suppress_person.eml",
]


@pytest.mark.parametrize("name", PEOPLE)
def test_mail_a_person_wrote_is_neither_bounce_nor_automated(name: str) -> None:
    email = parse_fixture(name)

    assert email.bounce_reason is None
    assert email.automated_reason is None


@pytest.mark.parametrize(
    "sender",
    [
        "Noreen Gallagher <noreen@gallagher-bakery.example>",
        "Nora Reply <nora.reply@x.com>",
        "Norah Reynolds <norah.reynolds@x.com>",
        "Autumn Reyes <autumn.reyes@reyes-dental.example>",
        "Bounce Fitness <bouncefitness@gym-mail.example>",
        # A person writing from an address on our own domain is not our own address.
        "Sales Colleague <sales@acme-billing.example>",
    ],
)
def test_person_with_a_robot_looking_address_is_not_automated(sender: str) -> None:
    email = parse_bytes(person_message(sender))

    assert email.automated_reason is None
    assert email.bounce_reason is None


def test_auto_submitted_no_is_a_person() -> None:
    email = parse_bytes(person_message(headers="Auto-Submitted: no\r\n"))

    assert email.automated_reason is None


@pytest.mark.parametrize("value", ["OOF", "All", "OOF, AutoReply", "DR, RN, NRN, OOF, AutoReply"])
def test_x_auto_response_suppress_alone_does_not_make_a_person_automated(value: str) -> None:
    # The header asks *us* not to auto-reply; Outlook, helpdesks and CRMs add it to mail
    # people write. Treating it as proof of a robot drops the customer's request.
    email = parse_bytes(person_message(headers=f"X-Auto-Response-Suppress: {value}\r\n"))

    assert email.automated_reason is None
