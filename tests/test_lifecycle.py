"""A case's life end to end: real Dovecot in, real SMTP out, the CLI in between.

The customer writes (appended over IMAP), the worker opens the case, a specialist works
it with `cli.main([...])`, and the customer receives every update threaded under the
acknowledgement; their replies, status questions and strangers' questions come back in
over IMAP. Every test runs on SQLite and on PostgreSQL (through `imap_settings`).
"""

from __future__ import annotations

import email
import email.policy
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from cli import ExitCode, main
from db.lookup import list_cases
from db.models import Case
from inbox_worker import runner
from inbox_worker.clock import utc_now
from inbox_worker.pipeline import RunSummary, Worker
from inbox_worker.settings import SETTINGS, Settings
from inbox_worker.training import load_classifier
from tests.mailfactory import customer_email, reply_to
from tests.servers import SmtpCapture, append_messages

CFO = "cfo@widgets.example"
OPS = "ops@clinic.example"
STRANGER = "someone@elsewhere.example"
CASE_SUBJECT = "Duplicate licence charge"

CORRECTION_BODY = ("You billed us twice for the same licence on Invoice #48213. "
                   "Please refund the duplicate charge of $1,250.00.")
COPY_BODY = "Could you resend the PDF of last month's invoice? Our accountant never got it."


# --- helpers -------------------------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str, str]:
    """`billing-inbox --as maria ARGV...` in process; returns (code, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(["--as", "maria", *argv], stdout, stderr)
    return code, stdout.getvalue(), stderr.getvalue()


def cli_ok(*argv: str) -> str:
    code, out, err = run_cli(*argv)
    assert code == ExitCode.OK, err
    return out


def show(tracking: str) -> dict[str, Any]:
    return json.loads(cli_ok("cases", "show", tracking, "--json"))


def message_ids(value: object) -> list[str]:
    """The <ids> in a Message-ID, In-Reply-To or References header, however it was folded."""
    return re.findall(r"<[^<>\s]+>", str(value or ""))


def message_id(message: EmailMessage) -> str:
    [found] = message_ids(message["Message-ID"])
    return found


def parsed(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def bodies(message: EmailMessage) -> tuple[str, str]:
    """The text/plain and text/html parts (each must exist)."""
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None, "needs a text/plain and a text/html part"
    return plain.get_content(), html.get_content()


def everything_visible(message: EmailMessage) -> str:
    """What the recipient can read: subject, both bodies and every header."""
    plain, html = bodies(message)
    headers = "\n".join(f"{name}: {value}" for name, value in message.items())
    return f"{headers}\n{plain}\n{html}"


class Mail:
    """The SMTP capture seen from the customer side: what arrived since last asked."""

    def __init__(self, server: SmtpCapture) -> None:
        self.server = server
        self.seen = 0

    def new(self, count: int) -> list[tuple[list[str], EmailMessage]]:
        """Exactly the next `count` emails (recipients, parsed)."""
        arrived = self.server.wait_for(self.seen + count)
        fresh = arrived[self.seen:]
        self.seen = len(arrived)
        return [(list(captured.rcpt_tos), captured.message) for captured in fresh]

    def one(self, recipient: str) -> EmailMessage:
        [(recipients, message)] = self.new(1)
        assert recipients == [recipient]
        return message

    def nothing_more(self) -> None:
        assert len(self.server.messages) == self.seen, [
            m.message["Subject"] for m in self.server.messages[self.seen:]]


def assert_threaded(update: EmailMessage, chain: list[str], tracking: str) -> None:
    """Continues the case thread: In-Reply-To the latest message, References all of it."""
    assert f"[{tracking}]" in update["Subject"]
    assert message_ids(update["In-Reply-To"]) == [chain[-1]]
    assert message_ids(update["References"]) == chain
    plain, html = bodies(update)
    assert tracking in plain and tracking in html


@dataclass
class Desk:
    """The billing desk under test: worker, mailbox, CLI environment and the outbox."""

    settings: Settings
    account: Any
    mail: Mail
    run: Callable[..., RunSummary]

    def receive(self, *messages: bytes, clock: Callable[[], datetime] = utc_now) -> RunSummary:
        append_messages(self.account, "INBOX", list(messages))
        return self.run(clock)


@pytest.fixture(scope="session")
def classifier(model_dir: str):
    """Loaded once for the session; every Worker in these tests shares it."""
    return load_classifier(Settings(model_dir=model_dir))


@pytest.fixture
def desk(imap_settings, imap_account, smtp_server, classifier, monkeypatch, model_dir) -> Desk:
    for name in [*SETTINGS, "config", "actor"]:
        monkeypatch.delenv(f"BILLING_INBOX_{name.upper()}", raising=False)
    monkeypatch.setenv("BILLING_INBOX_DATABASE_URL", imap_settings.database_url)
    monkeypatch.setenv("BILLING_INBOX_MAILBOX_URL", imap_settings.mailbox_url)
    monkeypatch.setenv("BILLING_INBOX_SMTP_URL", imap_settings.smtp_url)
    monkeypatch.setenv("BILLING_INBOX_FROM_ADDRESS", "billing@acme-billing.example")
    monkeypatch.setenv("BILLING_INBOX_MODEL_DIR", model_dir)

    def run(clock: Callable[[], datetime] = utc_now) -> RunSummary:
        return runner.run_once(Worker(imap_settings, classifier, clock))

    return Desk(imap_settings, imap_account, Mail(smtp_server), run)


@dataclass(frozen=True)
class Opened:
    """A case opened by email, the customer's original and our acknowledgement."""

    tracking: str
    original: EmailMessage
    ack: EmailMessage

    @property
    def chain(self) -> list[str]:
        return [message_id(self.original), message_id(self.ack)]


def open_by_email(desk: Desk, raw: bytes, customer: str) -> Opened:
    summary = desk.receive(raw)
    assert summary.outcomes == {"case_opened": 1}
    ack = desk.mail.one(customer)
    [case] = [c for c in list_cases(customer=customer) if c.subject == parsed(raw)["Subject"]]
    return Opened(case.tracking_number, parsed(raw), ack)


@pytest.fixture
def dispute_case(desk: Desk) -> Opened:
    """The CFO's duplicate-charge dispute (invoice 48213, 1,250.00 USD)."""
    return open_by_email(desk, customer_email(CASE_SUBJECT, CORRECTION_BODY, sender=CFO,
                                              name="Casey CFO"), CFO)


@pytest.fixture
def other_case(desk: Desk, dispute_case: Opened) -> Opened:
    """Another customer's case, so "the right case" has a wrong one to be confused with."""
    return open_by_email(desk, customer_email("Need a copy", COPY_BODY, sender=OPS), OPS)


def status_update(desk: Desk, case: Opened, *argv: str) -> EmailMessage:
    """Run a customer-visible CLI command and return the one email it sent."""
    cli_ok(*argv)
    return desk.mail.one(case.original["From"].addresses[0].addr_spec)


# --- the specialist works the case; the customer follows it in one thread ------------------


def test_specialist_updates_reach_the_customer_threaded_under_the_acknowledgement(
    desk, dispute_case
):
    tracking, chain = dispute_case.tracking, dispute_case.chain
    assert_threaded(dispute_case.ack, chain[:1], tracking)
    assert dispute_case.ack["Auto-Submitted"] == "auto-replied"
    # (command, what the customer reads, RFC 3834 Auto-Submitted: news is
    # "auto-generated", a specialist's own words carry none)
    steps = [
        (["cases", "assign", tracking, "maria"], None, None),
        (["cases", "status", tracking, "in_progress", "--note",
          "Checking the licence records."], "Checking the licence records.", "auto-generated"),
        (["cases", "note", tracking, "Called AP, PO 7781 pending"], None, None),
        (["cases", "reply", tracking, "We found the duplicate licence line."],
         "We found the duplicate licence line.", None),
        (["cases", "status", tracking, "awaiting_customer", "--note",
          "Please send the PO number."], "Please send the PO number.", "auto-generated"),
        (["cases", "resolve", tracking, "--note", "Duplicate charge credited."],
         "Duplicate charge credited.", "auto-generated"),
    ]

    for argv, customer_sees, auto_submitted in steps:
        cli_ok(*argv)
        if customer_sees is None:
            desk.mail.nothing_more()
            continue
        update = desk.mail.one(CFO)
        assert_threaded(update, chain, tracking)
        assert customer_sees in bodies(update)[0]
        assert f"Reply to this email to add to case {tracking}" in bodies(update)[0]
        assert update["Auto-Submitted"] == auto_submitted
        chain.append(message_id(update))

    detail = show(tracking)
    assert detail["status"] == "resolved"
    assert [m["message_id"] for m in detail["messages"]] == chain
    # Internal notes never go out.
    assert all("PO 7781" not in m.message.as_string() for m in desk.mail.server.messages)
    # Every change is an event with its actor, note and time; nothing was dropped.
    history = [(e["kind"], e["from"], e["to"], e["actor"], e["note"])
               for e in detail["history"]]
    assert history == [
        ("status", None, "new", "system", "opened by email"),
        ("assignment", None, "maria", "maria", ""),
        ("status", "new", "in_progress", "maria", "Checking the licence records."),
        ("note", None, None, "maria", "Called AP, PO 7781 pending"),
        ("reply", None, None, "maria", history[4][4]),
        ("status", "in_progress", "awaiting_customer", "maria", "Please send the PO number."),
        ("status", "awaiting_customer", "resolved", "maria", "Duplicate charge credited."),
    ]
    assert "We found the duplicate licence line." in history[4][4]
    assert all(event["created_at"] for event in detail["history"])


# --- customer replies find their case ------------------------------------------------------


def test_customer_reply_lands_on_its_case_without_quoted_history(desk, dispute_case, other_case):
    reply = reply_to(dispute_case.ack, "Our PO number is PO-7781.", sender=CFO)

    summary = desk.receive(reply)

    assert summary.outcomes == {"follow_up_added": 1}
    thread = show(dispute_case.tracking)["messages"]
    assert thread[-1]["direction"] == "in"
    assert thread[-1]["message_id"] == message_id(parsed(reply))
    assert thread[-1]["text"] == "Our PO number is PO-7781."
    assert len(show(other_case.tracking)["messages"]) == 2


@pytest.mark.parametrize("prefix", ["Re: ", "AW: ", "SV: ", "Fwd: ", "AW: WG: "])
def test_rewritten_subject_with_only_the_token_lands_on_the_case(
    desk, dispute_case, other_case, prefix
):
    # No In-Reply-To, no References: only the tracking token in the subject survives.
    follow_up = customer_email(f"{prefix}[{dispute_case.tracking}] {CASE_SUBJECT}",
                               "Attached is the signed purchase order PO-7781.", sender=CFO)

    summary = desk.receive(follow_up)

    assert summary.outcomes == {"follow_up_added": 1}
    thread = show(dispute_case.tracking)["messages"]
    assert thread[-1]["message_id"] == message_id(parsed(follow_up))
    assert thread[-1]["text"] == "Attached is the signed purchase order PO-7781."
    assert len(show(other_case.tracking)["messages"]) == 2


def test_token_in_the_body_only_lands_on_the_case(desk, dispute_case, other_case):
    follow_up = customer_email(
        "Purchase order", f"For case {dispute_case.tracking}: our PO is PO-7781.", sender=CFO)

    summary = desk.receive(follow_up)

    assert summary.outcomes == {"follow_up_added": 1}
    assert show(dispute_case.tracking)["messages"][-1]["message_id"] == message_id(
        parsed(follow_up))


def test_reply_to_awaiting_customer_case_moves_it_back_in_progress(desk, dispute_case):
    question = status_update(desk, dispute_case, "cases", "status", dispute_case.tracking,
                             "awaiting_customer", "--note", "Please send the PO number.")

    summary = desk.receive(reply_to(question, "The PO number is PO-7781.", sender=CFO))

    assert summary.outcomes == {"follow_up_added": 1}
    detail = show(dispute_case.tracking)
    assert detail["status"] == "in_progress"
    last = detail["history"][-1]
    assert (last["from"], last["to"], last["actor"]) == (
        "awaiting_customer", "in_progress", "customer")


def test_reply_to_resolved_case_within_reopen_days_reopens_it(desk, dispute_case):
    resolution = status_update(desk, dispute_case, "cases", "resolve", dispute_case.tracking,
                               "--note", "Duplicate charge credited.")

    summary = desk.receive(reply_to(resolution, "The charge is still on my statement.",
                                    sender=CFO))

    assert summary.outcomes == {"follow_up_added": 1}
    detail = show(dispute_case.tracking)
    assert detail["status"] == "in_progress"
    assert (detail["history"][-1]["from"], detail["history"][-1]["to"]) == (
        "resolved", "in_progress")


def test_reply_that_answers_and_asks_for_an_update_wakes_an_awaiting_case(
    desk, dispute_case
):
    question = status_update(desk, dispute_case, "cases", "status", dispute_case.tracking,
                             "awaiting_customer", "--note", "Please send the PO number.")

    summary = desk.receive(reply_to(question, "The PO number is PO-778. Any update?",
                                    sender=CFO))

    assert summary.outcomes == {"status_sent": 1}
    assert show(dispute_case.tracking)["status"] == "in_progress"
    plain, _ = bodies(desk.mail.one(CFO))
    assert "Status: in progress" in plain


def test_still_waiting_after_a_resolution_reopens_the_case(desk, dispute_case):
    resolution = status_update(desk, dispute_case, "cases", "resolve", dispute_case.tracking,
                               "--note", "Copy sent.")

    summary = desk.receive(reply_to(resolution, "Sorry, I'm still waiting - nothing "
                                    "arrived, not even in spam.", sender=CFO))

    assert summary.outcomes == {"status_sent": 1}
    detail = show(dispute_case.tracking)
    assert detail["status"] == "in_progress"
    assert (detail["history"][-1]["from"], detail["history"][-1]["to"]) == (
        "resolved", "in_progress")
    plain, _ = bodies(desk.mail.one(CFO))
    assert "Status: in progress" in plain


@pytest.mark.parametrize("days_later", [0, 15])
def test_a_thank_you_after_a_resolution_is_kept_and_leaves_the_case_resolved(
    desk, dispute_case, days_later
):
    resolution = status_update(desk, dispute_case, "cases", "resolve", dispute_case.tracking,
                               "--note", "Duplicate charge credited.")

    summary = desk.receive(
        reply_to(resolution, "Thanks, all good now!", sender=CFO),
        clock=lambda: utc_now() + timedelta(days=days_later))

    assert summary.outcomes == {"follow_up_added": 1}
    assert len(list_cases(customer=CFO)) == 1
    detail = show(dispute_case.tracking)
    assert detail["status"] == "resolved"
    assert detail["messages"][-1]["text"] == "Thanks, all good now!"
    desk.mail.nothing_more()


def test_a_complaint_after_reopen_days_opens_a_new_case_linked_to_the_resolved_one(
    desk, dispute_case
):
    # The resolution email said "reply and we will reopen the case"; weeks later the
    # complaint must reach someone, not sit on a resolved case nobody looks at.
    resolution = status_update(desk, dispute_case, "cases", "resolve", dispute_case.tracking,
                               "--note", "Duplicate charge credited.")
    # Resolved longer ago than reopen_days (moved back in time: the reply's
    # acknowledgement must be due for the sender, which runs on the real clock).
    long_ago = utc_now() - timedelta(days=desk.settings.reopen_days + 1)
    Case.update(resolved_at=long_ago).where(
        Case.tracking_number == dispute_case.tracking).execute()

    summary = desk.receive(
        reply_to(resolution, "The credit note shows 1,000.00, not 1,250.00. Please correct "
                 "the credit.", sender=CFO))

    assert summary.outcomes == {"case_opened": 1}
    [new] = [c for c in list_cases(customer=CFO) if c.tracking_number != dispute_case.tracking]
    assert show(new.tracking_number)["previous_case"] == dispute_case.tracking
    assert show(dispute_case.tracking)["status"] == "resolved"
    plain, _ = bodies(desk.mail.one(CFO))
    assert f"It follows your earlier case {dispute_case.tracking}, which is resolved." in plain


def test_mail_about_a_closed_case_opens_a_new_linked_case(desk, dispute_case):
    # A case closes only once its dispute is decided.
    status_update(desk, dispute_case, "disputes", "decide", dispute_case.tracking, "approved",
                  "--note", "Duplicate charge credited.")
    closing = status_update(desk, dispute_case, "cases", "status", dispute_case.tracking,
                            "closed", "--note", "Credit note issued.")
    thread_before = show(dispute_case.tracking)["messages"]
    # The closing email does not invite replies to the closed case.
    closing_plain, closing_html = bodies(closing)
    assert "Reply to this email to add to case" not in closing_plain + closing_html
    assert "we will open a new case" in closing_plain

    summary = desk.receive(reply_to(
        closing, "The duplicate licence charge appeared again on this month's invoice "
        "INV-2026-00533. Please correct it.", sender=CFO))

    assert summary.outcomes == {"case_opened": 1}
    [new] = [c for c in list_cases(customer=CFO) if c.tracking_number != dispute_case.tracking]
    detail = show(new.tracking_number)
    assert detail["previous_case"] == dispute_case.tracking
    assert detail["status"] == "new"
    assert f"Follows:   {dispute_case.tracking}" in cli_ok("cases", "show", new.tracking_number)
    old = show(dispute_case.tracking)
    assert old["status"] == "closed" and old["messages"] == thread_before
    ack = desk.mail.one(CFO)
    assert f"[{new.tracking_number}]" in ack["Subject"]
    assert f"[{dispute_case.tracking}]" not in ack["Subject"]
    plain, html = bodies(ack)
    assert f"It follows your earlier case {dispute_case.tracking}, which is closed." in plain
    assert dispute_case.tracking in html


# --- status requests -----------------------------------------------------------------------


def test_any_update_is_answered_in_the_thread_with_the_current_status(desk, dispute_case):
    update = status_update(desk, dispute_case, "cases", "status", dispute_case.tracking,
                           "in_progress", "--note", "Checking the licence records.")
    question = reply_to(update, "Hi, any update on this?", sender=CFO)

    summary = desk.receive(question)

    assert summary.outcomes == {"status_sent": 1}
    answer = desk.mail.one(CFO)
    chain = [*dispute_case.chain, message_id(update), message_id(parsed(question))]
    assert_threaded(answer, chain, dispute_case.tracking)
    assert answer["Auto-Submitted"] == "auto-replied"  # it answers the question
    plain, html = bodies(answer)
    assert "Status: in progress" in plain and "in progress" in html
    assert "Last change: status changed to in progress on " in plain
    # Asking is not new information: the case keeps its status.
    assert show(dispute_case.tracking)["status"] == "in_progress"


def test_status_request_without_tracking_number_lists_the_senders_open_cases(
    desk, dispute_case, other_case
):
    second = open_by_email(desk, customer_email("Need a copy", COPY_BODY, sender=CFO), CFO)
    third = open_by_email(desk, customer_email(
        "Pause billing", "We close for the winter season. Please pause billing on our "
        "account from 1 December until we reopen in March.", sender=CFO), CFO)
    status_update(desk, third, "cases", "status", third.tracking, "closed", "--note",
                  "Opened twice by mistake.")

    summary = desk.receive(customer_email(
        "Status of my requests", "Hi, any update on my billing requests? Thanks",
        sender=CFO))

    assert summary.outcomes == {"case_list_sent": 1}
    case_list = desk.mail.one(CFO)
    plain, html = bodies(case_list)
    for text in (plain, html):
        assert dispute_case.tracking in text and second.tracking in text
        assert third.tracking not in text and other_case.tracking not in text


@pytest.mark.parametrize("variant", ["token-in-body", "token-in-subject", "forwarded-thread"])
def test_status_request_from_another_address_reveals_nothing(desk, dispute_case, variant):
    tracking = dispute_case.tracking
    status_update(desk, dispute_case, "cases", "status", tracking, "in_progress")
    question = {
        "token-in-body": customer_email("Any update?", f"Hi, any update on {tracking}?",
                                        sender=STRANGER),
        "token-in-subject": customer_email(f"Status of {tracking}", "Any update?",
                                           sender=STRANGER),
        "forwarded-thread": reply_to(dispute_case.ack, "Any update on this?",
                                     sender=STRANGER),
    }[variant]

    summary = desk.receive(question)

    assert summary.outcomes == {"refused_foreign_sender": 1}
    neutral = desk.mail.one(STRANGER)
    visible = everything_visible(neutral)
    assert tracking not in visible
    assert "in progress" not in visible and "in_progress" not in visible
    assert CASE_SUBJECT not in visible and "48213" not in visible
    desk.mail.nothing_more()
    detail = show(tracking)
    assert detail["status"] == "in_progress"
    assert STRANGER not in {m["sender"] for m in detail["messages"]}
    security = [e for e in detail["history"] if e["kind"] == "security"]
    assert len(security) == 1 and STRANGER in security[0]["note"]
    # What they wrote is shown to the specialist (never to the customer).
    assert "Any update" in security[0]["note"]


def test_a_strangers_request_about_a_case_is_shown_to_the_specialist(desk, dispute_case):
    # A payment-redirection attempt is exactly what the billing team must see.
    tracking = dispute_case.tracking

    summary = desk.receive(reply_to(
        dispute_case.ack, "Please change the bank details for this to IBAN "
        "DE89370400440532013000 from now on.", sender=STRANGER))

    assert summary.outcomes == {"refused_foreign_sender": 1}
    [security] = [e for e in show(tracking)["history"] if e["kind"] == "security"]
    assert f"{STRANGER} wrote about this case and was told nothing" in security["note"]
    assert "IBAN DE89370400440532013000" in security["note"]
    assert "IBAN" in cli_ok("cases", "show", tracking)
    desk.mail.one(STRANGER)  # the neutral answer, which reveals nothing
    desk.mail.nothing_more()


def test_address_linked_to_the_same_account_may_ask_about_the_case(desk, dispute_case):
    tracking = dispute_case.tracking
    cli_ok("customers", "link", CFO, "WIDGETS-001")
    cli_ok("customers", "link", "ap@widgets.example", "WIDGETS-001")

    summary = desk.receive(customer_email(
        "Invoice 48213", f"Hi, any update on {tracking}?", sender="ap@widgets.example",
        name="Jo Payables"))

    assert summary.outcomes == {"status_sent": 1}
    answer = desk.mail.one("ap@widgets.example")
    plain, html = bodies(answer)
    assert tracking in plain and "received, waiting for a specialist" in plain
    # Greets the colleague who asked, not the case's owner.
    assert plain.startswith("Hello Jo Payables,") and "Hello Jo Payables," in html
    owner = show(tracking)["customer_name"]
    assert owner and owner not in plain
    assert not [e for e in show(tracking)["history"] if e["kind"] == "security"]


# --- dispute decisions ---------------------------------------------------------------------


@pytest.mark.parametrize(("decision", "credited", "stored"), [
    (["partially_approved", "--amount", "400"], "400.00 USD", "400.00"),
    (["approved"], "1,250.00 USD", "1250.00"),
], ids=["partial", "approved"])
def test_dispute_decision_reaches_the_customer_with_the_approved_amount(
    desk, dispute_case, decision, credited, stored
):
    tracking = dispute_case.tracking

    notice = status_update(desk, dispute_case, "disputes", "decide", tracking, *decision,
                           "--note", "Credit memo CM-88 issued.")

    assert_threaded(notice, dispute_case.chain, tracking)
    plain, html = bodies(notice)
    assert credited in plain and credited in html
    assert "Credit memo CM-88 issued." in plain
    [row] = json.loads(cli_ok("disputes", "list", "--json"))
    assert (row["tracking_number"], row["status"], row["approved_amount"]) == (
        tracking, decision[0], stored)
    assert show(tracking)["dispute"]["approved_amount"] == stored
