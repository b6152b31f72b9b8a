"""The test servers themselves: Dovecot stores and pushes mail, SmtpCapture records and refuses.

The SMTP tests run against both captures: aiosmtpd (the tests' own) and the light one that
bench.py uses, which must record exactly what aiosmtpd records.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from tests.servers import (
    DovecotServer,
    ImapAccount,
    LightSmtpCapture,
    SmtpCapture,
    append_messages,
    connect,
    fetch_all,
    folder_counts,
)

RAW = (
    b"From: Customer <customer@example.com>\r\n"
    b"To: billing@example.com\r\n"
    b"Subject: Invoice INV-1001 looks wrong\r\n"
    b"Message-ID: <servers-test-1@example.com>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Line 3 was charged twice. \xe2\x82\xac 12.50\r\n"
)


def test_append_then_fetch_returns_same_bytes(imap_account: ImapAccount) -> None:
    append_messages(imap_account, "INBOX", [RAW])

    assert fetch_all(imap_account, "INBOX") == [RAW]


def test_fetch_all_leaves_messages_unread(imap_account: ImapAccount) -> None:
    append_messages(imap_account, "INBOX", [RAW])
    fetch_all(imap_account, "INBOX")

    client = connect(imap_account)
    try:
        client.select_folder("INBOX", readonly=True)
        assert client.search("UNSEEN") == [1]
    finally:
        client.logout()


def test_append_creates_folder_and_counts_per_folder(imap_account: ImapAccount) -> None:
    append_messages(imap_account, "Processed", [RAW, RAW])

    assert folder_counts(imap_account) == {"INBOX": 0, "Processed": 2}


def test_idle_reports_exists_after_append_from_other_connection(
    imap_account: ImapAccount,
) -> None:
    watcher = connect(imap_account)
    try:
        assert b"IDLE" in watcher.capabilities()
        watcher.select_folder("INBOX")
        watcher.idle()
        started = time.monotonic()
        append_messages(imap_account, "INBOX", [RAW])
        responses = []
        while time.monotonic() - started < 5 and (1, b"EXISTS") not in responses:
            responses += watcher.idle_check(timeout=1)
        watcher.idle_done()
    finally:
        watcher.logout()

    assert (1, b"EXISTS") in responses


def test_users_do_not_see_each_others_mail(dovecot_server: DovecotServer) -> None:
    alice = dovecot_server.add_user("alice-isolation", "secret-a")
    bob = dovecot_server.add_user("bob-isolation", "secret-b")

    append_messages(alice, "INBOX", [RAW])

    assert fetch_all(alice) == [RAW]
    assert fetch_all(bob) == []


def test_wrong_password_is_rejected(dovecot_server: DovecotServer) -> None:
    account = dovecot_server.add_user("carol-password", "right")
    wrong = ImapAccount(account.host, account.port, account.user, "wrong")

    with pytest.raises(Exception, match="AUTHENTICATIONFAILED"):
        connect(wrong)


def test_account_url_carries_credentials_and_folder(imap_account: ImapAccount) -> None:
    url = imap_account.url("Processed")

    assert url.startswith(f"imap://{imap_account.user}:")
    assert url.endswith(f"@127.0.0.1:{imap_account.port}/Processed")


def _reply() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "billing@example.com"
    message["To"] = "customer@example.com"
    message["Subject"] = "[BIL-000001] We received your request"
    message["Message-ID"] = "<reply-1@billing.example.com>"
    message.set_content("Thanks, we are on it.")
    return message


@pytest.fixture(params=[SmtpCapture, LightSmtpCapture], ids=["aiosmtpd", "light"])
def capture(request: pytest.FixtureRequest) -> Iterator[SmtpCapture]:
    with request.param() as server:
        yield server


def test_smtp_capture_records_envelope_and_headers(capture: SmtpCapture) -> None:
    smtp_server = capture
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        client.send_message(
            _reply(), from_addr="bounces@example.com", to_addrs=["customer@example.com"]
        )

    [captured] = smtp_server.wait_for(1)
    assert captured.mail_from == "bounces@example.com"
    assert captured.rcpt_tos == ("customer@example.com",)
    assert captured.message["Subject"] == "[BIL-000001] We received your request"
    assert captured.message["Message-ID"] == "<reply-1@billing.example.com>"
    assert smtp_server.url == f"smtp://127.0.0.1:{smtp_server.port}"


@pytest.mark.parametrize("stage", ["DATA", "RCPT"])
def test_refusing_smtp_answers_451_until_restored(capture: SmtpCapture, stage: str) -> None:
    smtp_server = capture
    smtp_server.refuse(True, at=stage)
    with (
        smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client,
        pytest.raises(smtplib.SMTPException) as refused,
    ):
        client.send_message(_reply())
    smtp_server.refuse(False)
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        client.send_message(_reply())

    if stage == "DATA":
        assert isinstance(refused.value, smtplib.SMTPResponseException)
        assert refused.value.smtp_code == 451
    else:
        assert isinstance(refused.value, smtplib.SMTPRecipientsRefused)
        assert list(refused.value.recipients.values()) == [(451, b"4.3.0 try again later")]
    assert len(smtp_server.wait_for(1)) == 1


def test_wait_for_times_out_without_mail(capture: SmtpCapture) -> None:
    with pytest.raises(TimeoutError):
        capture.wait_for(1, timeout=0.2)


def test_light_capture_records_the_same_bytes_as_aiosmtpd() -> None:
    # Lines that start with a dot (doubled on the wire), 8-bit text, an empty line at the
    # end, and several messages on one connection: both servers must keep the same bytes.
    raw = [
        b"Subject: one\r\n\r\n.hidden line\r\n..two dots\r\n\xc3\xa9t\xc3\xa9\r\n.\r\n",
        b".Subject: dotted first line\r\n\r\nbody\r\n\r\n",
        b"Subject: no final line break\r\n\r\nlast",
    ]
    captured = {}
    for server_class in (SmtpCapture, LightSmtpCapture):
        with server_class() as server:
            with smtplib.SMTP(server.host, server.port, timeout=10) as client:
                for number, message in enumerate(raw):
                    client.sendmail(f"from{number}@example.com", ["a@example.com",
                                                                  "b@example.com"], message)
            captured[server_class] = [
                (one.mail_from, one.rcpt_tos, one.data) for one in server.wait_for(3)
            ]

    assert captured[LightSmtpCapture] == captured[SmtpCapture]
    assert captured[LightSmtpCapture][0][2].startswith(b"Subject: one\r\n\r\n.hidden line")
