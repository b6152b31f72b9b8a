"""`billing-inbox disputes review`: a specialist starts investigating a disputed charge.

What the specialist and the customer notice: the status in `disputes list`, one email in
the customer's thread saying the charge is being investigated and what comes next, the
refusals with their exit codes, and no second email when it is marked twice.

Same set-up as test_cli.py (local Maildirs, the parametrised `database` fixture), so each
test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import email
import email.policy
import io
from email.message import EmailMessage

import pytest

from cli import ExitCode, main
from db.models import StatusEvent
from tests import test_cli
from tests.test_cli import (
    CFO,
    CORRECTION,
    Maildirs,
    assert_one_line_error,
    message_ids,
    run_cli,
    sent_emails,
)

# The CLI environment and its two cases (a CFO's charge dispute, an invoice copy request)
# are test_cli.py's fixtures, made visible here so both files test the same set-up.
classifier = test_cli.classifier
cli_env = test_cli.cli_env
cases = test_cli.cases

NOTE = "We are checking the seat count with our licensing team."


def new_emails(outbox_before: set[str], maildirs: Maildirs) -> list[EmailMessage]:
    """The emails delivered since `outbox_before` (a set of Message-IDs) was taken."""
    return [m for m in sent_emails(maildirs.outbox) if m["Message-ID"] not in outbox_before]


def sent_ids(maildirs: Maildirs) -> set[str]:
    return {m["Message-ID"] for m in sent_emails(maildirs.outbox)}


def dispute_status() -> str:
    """The status `disputes list --json` shows for the one dispute of the fixture."""
    [row] = run_cli("disputes", "list", "--json").json()
    return row["status"]


def show(tracking_number: str) -> dict:
    return run_cli("cases", "show", tracking_number, "--json").json()


# --- the review and its email --------------------------------------------------------------


def test_review_marks_the_dispute_under_review_in_disputes_list(cases):
    assert dispute_status() == "open"

    result = run_cli("disputes", "review", cases["dispute"], "--note", NOTE)

    assert result.code == ExitCode.OK, result.err
    assert result.err == ""
    assert f"{cases['dispute']} dispute under_review" in result.out
    assert "customer emailed" in result.out
    [row] = run_cli("disputes", "list", "--json").json()
    assert (row["tracking_number"], row["status"], row["approved_amount"]) == (
        cases["dispute"], "under_review", None)
    listing = run_cli("disputes", "list").out
    [line] = [line for line in listing.splitlines() if cases["dispute"] in line]
    assert "under_review" in line


def test_review_emails_the_customer_in_the_case_thread(cases, cli_env):
    before = sent_ids(cli_env)
    thread_before = [m["message_id"] for m in show(cases["dispute"])["messages"]]

    run_cli("disputes", "review", cases["dispute"], "--note", NOTE)

    [notice] = new_emails(before, cli_env)
    assert notice["To"].addresses[0].addr_spec == CFO
    assert f"[{cases['dispute']}]" in notice["Subject"]
    assert notice["Subject"].startswith("Re: ")
    # Threaded under the latest email of the case (our acknowledgement), whole chain cited.
    original = email.message_from_bytes(CORRECTION, policy=email.policy.default)
    assert message_ids(notice["In-Reply-To"]) == [thread_before[-1]]
    assert message_ids(notice["References"]) == thread_before
    assert message_ids(original["Message-ID"])[0] in message_ids(notice["References"])
    # And recorded in the thread that `cases show` displays, as sent.
    last = show(cases["dispute"])["messages"][-1]
    assert [last["message_id"]] == message_ids(notice["Message-ID"])
    assert (last["direction"], last["kind"], last["delivery_state"]) == (
        "out", "dispute_review", "sent")


def test_review_email_says_the_charge_is_investigated_and_what_happens_next(cases, cli_env):
    before = sent_ids(cli_env)

    run_cli("disputes", "review", cases["dispute"], "--note", NOTE)

    [notice] = new_emails(before, cli_env)
    text = notice.get_body(("plain",)).get_content()
    html = notice.get_body(("html",)).get_content()
    for body in (text, html):
        assert "investigating the disputed charge" in body
        assert cases["dispute"] in body
        assert "invoice 48213" in body and "1,250.00 USD" in body
        assert "under review" in body
        assert NOTE in body
        assert "You will receive our decision by email in this thread" in body
        assert "reply to this email and attach them" in body
    assert "Hello Casey CFO" in text


def test_the_note_is_escaped_in_the_html_part(cases, cli_env):
    before = sent_ids(cli_env)

    run_cli("disputes", "review", cases["dispute"], "--note", "Seats <b>12</b> & 13")

    [notice] = new_emails(before, cli_env)
    assert "Seats <b>12</b> & 13" in notice.get_body(("plain",)).get_content()
    html = notice.get_body(("html",)).get_content()
    assert "Seats &lt;b&gt;12&lt;/b&gt; &amp; 13" in html
    assert "<b>12</b>" not in html


def test_review_is_in_the_history_and_a_new_case_moves_to_in_progress(cases):
    result = run_cli("disputes", "review", cases["dispute"], "--note", NOTE)

    assert "case now in_progress" in result.out
    detail = show(cases["dispute"])
    assert detail["status"] == "in_progress"
    changes = [(e["kind"], e["from"], e["to"], e["actor"], e["note"])
               for e in detail["history"]]
    assert changes[-2:] == [
        ("status", "new", "in_progress", "maria", "dispute under review"),
        ("dispute", "open", "under_review", "maria", NOTE),
    ]


@pytest.mark.parametrize("status", ["in_progress", "awaiting_customer"])
def test_a_case_already_being_worked_keeps_its_status(cases, cli_env, status):
    assert run_cli("cases", "status", cases["dispute"], status).code == ExitCode.OK
    before = sent_ids(cli_env)

    result = run_cli("disputes", "review", cases["dispute"])

    assert result.code == ExitCode.OK, result.err
    assert "case now" not in result.out
    detail = show(cases["dispute"])
    assert detail["status"] == status
    assert (detail["history"][-1]["kind"], detail["history"][-1]["to"]) == (
        "dispute", "under_review")
    assert dispute_status() == "under_review"
    assert len(new_emails(before, cli_env)) == 1


# --- repeats and refusals ------------------------------------------------------------------


def test_reviewing_twice_changes_nothing_and_sends_no_second_email(cases, cli_env):
    first = run_cli("disputes", "review", cases["dispute"], "--note", NOTE)
    after_first = sent_ids(cli_env)
    events = StatusEvent.select().count()

    again = run_cli("disputes", "review", cases["dispute"], "--note", "Still on it.")

    assert first.code == again.code == ExitCode.OK
    assert again.err == ""
    assert "already under_review" in again.out and "no email sent" in again.out
    assert f"cases reply {cases['dispute']}" in again.out  # where its --note can go instead
    assert sent_ids(cli_env) == after_first
    assert StatusEvent.select().count() == events
    assert run_cli("outbox", "list", "--json").json() == []
    assert dispute_status() == "under_review"


def test_a_decided_dispute_cannot_go_back_under_review(cases, cli_env):
    decided = run_cli("disputes", "decide", cases["dispute"], "rejected", "--note", "No.")
    assert decided.code == ExitCode.OK, decided.err
    before = sent_ids(cli_env)
    events = StatusEvent.select().count()

    result = run_cli("disputes", "review", cases["dispute"])

    assert_one_line_error(result, ExitCode.NOT_ALLOWED)
    assert "already decided" in result.err and "--revise" in result.err
    assert dispute_status() == "rejected"
    assert sent_ids(cli_env) == before
    assert StatusEvent.select().count() == events


def test_review_then_decide_is_a_first_decision_not_a_revision(cases, cli_env):
    run_cli("disputes", "review", cases["dispute"])
    before = sent_ids(cli_env)

    decided = run_cli("disputes", "decide", cases["dispute"], "approved", "--note",
                      "Duplicate confirmed; credit memo CM-91 issued.")

    assert decided.code == ExitCode.OK, decided.err
    assert dispute_status() == "approved"
    [notice] = new_emails(before, cli_env)
    text = notice.get_body(("plain",)).get_content()
    assert "Decision: approved in full" in text and "revised" not in text


def test_a_case_without_dispute_is_refused_as_not_found(cases, cli_env):
    before = sent_ids(cli_env)

    result = run_cli("disputes", "review", cases["copy"])

    assert_one_line_error(result, ExitCode.NOT_FOUND)
    assert f"{cases['copy']} has no dispute" in result.err
    assert show(cases["copy"])["status"] == "new"
    assert sent_ids(cli_env) == before


def test_unknown_case_exits_3_with_one_line(cli_env):
    result = run_cli("disputes", "review", "BIL-999999", "--note", "x")

    assert_one_line_error(result, ExitCode.NOT_FOUND)
    assert "BIL-999999" in result.err and "not found" in result.err


def test_the_dispute_of_a_resolved_case_is_refused(cases, cli_env):
    # Its email would promise a decision in a thread the customer was told is finished.
    assert run_cli("cases", "resolve", cases["dispute"], "--note", "Credited.").code == 0
    before = sent_ids(cli_env)

    result = run_cli("disputes", "review", cases["dispute"])

    assert_one_line_error(result, ExitCode.NOT_ALLOWED)
    assert f"{cases['dispute']} is resolved" in result.err and "cases reopen" in result.err
    assert dispute_status() == "open"
    assert show(cases["dispute"])["status"] == "resolved"
    assert sent_ids(cli_env) == before


def test_a_dispute_under_review_keeps_its_case_from_closing(cases, cli_env):
    # Under review means a decision is owed to the customer: the case cannot close first,
    # and once decided and closed, nothing about it can be emailed again.
    assert run_cli("disputes", "review", cases["dispute"]).code == ExitCode.OK

    refused = run_cli("cases", "status", cases["dispute"], "closed", "--note", "Done.")

    assert_one_line_error(refused, ExitCode.NOT_ALLOWED)
    assert "undecided dispute (under_review)" in refused.err
    assert run_cli("disputes", "decide", cases["dispute"], "approved", "--note",
                   "Credited.").code == ExitCode.OK
    assert run_cli("cases", "status", cases["dispute"], "closed", "--note", "Done.").code == 0
    before = sent_ids(cli_env)
    events = StatusEvent.select().count()

    reviewed = run_cli("disputes", "review", cases["dispute"])
    revised = run_cli("disputes", "decide", cases["dispute"], "rejected", "--note", "No.",
                      "--revise")

    assert_one_line_error(reviewed, ExitCode.NOT_ALLOWED)
    assert_one_line_error(revised, ExitCode.NOT_ALLOWED)
    assert "closed case cannot change" in revised.err
    assert dispute_status() == "approved"
    assert sent_ids(cli_env) == before
    assert StatusEvent.select().count() == events


def test_review_resolve_then_decide_tells_the_customer_the_decision(cases, cli_env):
    # A resolved case is not closed: its dispute may still be decided.
    run_cli("disputes", "review", cases["dispute"])
    assert run_cli("cases", "resolve", cases["dispute"], "--note", "Credited.").code == 0
    before = sent_ids(cli_env)

    decided = run_cli("disputes", "decide", cases["dispute"], "partially_approved",
                      "--amount", "1,000.00", "--note", "Two seats were in use.")

    assert decided.code == ExitCode.OK, decided.err
    assert dispute_status() == "partially_approved"
    assert show(cases["dispute"])["status"] == "resolved"
    [notice] = new_emails(before, cli_env)
    text = notice.get_body(("plain",)).get_content()
    assert "Decision: partially approved" in text
    assert "1,000.00 USD" in text


# --- amend: correcting the record ------------------------------------------------------------


def dispute_row() -> dict:
    [row] = run_cli("disputes", "list", "--json").json()
    return row


def test_amend_corrects_the_amount_quietly_and_the_history_keeps_the_old_one(cases, cli_env):
    before = sent_ids(cli_env)
    assert (dispute_row()["disputed_amount"], dispute_row()["currency"]) == ("1250.00", "USD")

    amended = run_cli("disputes", "amend", cases["dispute"], "--amount", "99.00",
                      "--currency", "eur", "--invoice", "48213-B")

    assert amended.code == ExitCode.OK, amended.err
    assert "disputed_amount 1250.00 -> 99.00" in amended.out
    assert "not emailed" in amended.out
    row = dispute_row()
    assert (row["disputed_amount"], row["currency"], row["invoice_number"]) == (
        "99.00", "EUR", "48213-B")
    assert sent_ids(cli_env) == before  # internal: no email to the customer
    last = show(cases["dispute"])["history"][-1]
    assert last["kind"] == "dispute details"
    assert "disputed_amount: 1250.00 -> 99.00" in last["note"]
    assert "invoice_number: 48213 -> 48213-B" in last["note"]


def test_a_full_approval_grants_the_amended_amount(cases, cli_env):
    run_cli("disputes", "amend", cases["dispute"], "--amount", "99.00")
    before = sent_ids(cli_env)

    decided = run_cli("disputes", "decide", cases["dispute"], "approved", "--note", "Yes.")

    assert decided.code == ExitCode.OK, decided.err
    assert dispute_row()["approved_amount"] == "99.00"
    [notice] = new_emails(before, cli_env)
    assert "99.00 USD" in notice.get_body(("plain",)).get_content()


def test_an_amended_dispute_keeps_its_case_a_charge_correction(cases, cli_env):
    run_cli("disputes", "amend", cases["dispute"], "--amount", "99.00")

    result = run_cli("cases", "process", cases["dispute"], "general")

    assert_one_line_error(result, ExitCode.NOT_ALLOWED)
    assert "was amended" in result.err
    assert dispute_row()["disputed_amount"] == "99.00"


def test_amending_a_decided_dispute_is_refused(cases, cli_env):
    run_cli("disputes", "decide", cases["dispute"], "rejected", "--note", "No.")

    result = run_cli("disputes", "amend", cases["dispute"], "--amount", "99.00")

    assert_one_line_error(result, ExitCode.NOT_ALLOWED)
    assert "already decided" in result.err and "--revise" in result.err
    assert dispute_row()["disputed_amount"] == "1250.00"


@pytest.mark.parametrize("argv", [[], ["--amount", "1.000,00"], ["--currency", "euro"],
                                  ["--invoice", " "]],
                         ids=["nothing", "ambiguous-amount", "currency", "blank-invoice"])
def test_amend_needs_something_it_can_read(cases, cli_env, argv):
    result = run_cli("disputes", "amend", cases["dispute"], *argv)

    assert_one_line_error(result, ExitCode.USAGE)
    assert dispute_row()["disputed_amount"] == "1250.00"


def test_amending_to_what_it_already_says_changes_nothing(cases, cli_env):
    events = StatusEvent.select().count()

    result = run_cli("disputes", "amend", cases["dispute"], "--amount", "1,250.00")

    assert result.code == ExitCode.OK and "nothing changed" in result.out
    assert StatusEvent.select().count() == events


# --- help ----------------------------------------------------------------------------------


def test_review_help_explains_it_with_an_example(capsys):
    stdout, stderr = io.StringIO(), io.StringIO()

    code = main(["disputes", "review", "--help"], stdout, stderr)

    text = stdout.getvalue() + capsys.readouterr().out
    assert code == ExitCode.OK
    assert "--note" in text
    assert "billing-inbox disputes review BIL-000123" in text.split("Example:", 1)[1]
