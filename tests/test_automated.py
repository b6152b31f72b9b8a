"""Bounces and automatic replies are recognised; mail a person wrote is never mistaken for them.

Both directions matter: answering a robot starts a mail loop, and flagging a customer
silently drops their request (automated mail opens no case).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli import main
from inbox_worker.message import InboundEmail, parse_email

EMAILS = Path(__file__).parent / "emails"
OWN_ADDRESS = "billing@acme-billing.example"
RECEIVED_AT = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def parse_fixture(name: str) -> InboundEmail:
    return parse_email((EMAILS / name).read_bytes(), OWN_ADDRESS, RECEIVED_AT)


def person_message(
    sender: str = "Olivia Bennett <olivia.bennett@bennett-partners.example>",
    headers: str = "",
    subject: str = "Please pause billing during our office move",
    body: str = "Please suspend billing for account ACC-55012 from 1 April to 30 April 2026.",
    content_type: str = "text/plain; charset=utf-8",
) -> bytes:
    """An email with the given parts; by default an ordinary customer request.

    `headers` are extra header lines (each ending in CRLF) for the case under test.
    """
    return (
        f"From: {sender}\r\n"
        "To: billing@acme-billing.example\r\n"
        f"Subject: {subject}\r\n"
        "Date: Thu, 19 Mar 2026 09:00:00 +0000\r\n"
        "Message-ID: <person.move.2026@bennett-partners.example>\r\n"
        f"{headers}"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: {content_type}\r\n"
        "\r\n"
        f"{body}\r\n"
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
        # Exchange's system mailbox, "MicrosoftExchange" + 32 hex digits, backs up the subject.
        (
            "bounce_undeliverable_subject.eml",
            "delivery failure subject, sender "
            "microsoftexchange329e71ec88ae4615bbc36ab6ce41109e@contoso-retail.example"
            " is an automated address",
        ),
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

# A responder titles its reply "<label>: <our subject>", tracking tag and all; people use "Re:".
OOO_ANSWERING_US = "out-of-office subject, answering our own email"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("ooo_auto_submitted.eml", "Auto-Submitted: auto-replied"),
        ("ooo_x_autoreply.eml", "x-autoreply header present"),
        ("ooo_precedence_bulk.eml", "Precedence: bulk"),
        ("ooo_subject_automatic_reply.eml", OOO_ANSWERING_US),
        ("ooo_subject_abwesenheitsnotiz.eml", OOO_ANSWERING_US),
        ("ooo_subject_reponse_automatique.eml", OOO_ANSWERING_US),
        ("ooo_subject_respuesta_automatica.eml", OOO_ANSWERING_US),
        ("ooo_subject_out_of_office.eml", OOO_ANSWERING_US),
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
    # A post to a mailing list: List-Id and List-Unsubscribe say how it travelled, not who
    # wrote it. (Until this was fixed, these headers alone silenced the email.)
    "mailing_list.eml",
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


# --- customers whose email only looks automatic --------------------------------------------
# Flagged mail opens no case and gets no reply, so a false alarm here loses a customer's
# request without a trace. These subjects start with words auto-responders and mail systems
# use, but run on into a sentence, and nothing else in the email says a robot wrote it.

CUSTOMER_SUBJECTS = [
    (
        "Delivery failure surcharge on INV-2026-00321 is wrong",
        "The delivery failure surcharge of 45.00 EUR on invoice INV-2026-00321 is wrong: "
        "the parcel was delivered at the first attempt.",
    ),
    (
        "Absence of 3 months - please pause our billing",
        "Please suspend billing on our account ACC-44120 from 1 May to 31 July 2026 while "
        "the shop is closed.",
    ),
    (
        "Out of office from Dec 20 - can we extend invoice INV-2026-00640?",
        "Our office is closed from 20 December to 5 January. Can we extend the due date of "
        "invoice INV-2026-00640 to 15 January?",
    ),
    (
        "Returned mail fee charged twice",
        "We were charged the returned mail fee of 12.50 USD twice on invoice "
        "INV-2026-00588. Please refund one of them.",
    ),
]

# How a customer's request arrives when they write through their company's Google Group
# (which also rewrites From to the group for DMARC) ...
GOOGLE_GROUP_HEADERS = (
    "Sender: accounts-payable@bennett-partners.example\r\n"
    "Precedence: list\r\n"
    "Mailing-list: list accounts-payable@bennett-partners.example;"
    " contact accounts-payable+owners@bennett-partners.example\r\n"
    "List-ID: <accounts-payable.bennett-partners.example>\r\n"
    "X-Google-Group-Id: 611024881372\r\n"
    "List-Post: <mailto:accounts-payable@bennett-partners.example>\r\n"
    "List-Help: <mailto:accounts-payable+help@bennett-partners.example>\r\n"
    "List-Unsubscribe: <mailto:googlegroups-manage+611024881372+unsubscribe@googlegroups.com>\r\n"
)
GOOGLE_GROUP_SENDER = (
    "'Olivia Bennett' via Accounts Payable <accounts-payable@bennett-partners.example>"
)
# ... and through a CRM or helpdesk that adds unsubscribe links and asks for no auto-replies.
CRM_HEADERS = (
    "List-Unsubscribe: <https://crm.bennett-partners.example/u/7f3a9c>,"
    " <mailto:unsubscribe@crm.bennett-partners.example?subject=7f3a9c>\r\n"
    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    "X-Auto-Response-Suppress: All\r\n"
)


@pytest.mark.parametrize(("subject", "body"), CUSTOMER_SUBJECTS)
def test_customer_request_whose_subject_starts_like_a_robot_is_neither_bounce_nor_automated(
    subject: str, body: str
) -> None:
    email = parse_bytes(person_message(subject=subject, body=body))

    assert email.bounce_reason is None
    assert email.automated_reason is None


@pytest.mark.parametrize(("subject", "body"), CUSTOMER_SUBJECTS)
@pytest.mark.parametrize(
    ("sender", "headers"),
    [
        (GOOGLE_GROUP_SENDER, GOOGLE_GROUP_HEADERS),
        ("Olivia Bennett <olivia.bennett@bennett-partners.example>", CRM_HEADERS),
    ],
    ids=["google-group", "crm"],
)
def test_robot_looking_subject_from_a_group_or_crm_is_still_a_person(
    subject: str, body: str, sender: str, headers: str
) -> None:
    # Two weak signs do not make a strong one: a sentence-like subject is no auto-reply
    # label, and list or CRM headers say how the email travelled, not who wrote it.
    email = parse_bytes(person_message(sender, headers, subject=subject, body=body))

    assert email.bounce_reason is None
    assert email.automated_reason is None


@pytest.mark.parametrize(
    ("sender", "headers"),
    [
        (GOOGLE_GROUP_SENDER, GOOGLE_GROUP_HEADERS),
        ("Olivia Bennett <olivia.bennett@bennett-partners.example>", CRM_HEADERS),
        (
            "Olivia Bennett <olivia.bennett@bennett-partners.example>",
            "List-Id: <ap.bennett-partners.example>\r\n",
        ),
        (
            "Olivia Bennett <olivia.bennett@bennett-partners.example>",
            "Precedence: list\r\n",
        ),
    ],
    ids=["google-group", "crm", "list-id-alone", "precedence-list-alone"],
)
def test_customer_writing_through_a_group_or_crm_is_not_automated(
    sender: str, headers: str
) -> None:
    email = parse_bytes(person_message(sender, headers))

    assert email.automated_reason is None
    assert email.bounce_reason is None


# --- the robots these must not let through --------------------------------------------------

DSN_BODY = (
    "--b1\r\nContent-Type: text/plain\r\n\r\n"
    "Your message to gone@example.org could not be delivered.\r\n"
    "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
    "Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    "--b1--"
)


@pytest.mark.parametrize(
    ("sender", "subject", "headers", "content_type", "body", "reason"),
    [
        # Gmail's bounce: a DSN from mailer-daemon, with no Auto-Submitted.
        (
            "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
            "Delivery Status Notification (Failure)",
            "",
            'multipart/report; report-type=delivery-status; boundary="b1"',
            DSN_BODY,
            "delivery-status report (RFC 3464)",
        ),
        # A DSN whose subject a person might write: the report type decides.
        (
            "Mail Administrator <mailadmin@old-host.example>",
            "Returned mail fee charged twice",
            "",
            'multipart/report; report-type=delivery-status; boundary="b1"',
            DSN_BODY,
            "delivery-status report (RFC 3464)",
        ),
        (
            "MAILER-DAEMON@mx.old-host.example",
            "Returned mail: see transcript for details",
            "",
            "text/plain",
            "The original message was received but could not be delivered.",
            "sender mailer-daemon@mx.old-host.example is a mail system",
        ),
        # A plain-text bounce from an odd address, sent with the null Return-Path.
        (
            "System Administrator <sysadmin@old-host.example>",
            "Undeliverable: Re: [BIL-000126] We received your request",
            "Return-Path: <>\r\n",
            "text/plain",
            "Your message did not reach some or all of the intended recipients.",
            "delivery failure subject, empty Return-Path",
        ),
        # Exim's bounce marks the failed recipients.
        (
            "Mail Delivery System <mail@smtp.old-host.example>",
            "Mail delivery failed: returning message to sender",
            "X-Failed-Recipients: gone@example.org\r\n",
            "text/plain",
            "This message was created automatically by mail delivery software.",
            "X-Failed-Recipients header present",
        ),
    ],
    ids=["gmail-dsn", "dsn-with-person-subject", "sendmail-daemon", "null-return-path",
         "exim"],
)
def test_real_bounce_is_still_flagged(
    sender: str, subject: str, headers: str, content_type: str, body: str, reason: str
) -> None:
    email = parse_bytes(person_message(sender, headers, subject, body, content_type))

    assert email.bounce_reason == reason
    assert email.needs_no_reply


EXCHANGE_ONLINE_OOF = (
    "Thread-Topic: [BIL-000140] We received your request\r\n"
    "X-MS-Has-Attach:\r\n"
    "X-Auto-Response-Suppress: All\r\n"
    "X-MS-Exchange-Inbox-Rules-Loop: chris.tanaka@pacific-rim-foods.example\r\n"
    "X-MS-TNEF-Correlator:\r\n"
    "auto-submitted: auto-generated\r\n"
    "x-ms-exchange-generated-message-source: Mailbox Rules Agent\r\n"
)


@pytest.mark.parametrize(
    ("subject", "headers", "reason"),
    [
        # Gmail's vacation responder: the user's own subject, marked the RFC 3834 way.
        ("Away until 6 April", "Auto-Submitted: auto-replied\r\n",
         "Auto-Submitted: auto-replied"),
        # Outlook / Exchange Online.
        ("Automatic reply: Invoice INV-2026-00377", EXCHANGE_ONLINE_OOF,
         "Auto-Submitted: auto-generated"),
        # Older Exchange, without Auto-Submitted: its own marks back up the label.
        (
            "Out of Office: Invoice INV-2026-00377",
            "X-Auto-Response-Suppress: All\r\n"
            "X-MS-Exchange-Inbox-Rules-Loop: chris.tanaka@pacific-rim-foods.example\r\n",
            "out-of-office subject, X-Auto-Response-Suppress: All",
        ),
        (
            "Out of Office AutoReply: Invoice INV-2026-00377",
            "X-MS-Exchange-Inbox-Rules-Loop: chris.tanaka@pacific-rim-foods.example\r\n",
            "out-of-office subject, x-ms-exchange-inbox-rules-loop header present",
        ),
        # A responder with no marks at all, answering one of our emails.
        ("Automatic reply: Re: [BIL-000140] We received your request", "", OOO_ANSWERING_US),
        ("Re: Invoice INV-2026-00377", "X-Autorespond: yes\r\n",
         "x-autorespond header present"),
        ("Re: Invoice INV-2026-00377", "X-Autogenerated: Reply\r\n", "X-Autogenerated: Reply"),
        ("Re: Invoice INV-2026-00377", "Precedence: auto_reply\r\n", "Precedence: auto_reply"),
    ],
    ids=["gmail", "exchange-online", "exchange-no-auto-submitted", "exchange-2003",
         "label-before-our-subject", "x-autorespond", "x-autogenerated", "precedence"],
)
def test_real_out_of_office_reply_is_still_automated(
    subject: str, headers: str, reason: str
) -> None:
    email = parse_bytes(person_message(
        "Chris Tanaka <chris.tanaka@pacific-rim-foods.example>", headers, subject,
        "I am out of the office until 6 April with no access to email."))

    assert email.automated_reason == reason
    assert email.bounce_reason is None


@pytest.mark.parametrize(
    ("sender", "headers", "reason"),
    [
        (
            "Acme Insights <news@insights.vendor.example>",
            "Precedence: bulk\r\n"
            "List-Unsubscribe: <https://insights.vendor.example/unsubscribe/91c2>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
            "Precedence: bulk",
        ),
        (
            "PayFlow <noreply@payflow-payments.example>",
            "List-Unsubscribe: <https://payflow-payments.example/unsubscribe/77>\r\n",
            "sender noreply@payflow-payments.example is an automated address",
        ),
    ],
    ids=["precedence-bulk", "noreply-sender"],
)
def test_newsletter_is_still_automated(sender: str, headers: str, reason: str) -> None:
    email = parse_bytes(person_message(
        sender, headers, "Five ways to pay your invoices faster", "Our March newsletter."))

    assert email.automated_reason == reason


def test_read_receipt_is_automated_but_not_a_bounce() -> None:
    receipt = person_message(
        subject="Read: Invoice INV-2026-00377",
        content_type='multipart/report; report-type=disposition-notification; boundary="r1"',
        body="--r1\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n--r1--",
    )

    email = parse_bytes(receipt)

    assert email.automated_reason == "multipart/report content"
    assert email.bounce_reason is None


# --- what the customer and the specialist see -----------------------------------------------


def test_customer_requests_that_look_automatic_open_cases_and_robots_do_not(clean_directory):
    emails = {
        f"customer-{number}.eml": person_message(subject=subject, body=body)
        for number, (subject, body) in enumerate(CUSTOMER_SUBJECTS)
    }
    emails["google-group.eml"] = person_message(GOOGLE_GROUP_SENDER, GOOGLE_GROUP_HEADERS)
    emails["out-of-office.eml"] = person_message(
        headers=EXCHANGE_ONLINE_OOF, subject="Automatic reply: Invoice INV-2026-00377",
        body="I am out of the office until 6 April.")
    emails["newsletter.eml"] = person_message(
        "Acme Insights <news@insights.vendor.example>",
        "Precedence: bulk\r\nList-Unsubscribe: <https://insights.vendor.example/u/91c2>\r\n",
        "Five ways to pay your invoices faster", "Our March newsletter.")
    for name, raw in emails.items():
        (clean_directory / name).write_bytes(raw)
    stdout = io.StringIO()

    code = main(["classify", *emails, "--json"], stdout=stdout, stderr=io.StringIO())

    assert code == 0
    routes = {Path(result["file"]).name: result["route"]
              for result in map(json.loads, stdout.getvalue().splitlines())}
    assert routes == {
        **{name: "new_case" for name in emails if name.startswith(("customer", "google"))},
        "out-of-office.eml": "ignore",
        "newsletter.eml": "ignore",
    }
