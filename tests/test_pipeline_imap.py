"""End to end against real Dovecot and a real SMTP server: email in, case and reply out."""

from __future__ import annotations

import contextlib
import dataclasses
import email
import email.policy
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from imapclient.exceptions import LoginError

from db.database import connect_database
from db.lookup import list_cases
from db.models import Dispute, Message, QuarantinedMessage
from db.outbox import pending_messages
from inbox_worker import runner
from inbox_worker.pipeline import Worker
from inbox_worker.sources import open_source
from inbox_worker.training import load_classifier
from tests.conftest import FIXTURE_APPLICATION_NAME
from tests.mailfactory import customer_email, dsn_bounce, out_of_office
from tests.servers import append_messages, folder_counts


def _worker(settings) -> Worker:
    return Worker(settings, load_classifier(settings))


def _parsed(captured) -> email.message.EmailMessage:
    return email.message_from_bytes(captured.data, policy=email.policy.default)


BATCH = {
    "extension": customer_email(
        "Invoice INV-2026-00412", "Hi, could we please have two more weeks to pay invoice "
        "INV-2026-00412? Cash is tight until the 20th.", sender="ana@bakery.example"),
    "correction": customer_email(
        "Wrong charge", "You billed us twice for the same licence on Invoice #48213. "
        "Please refund the duplicate charge of $1,250.00.", sender="cfo@widgets.example"),
    "copy_html": customer_email(
        "Need a copy", "", html="<p>Could you <b>resend the PDF</b> of last month's invoice? "
        "Our accountant never got it.</p>", sender="ops@clinic.example"),
    "suspend": customer_email(
        "Account", "We close for the winter season. Please pause billing on our account "
        "from 1 December until we reopen in March.", sender="owner@campsite.example"),
}


def test_batch_of_emails_becomes_cases_disputes_and_threaded_acknowledgements(
    imap_settings, imap_account, smtp_server
):
    append_messages(imap_account, "INBOX", list(BATCH.values()))

    summary = runner.run_once(_worker(imap_settings))

    assert summary.outcomes["case_opened"] == 4
    cases = {case.customer_email: case for case in list_cases()}
    assert cases["ana@bakery.example"].process == "extend_due_date"
    assert cases["cfo@widgets.example"].process == "charge_correction"
    assert cases["ops@clinic.example"].process == "invoice_copy"
    assert cases["owner@campsite.example"].process == "suspend_billing"
    dispute = Dispute.get(Dispute.case == cases["cfo@widgets.example"])
    assert (dispute.invoice_number, dispute.disputed_amount, dispute.currency) == (
        "48213", Decimal("1250.00"), "USD")
    # Every email left the inbox for Processed, after its case was committed.
    assert folder_counts(imap_account)["INBOX"] == 0
    assert folder_counts(imap_account)["Processed"] == 4

    replies = smtp_server.wait_for(4)
    by_recipient = {captured.rcpt_tos[0]: _parsed(captured) for captured in replies}
    for customer, raw in zip(
        ["ana@bakery.example", "cfo@widgets.example", "ops@clinic.example",
         "owner@campsite.example"], BATCH.values(), strict=True
    ):
        original = email.message_from_bytes(raw, policy=email.policy.default)
        ack = by_recipient[customer]
        tracking = cases[customer].tracking_number
        assert f"[{tracking}]" in ack["Subject"]
        assert ack["In-Reply-To"] == original["Message-ID"]
        assert original["Message-ID"] in ack["References"]
        assert ack["Auto-Submitted"] == "auto-replied"
        assert ack.get_content_type() == "multipart/alternative"
        text = ack.get_body(preferencelist=("plain",)).get_content()
        html = ack.get_body(preferencelist=("html",)).get_content()
        assert tracking in text and tracking in html
        assert "reply to this email" in text.lower()


def test_second_run_changes_nothing(imap_settings, imap_account, smtp_server):
    append_messages(imap_account, "INBOX", [BATCH["correction"]])
    worker = _worker(imap_settings)
    runner.run_once(worker)
    smtp_server.wait_for(1)

    second = runner.run_once(worker)

    assert sum(second.outcomes.values()) == 0
    assert len(list_cases()) == 1
    assert len(smtp_server.messages) == 1


def test_same_email_still_in_inbox_after_crash_before_move_opens_one_case(
    imap_settings, imap_account, smtp_server, monkeypatch
):
    # The same Message-ID delivered twice stands in for "committed, then crashed before
    # the move": the copy still in the inbox must not open a second case.
    append_messages(imap_account, "INBOX", [BATCH["extension"]])
    worker = _worker(imap_settings)
    runner.run_once(worker)
    append_messages(imap_account, "INBOX", [BATCH["extension"]])

    summary = runner.run_once(worker)

    assert summary.outcomes == {"duplicate": 1}
    assert len(list_cases()) == 1
    assert len(smtp_server.wait_for(1)) == 1
    assert folder_counts(imap_account)["INBOX"] == 0


def test_bounces_and_out_of_office_get_no_reply(imap_settings, imap_account, smtp_server):
    append_messages(imap_account, "INBOX", [dsn_bounce(), out_of_office(), BATCH["suspend"]])

    summary = runner.run_once(_worker(imap_settings))

    assert summary.outcomes == {"ignored_bounce": 1, "ignored_automated": 1, "case_opened": 1}
    assert [list(captured.rcpt_tos) for captured in smtp_server.wait_for(1)] == [
        ["owner@campsite.example"]]
    ignored = Message.select().where(Message.kind.in_(["ignored_bounce", "ignored_automated"]))
    assert all(message.reason for message in ignored) and ignored.count() == 2
    assert folder_counts(imap_account)["Processed"] == 3


def test_failing_email_is_quarantined_and_the_rest_go_through(
    imap_settings, imap_account, smtp_server, monkeypatch
):
    # A real part cannot be made to throw for one chosen email, so this injects the fault
    # into routing for that email only; everything else is the real pipeline.
    from inbox_worker import pipeline

    real_route = pipeline.route_message

    def failing_route(parsed, *rest):
        if "owner@campsite" in parsed.sender:
            raise RuntimeError("simulated bug")
        return real_route(parsed, *rest)

    monkeypatch.setattr(pipeline, "route_message", failing_route)
    oversized = customer_email("Huge", "x" * 5000, sender="big@example.org")
    settings = dataclasses.replace(imap_settings, max_message_bytes=4000)
    append_messages(imap_account, "INBOX", [BATCH["suspend"], oversized, BATCH["extension"]])

    summary = runner.run_once(_worker(settings))

    assert summary.outcomes == {"quarantined": 2, "case_opened": 1}
    counts = folder_counts(imap_account)
    assert (counts["INBOX"], counts["Quarantine"], counts["Processed"]) == (0, 2, 1)
    # The case that opened is acknowledged; the sender of the email too large to read
    # (its header section fetched alone) is told to send it again.
    replies = {captured.rcpt_tos[0]: _parsed(captured) for captured in smtp_server.wait_for(2)}
    assert sorted(replies) == ["ana@bakery.example", "big@example.org"]
    notice = replies["big@example.org"]
    assert notice["Subject"] == "Re: Huge"
    text = " ".join(notice.get_body(("plain",)).get_content().split())
    assert 'We received your email "Huge", but at 5 KB it is larger than the 4 KB' in text
    quarantined = {item.sender: item for item in QuarantinedMessage.select()}
    assert quarantined["big@example.org"].subject == "Huge"
    assert quarantined["big@example.org"].raw is None


@pytest.mark.parametrize(("at", "reply"), [("RCPT", "550 5.1.1 no such user here"),
                                         ("DATA", "554 5.7.1 message refused")])
def test_a_reply_the_server_refuses_for_good_is_kept_undeliverable_not_retried(
    imap_settings, imap_account, smtp_server, at, reply
):
    from db.outbox import retry_now
    from inbox_worker.clock import utc_now

    append_messages(imap_account, "INBOX", [BATCH["copy_html"]])
    worker = _worker(imap_settings)
    smtp_server.refuse(True, at=at, reply=reply)

    summary = runner.run_once(worker)

    assert summary.outcomes == {"case_opened": 1} and summary.send_failures == 1
    refused = Message.get(Message.kind == "acknowledgement")
    assert (refused.delivery_state, refused.attempts) == ("undeliverable", 1)
    assert reply.split()[0] in refused.last_error
    assert [message.id for message in pending_messages()] == [refused.id]  # still listed
    # Not retried on its own, however long it waits (a pending reply would be sent
    # here): a 5xx would only come again.
    smtp_server.refuse(False)
    Message.update(next_attempt_at=utc_now() - timedelta(hours=2)).execute()
    runner.run_once(worker)
    assert Message.get_by_id(refused.id).attempts == 1 and not smtp_server.messages

    assert retry_now(utc_now()) == 1  # `outbox retry`, once the cause is fixed
    runner.run_once(worker)

    assert len(smtp_server.wait_for(1)) == 1
    assert Message.get_by_id(refused.id).delivery_state == "sent"


def test_smtp_outage_keeps_reply_pending_until_it_can_be_sent(
    imap_settings, imap_account, smtp_server
):
    append_messages(imap_account, "INBOX", [BATCH["copy_html"]])
    worker = _worker(imap_settings)
    smtp_server.refuse(True)

    summary = runner.run_once(worker)

    assert summary.outcomes == {"case_opened": 1} and summary.send_failures == 1
    pending = Message.get(Message.kind == "acknowledgement")
    assert pending.delivery_state == "pending" and pending.attempts == 1
    assert "451" in pending.last_error
    smtp_server.refuse(False)
    from db.outbox import retry_now
    from inbox_worker.clock import utc_now

    retry_now(utc_now())
    runner.run_once(worker)

    assert len(smtp_server.wait_for(1)) == 1
    assert Message.get(Message.kind == "acknowledgement").delivery_state == "sent"


@contextlib.contextmanager
def _serving(worker: Worker) -> Iterator[threading.Thread]:
    """`runner.serve` on a thread, stopped (and waited for) on leaving the block."""
    stop = threading.Event()
    thread = threading.Thread(target=runner.serve, args=(worker, stop), daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(timeout=10)


def test_idle_worker_answers_an_appended_email_without_waiting_for_a_poll(
    imap_settings, imap_account, smtp_server
):
    # poll_seconds is an hour: only IDLE can wake it
    with _serving(_worker(imap_settings)) as thread:
        append_messages(imap_account, "INBOX", [BATCH["extension"]])
        replies = smtp_server.wait_for(1, timeout=20)
    assert list(replies[0].rcpt_tos) == ["ana@bakery.example"]
    assert not thread.is_alive()


def _sender_processes() -> list[multiprocessing.Process]:
    return [process for process in multiprocessing.active_children()
            if process.name == "billing-inbox-sender"]


def test_a_killed_sender_process_is_restarted_and_replies_still_go_out(
    imap_settings, imap_account, smtp_server
):
    with _serving(_worker(imap_settings)):
        append_messages(imap_account, "INBOX", [BATCH["extension"]])
        smtp_server.wait_for(1, timeout=20)
        [killed] = _sender_processes()
        os.kill(killed.pid, signal.SIGKILL)
        append_messages(imap_account, "INBOX", [BATCH["suspend"]])
        replies = smtp_server.wait_for(2, timeout=30)
        restarted = _sender_processes()
    assert sorted(captured.rcpt_tos[0] for captured in replies) == [
        "ana@bakery.example", "owner@campsite.example"]
    assert [process.pid for process in restarted] != [killed.pid]
    assert _sender_processes() == []  # stopped together with the worker


def test_worker_reconnects_after_the_server_drops_the_connection(
    imap_settings, imap_account, smtp_server, dovecot_server
):
    with _serving(_worker(imap_settings)):
        append_messages(imap_account, "INBOX", [BATCH["extension"]])
        smtp_server.wait_for(1, timeout=20)  # connected and serving
        dovecot_server.kick(imap_account.user)
        append_messages(imap_account, "INBOX", [BATCH["suspend"]])
        replies = smtp_server.wait_for(2, timeout=30)
    assert sorted(captured.rcpt_tos[0] for captured in replies) == [
        "ana@bakery.example", "owner@campsite.example"]


def _end_database_sessions(postgres_url: str, named: str = "billing-inbox%") -> int:
    """What a PostgreSQL restart or failover does to its clients: their sessions end."""
    import psycopg2

    admin = psycopg2.connect(postgres_url, application_name=FIXTURE_APPLICATION_NAME)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND application_name LIKE %s "
                           "AND application_name <> %s",
                           [named, FIXTURE_APPLICATION_NAME])
            return cursor.fetchone()[0]
    finally:
        admin.close()


@pytest.fixture
def postgres_settings(make_settings, imap_account, smtp_server, postgres_url):
    """A worker's settings against real Dovecot and SMTP, on a fresh PostgreSQL schema."""
    connect_database(postgres_url)
    return make_settings(mailbox_url=imap_account.url("INBOX"), smtp_url=smtp_server.url,
                         database_url=postgres_url)


def test_worker_carries_on_after_postgresql_ends_its_sessions(
    postgres_settings, imap_account, smtp_server, postgres_url
):
    with _serving(_worker(postgres_settings)):
        append_messages(imap_account, "INBOX", [BATCH["extension"]])
        smtp_server.wait_for(1, timeout=20)
        assert _end_database_sessions(postgres_url) >= 2  # the intake's, the sender's
        append_messages(imap_account, "INBOX", [BATCH["suspend"]])
        replies = smtp_server.wait_for(2, timeout=40)
    assert sorted(captured.rcpt_tos[0] for captured in replies) == [
        "ana@bakery.example", "owner@campsite.example"]
    connect_database(postgres_url)
    assert len(list_cases()) == 2


def _wait_until_nothing_pending(timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while pending_messages() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_the_sender_carries_on_after_postgresql_ends_its_session(
    postgres_settings, imap_account, smtp_server, postgres_url
):
    with _serving(_worker(postgres_settings)):
        append_messages(imap_account, "INBOX", [BATCH["extension"]])
        smtp_server.wait_for(1, timeout=20)
        _wait_until_nothing_pending()  # then the sent-marks thread has its session too
        # Two: the sending thread's and the sent-marks thread's (see README, workers).
        assert _end_database_sessions(postgres_url, "billing-inbox sender") == 2
        append_messages(imap_account, "INBOX", [BATCH["suspend"]])
        replies = smtp_server.wait_for(2, timeout=20)
        _wait_until_nothing_pending()  # the sent-marks are written after a reconnect too
    assert sorted(captured.rcpt_tos[0] for captured in replies) == [
        "ana@bakery.example", "owner@campsite.example"]
    assert pending_messages() == []


def test_a_refused_imap_login_names_the_setting_and_not_the_password(
    make_settings, imap_account
):
    wrong = dataclasses.replace(imap_account, password="not-the-Pa55word")
    settings = make_settings(mailbox_url=wrong.url("INBOX"))

    with pytest.raises(LoginError) as refused:
        open_source(settings)

    message = str(refused.value)
    assert message.startswith("BILLING_INBOX_MAILBOX_URL: the IMAP server refused user "
                              f"'{imap_account.user}': ")
    # The server's words, not the bytes repr imaplib hands over (b'[AUTHENTICATIONFAILED]
    # ...'); the random user name may itself end in "b", so only the words are checked.
    assert message.endswith(": [AUTHENTICATIONFAILED] Authentication failed.")
    assert "not-the-Pa55word" not in message and "\n" not in message
