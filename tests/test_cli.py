"""The command line in process, through `main(argv, stdout, stderr)`: every case command,
its `--json` shape, its exit codes and its one-line errors.

Mail goes through local Maildirs (no Dovecot, no SMTP server) so these stay fast; the
database is the parametrised `database` fixture, so each test runs on SQLite and
PostgreSQL. End-to-end threading against real servers is in test_lifecycle.py.
"""

from __future__ import annotations

import email
import email.policy
import io
import json
import mailbox
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from cli import ExitCode, main, visible_controls
from db.cases import open_case, record_quarantined
from db.lookup import get_case, list_cases, sender_owns
from db.models import Message, StatusEvent
from db.records import InboundRecord, NewCaseRequest
from db.schema import schema_version
from inbox_worker import runner
from inbox_worker.pipeline import Worker
from inbox_worker.settings import SETTINGS, Settings
from inbox_worker.training import load_classifier
from tests.mailfactory import customer_email
from tests.servers import free_port

CFO = "cfo@widgets.example"
OPS = "ops@clinic.example"

CORRECTION = customer_email(
    "Wrong charge", "You billed us twice for the same licence on Invoice #48213. "
    "Please refund the duplicate charge of $1,250.00.", sender=CFO, name="Casey CFO")
COPY_REQUEST = customer_email(
    "Need a copy", "Could you resend the PDF of last month's invoice? Our accountant "
    "never got it.", sender=OPS, name="Olu Ops")

CASE_FIELDS = {"tracking_number", "process", "status", "customer_email", "subject",
               "created_at", "updated_at", "assignee", "dispute"}
DISPUTE_FIELDS = {"invoice_number", "disputed_amount", "currency", "status",
                  "approved_amount"}


# --- helpers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == ExitCode.OK, self.err
        return json.loads(self.out)


def run_cli(*argv: str, actor: str = "maria") -> CliResult:
    """`billing-inbox --as maria ARGV...` in process, with its own output streams."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(["--as", actor, *argv], stdout, stderr)
    return CliResult(code, stdout.getvalue(), stderr.getvalue())


def assert_one_line_error(result: CliResult, code: ExitCode) -> None:
    """A failure is exactly one `billing-inbox: ...` line on stderr, nothing on stdout."""
    assert result.code == code, (result.code, result.err)
    assert result.out == ""
    assert "Traceback" not in result.err
    assert result.err.endswith("\n") and result.err.count("\n") == 1, result.err
    assert result.err.startswith("billing-inbox: ")


def message_ids(value: object) -> list[str]:
    """The <ids> in a Message-ID, In-Reply-To or References header, however it was folded."""
    return re.findall(r"<[^<>\s]+>", str(value or ""))


def sent_emails(outbox: Path) -> list[EmailMessage]:
    """Every email the Maildir transport delivered."""
    box = mailbox.Maildir(outbox, factory=None, create=True)
    return [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
            for key in box.iterkeys()]


def is_utc_iso(value: str) -> bool:
    return datetime.fromisoformat(value).utcoffset() == timedelta(0)


@dataclass(frozen=True)
class Maildirs:
    """A CLI environment on local Maildirs and the test database."""

    settings: Settings
    inbox: Path
    outbox: Path

    def deliver(self, *messages: bytes) -> None:
        box = mailbox.Maildir(self.inbox, factory=None, create=True)
        for data in messages:
            box.add(data)


@pytest.fixture(scope="session")
def classifier(model_dir: str):
    """Loaded once: building a Worker per test should not reload the model each time."""
    return load_classifier(Settings(model_dir=model_dir))


@pytest.fixture
def cli_env(monkeypatch, tmp_path, database, model_dir, make_settings) -> Maildirs:
    """The CLI's BILLING_INBOX_* environment, pointing where the worker settings point."""
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    for name in ("CONFIG", "ACTOR"):
        monkeypatch.delenv(f"BILLING_INBOX_{name}", raising=False)
    for name in SETTINGS:
        monkeypatch.delenv(f"BILLING_INBOX_{name.upper()}", raising=False)
    monkeypatch.setenv("BILLING_INBOX_DATABASE_URL", database)
    monkeypatch.setenv("BILLING_INBOX_MAILBOX_URL", f"maildir:{inbox}")
    monkeypatch.setenv("BILLING_INBOX_SMTP_URL", f"maildir:{outbox}")
    monkeypatch.setenv("BILLING_INBOX_FROM_ADDRESS", "billing@acme-billing.example")
    monkeypatch.setenv("BILLING_INBOX_MODEL_DIR", model_dir)
    settings = make_settings(database_url=database, mailbox_url=f"maildir:{inbox}",
                             smtp_url=f"maildir:{outbox}")
    return Maildirs(settings, inbox, outbox)


@pytest.fixture
def cases(cli_env: Maildirs, classifier) -> dict[str, str]:
    """Two cases opened by email: a charge dispute (CFO) and an invoice copy (OPS)."""
    cli_env.deliver(CORRECTION, COPY_REQUEST)
    summary = runner.run_once(Worker(cli_env.settings, classifier))
    assert summary.outcomes == {"case_opened": 2}
    by_customer = {case.customer_email: case.tracking_number for case in list_cases()}
    return {"dispute": by_customer[CFO], "copy": by_customer[OPS]}


# --- help ----------------------------------------------------------------------------------

COMMANDS = [
    [], ["run"], ["demo"], ["train"], ["classify"], ["evaluate"],
    ["cases", "list"], ["cases", "show"], ["cases", "assign"], ["cases", "status"],
    ["cases", "note"], ["cases", "reply"], ["cases", "resolve"], ["cases", "reopen"],
    ["cases", "process"], ["cases", "attachments"],
    ["disputes", "list"], ["disputes", "amend"], ["disputes", "decide"],
    ["outbox", "list"], ["outbox", "retry"],
    ["quarantine", "list"], ["quarantine", "release"],
    ["customers", "link"], ["customers", "list"], ["customers", "unlink"],
    ["config", "show"], ["db", "init"],
]
GROUPS = [["cases"], ["disputes"], ["outbox"], ["quarantine"], ["customers"], ["config"],
          ["db"]]


@pytest.mark.parametrize("command", COMMANDS + GROUPS, ids=lambda c: " ".join(c) or "top")
def test_every_command_help_explains_it_with_an_example(command, capsys):
    stdout, stderr = io.StringIO(), io.StringIO()

    code = main([*command, "--help"], stdout, stderr)

    # Where help is printed is checked by test_help_and_usage_go_to_the_given_streams;
    # here only what it says, wherever argparse wrote it.
    captured = capsys.readouterr()
    text = stdout.getvalue() + captured.out
    assert code == ExitCode.OK
    assert "usage: billing-inbox" in text
    assert "Example:" in text
    example = text.split("Example:", 1)[1]
    assert "billing-inbox" in example


def test_a_command_group_without_subcommand_is_a_usage_error_that_lists_them():
    stdout, stderr = io.StringIO(), io.StringIO()

    code = main(["cases"], stdout, stderr)

    assert code == ExitCode.USAGE
    assert stdout.getvalue() == ""
    assert "list" in stderr.getvalue() and "show" in stderr.getvalue()


def test_help_and_usage_go_to_the_given_streams(capsys):
    help_out, help_err = io.StringIO(), io.StringIO()
    usage_out, usage_err = io.StringIO(), io.StringIO()

    help_code = main(["cases", "show", "--help"], help_out, help_err)
    usage_code = main(["cases", "show"], usage_out, usage_err)

    leaked = capsys.readouterr()
    assert (help_code, usage_code) == (ExitCode.OK, ExitCode.USAGE)
    assert "Example:" in help_out.getvalue()
    assert "required" in usage_err.getvalue() and usage_out.getvalue() == ""
    assert leaked.out == "" and leaked.err == ""


# --- exit codes and one-line errors --------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["cases", "show", "BIL-999999"],
    ["cases", "show", "BIL-999999", "--json"],
    ["cases", "assign", "BIL-999999", "maria"],
    ["cases", "status", "BIL-999999", "in_progress"],
    ["cases", "note", "BIL-999999", "internal"],
    ["cases", "reply", "BIL-999999", "hello"],
    ["cases", "resolve", "BIL-999999", "--note", "done"],
    ["cases", "reopen", "BIL-999999"],
    ["disputes", "decide", "BIL-999999", "approved", "--note", "ok"],
], ids=lambda argv: " ".join(argv[:2]))
def test_unknown_case_exits_3_with_one_line(cli_env, argv):
    result = run_cli(*argv)

    assert_one_line_error(result, ExitCode.NOT_FOUND)
    assert "BIL-999999" in result.err and "not found" in result.err


def test_closed_case_cannot_go_back_in_progress(cases):
    tracking = cases["copy"]
    assert run_cli("cases", "status", tracking, "closed", "--note", "Sent.").code == 0
    events_before = StatusEvent.select().count()

    via_status = run_cli("cases", "status", tracking, "in_progress")
    via_reopen = run_cli("cases", "reopen", tracking)

    assert_one_line_error(via_status, ExitCode.NOT_ALLOWED)
    assert_one_line_error(via_reopen, ExitCode.NOT_ALLOWED)
    assert "closed" in via_status.err and "in_progress" in via_status.err
    assert get_case(tracking).status == "closed"
    assert StatusEvent.select().count() == events_before


def test_bad_status_name_is_a_usage_error_that_lists_the_statuses(cases):
    result = run_cli("cases", "status", cases["copy"], "done")

    assert_one_line_error(result, ExitCode.USAGE)
    for status in ("new", "in_progress", "awaiting_customer", "resolved", "closed"):
        assert status in result.err
    assert get_case(cases["copy"]).status == "new"


def test_bad_status_filter_is_a_usage_error_not_an_empty_list(cases):
    # A typo such as in-progress must not look like "no cases match".
    result = run_cli("cases", "list", "--status", "in-progress", "--json")

    assert_one_line_error(result, ExitCode.USAGE)


@pytest.mark.parametrize("argv", [
    ["cases", "show"],
    ["cases", "resolve", "BIL-000001"],
    ["cases", "frobnicate"],
    ["disputes", "decide", "BIL-000001", "maybe", "--note", "x"],
    ["cases", "list", "--colour"],
    ["quarantine", "release", "first"],
], ids=lambda argv: " ".join(argv))
def test_argparse_usage_error_exits_2_with_one_error_line(cli_env, argv, capsys):
    result = run_cli(*argv)

    # Which stream argparse writes to is test_help_and_usage_go_to_the_given_streams's
    # business; here, what it says.
    leaked = capsys.readouterr()
    err = result.err + leaked.err
    assert result.code == ExitCode.USAGE
    assert result.out == "" and leaked.out == "" and "Traceback" not in err
    # argparse shows the usage; apart from it, the error itself is one line.
    lines = [line for line in err.splitlines()
             if line.strip() and not line.startswith(("usage:", " "))]
    assert len(lines) == 1 and "error:" in lines[0], err


def test_unusable_setting_is_one_line_error_1(cli_env, monkeypatch):
    monkeypatch.setenv("BILLING_INBOX_DATABASE_URL", "mysql://db.example/cases")

    result = run_cli("cases", "list")

    assert_one_line_error(result, ExitCode.ERROR)
    assert "BILLING_INBOX_DATABASE_URL" in result.err


def test_amount_that_is_not_a_number_is_a_usage_error(cases):
    result = run_cli("disputes", "decide", cases["dispute"], "partially_approved",
                     "--amount", "forty", "--note", "Credit memo CM-88.")

    assert_one_line_error(result, ExitCode.USAGE)
    assert run_cli("disputes", "list", "--json").json()[0]["status"] == "open"


@pytest.mark.parametrize("argv", [
    ["partially_approved", "--note", "no amount"],
    ["partially_approved", "--amount", "1250.00", "--note", "all of it"],
    ["rejected", "--amount", "10", "--note", "contradiction"],
], ids=["partial-without-amount", "partial-of-everything", "rejected-with-amount"])
def test_contradictory_dispute_decision_is_refused_and_changes_nothing(cases, cli_env, argv):
    sent_before = len(sent_emails(cli_env.outbox))

    result = run_cli("disputes", "decide", cases["dispute"], *argv)

    assert result.code != ExitCode.OK
    assert_one_line_error(result, ExitCode(result.code))
    assert run_cli("disputes", "list", "--json").json()[0]["status"] == "open"
    assert len(sent_emails(cli_env.outbox)) == sent_before


def test_a_decided_dispute_changes_only_when_revised_and_the_customer_is_told(cases, cli_env):
    first = run_cli("disputes", "decide", cases["dispute"], "partially_approved",
                    "--amount", "500", "--note", "Half the seats were in use.")
    sent_after_first = len(sent_emails(cli_env.outbox))

    again = run_cli("disputes", "decide", cases["dispute"], "rejected", "--note", "No.")

    assert first.code == ExitCode.OK
    assert_one_line_error(again, ExitCode.NOT_ALLOWED)
    assert "--revise" in again.err
    assert run_cli("disputes", "list", "--json").json()[0]["status"] == "partially_approved"
    assert len(sent_emails(cli_env.outbox)) == sent_after_first

    revised = run_cli("disputes", "decide", cases["dispute"], "approved", "--note",
                      "All seats were unused after all.", "--revise")

    assert revised.code == ExitCode.OK
    assert run_cli("disputes", "list", "--json").json()[0]["status"] == "approved"
    texts = [message.get_body(preferencelist=("plain",)).get_content()
             for message in sent_emails(cli_env.outbox)]
    [text] = [text for text in texts if "Decision: approved in full" in text]
    assert "revised our decision" in text and "(partially approved)" in text
    [first_text] = [text for text in texts if "Decision: partially approved" in text]
    assert "revised" not in first_text


def test_deciding_a_case_without_dispute_is_not_found(cases):
    result = run_cli("disputes", "decide", cases["copy"], "approved", "--amount", "5",
                     "--note", "x")

    assert_one_line_error(result, ExitCode.NOT_FOUND)


# --- cases list ----------------------------------------------------------------------------


def test_cases_list_json_has_the_documented_shape(cases):
    rows = run_cli("cases", "list", "--json").json()

    assert isinstance(rows, list) and len(rows) == 2
    by_number = {row["tracking_number"]: row for row in rows}
    for row in rows:
        assert set(row) >= CASE_FIELDS
        assert row["status"] == "new" and row["assignee"] is None
        assert is_utc_iso(row["created_at"]) and is_utc_iso(row["updated_at"])
    dispute_case, copy_case = by_number[cases["dispute"]], by_number[cases["copy"]]
    assert (dispute_case["process"], dispute_case["customer_email"],
            dispute_case["subject"]) == ("charge_correction", CFO, "Wrong charge")
    assert copy_case["process"] == "invoice_copy" and copy_case["dispute"] is None
    dispute = dispute_case["dispute"]
    assert set(dispute) >= DISPUTE_FIELDS
    assert dispute == {**dispute, "invoice_number": "48213", "disputed_amount": "1250.00",
                       "currency": "USD", "status": "open", "approved_amount": None}


def test_cases_list_filters_by_status_process_assignee_and_customer(cases):
    run_cli("cases", "assign", cases["copy"], "maria")
    run_cli("cases", "status", cases["copy"], "in_progress")

    def listed(*filters: str) -> list[str]:
        return [row["tracking_number"] for row in
                run_cli("cases", "list", *filters, "--json").json()]

    assert listed("--status", "in_progress") == [cases["copy"]]
    assert listed("--status", "new") == [cases["dispute"]]
    assert listed("--process", "charge_correction") == [cases["dispute"]]
    assert listed("--assignee", "maria") == [cases["copy"]]
    assert listed("--customer", CFO.upper()) == [cases["dispute"]]
    assert listed("--status", "resolved") == []
    assert listed("--status", "new", "--customer", OPS) == []


def test_cases_list_text_shows_one_row_per_case(cases):
    result = run_cli("cases", "list")

    assert result.code == ExitCode.OK
    assert cases["dispute"] in result.out and cases["copy"] in result.out
    assert run_cli("cases", "list", "--status", "closed").out.strip() == "no cases match"


# --- cases show ----------------------------------------------------------------------------


def test_cases_show_json_has_case_dispute_thread_and_history(cases):
    detail = run_cli("cases", "show", cases["dispute"].lower(), "--json").json()

    assert set(detail) >= CASE_FIELDS
    assert detail["tracking_number"] == cases["dispute"]
    assert detail["previous_case"] is None
    assert detail["dispute"]["disputed_amount"] == "1250.00"
    original = email.message_from_bytes(CORRECTION, policy=email.policy.default)
    inbound, acknowledgement = detail["messages"]
    assert (inbound["direction"], inbound["message_id"]) == ("in", original["Message-ID"])
    assert "billed us twice" in inbound["text"] and inbound["sender"] == CFO
    assert acknowledgement["direction"] == "out"
    assert acknowledgement["kind"] == "acknowledgement"
    assert acknowledgement["delivery_state"] == "sent"
    assert acknowledgement["in_reply_to"] == original["Message-ID"]
    assert cases["dispute"] in acknowledgement["subject"]
    [opened] = detail["history"]
    assert (opened["kind"], opened["from"], opened["to"]) == ("status", None, "new")
    assert is_utc_iso(opened["created_at"])


def test_cases_show_text_names_the_case_its_thread_and_history(cases):
    result = run_cli("cases", "show", cases["dispute"])

    assert result.code == ExitCode.OK
    assert cases["dispute"] in result.out
    assert "Thread:" in result.out and "History:" in result.out
    assert "48213" in result.out


def test_cases_show_prints_the_whole_text_of_long_emails_and_notes(cli_env, classifier):
    # A dispute listing 14 invoice lines used to stop at line 9 of them, without a mark.
    invoice_lines = [f"{n:2}. Seat licence {n}, March: $12.50" for n in range(1, 15)]
    body = ("Hello,\n\nInvoice #48213 bills us for these lines, and 9 to 14 are not ours:\n"
            + "\n".join(invoice_lines)
            + "\n\nIMPORTANT: please do not debit our card until this is fixed")
    cli_env.deliver(customer_email("Wrong lines on invoice 48213", body, sender=CFO))
    runner.run_once(Worker(cli_env.settings, classifier))
    [case] = list_cases()
    steps = "\n".join(f"Step {n} of the fix." for n in range(1, 21))
    assert run_cli("cases", "reply", case.tracking_number, steps).code == ExitCode.OK

    shown = run_cli("cases", "show", case.tracking_number)

    assert shown.code == ExitCode.OK, shown.err
    assert "IMPORTANT: please do not debit our card until this is fixed" in shown.out
    assert all(line in shown.out for line in invoice_lines)
    # Our own emails too (the acknowledgement ends after its twelfth line), and the reply
    # in the history as well as in the thread.
    detail = run_cli("cases", "show", case.tracking_number, "--json").json()
    for message in detail["messages"]:
        assert message["text"].strip().splitlines()[-1].strip() in shown.out
    assert shown.out.count("Step 20 of the fix.") == 2


# --- control characters from customer mail -------------------------------------------------

# Every control character a terminal might obey: C0 but newline and tab, DEL, C1, and
# the bidi controls that reorder a line.
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE_NAME = "Eve \x1b[31mRED\x1b[0m"
HOSTILE_SUBJECT = "Refund \x1b]0;pwned-title\x07 please"
HOSTILE_TEXT = ("Hello\x1b[2J\x1b[H there.\n"
                "See \x1b]8;;https://evil.example/\x1b\\our portal\x1b]8;;\x1b\\ now.\n"
                "A bell\x07, a DEL\x7f and an 8-bit CSI\x9b31m.\n"
                "Pay to account 1234\u202e5678\u202c please.")


@pytest.fixture
def hostile_case(cli_env: Maildirs) -> str:
    """A case whose customer name, subject and text would drive a terminal.

    Stored directly: the parser now drops controls from names and subjects, but cases
    stored before it did keep theirs, and a body keeps them always.
    """
    now = datetime.now(UTC)
    inbound = InboundRecord(message_id="<hostile-1@evil.example>", sender="eve@evil.example",
                            sender_name=HOSTILE_NAME, subject=HOSTILE_SUBJECT,
                            text=HOSTILE_TEXT, received_at=now, source_key="maildir:cur/3")
    request = NewCaseRequest(inbound, process="general", tracking_prefix="BIL")
    return open_case(request, None, now).tracking_number


@pytest.mark.parametrize(("text", "shown"), [
    ("Eve \x1b[31mRED\x1b[0m", "Eve ^[[31mRED^[[0m"),
    ("title\x1b]0;pwned\x07", "title^[]0;pwned^G"),
    ("nul\x00 backspace\x08 del\x7f", "nul^@ backspace^H del^?"),
    ("csi\x9b2J nel\x85", "csiM-^[2J nelM-^E"),
    ("lone\rreturn", "lone^Mreturn"),
    ("crlf\r\nline", "crlf\nline"),
    ("two\nlines\tand a tab", "two\nlines\tand a tab"),
    ("naïve 1.250,00 € 日本 ^[", "naïve 1.250,00 € 日本 ^["),
    ("account 1234\u202e5678\u202c, \u2067isolate\u2069", "account 1234<U+202E>5678<U+202C>, "
     "<U+2067>isolate<U+2069>"),
], ids=["csi", "osc-bel", "nul-bs-del", "c1", "cr", "crlf", "newline-tab", "printable",
        "bidi"])
def test_visible_controls_shows_control_characters_in_cat_v_notation(text, shown):
    assert visible_controls(text) == shown


def test_cases_list_and_show_print_control_characters_visibly_not_raw(hostile_case):
    listed = run_cli("cases", "list")
    shown = run_cli("cases", "show", hostile_case)

    for result in (listed, shown):
        assert result.code == ExitCode.OK, result.err
        assert not RAW_CONTROL.search(result.out), ascii(result.out)
    assert "Refund ^[]0;pwned-title^G please" in listed.out
    assert "Customer:  Eve ^[[31mRED^[[0m <eve@evil.example>" in shown.out
    assert "Subject:   Refund ^[]0;pwned-title^G please" in shown.out
    assert "Hello^[[2J^[[H there." in shown.out
    assert "See ^[]8;;https://evil.example/^[\\our portal^[]8;;^[\\ now." in shown.out
    assert "A bell^G, a DEL^? and an 8-bit CSIM-^[31m." in shown.out


def test_json_output_escapes_every_control_character_and_keeps_the_data(hostile_case):
    listed = run_cli("cases", "list", "--json")
    shown = run_cli("cases", "show", hostile_case, "--json")

    for result in (listed, shown):
        assert not RAW_CONTROL.search(result.out), ascii(result.out)
    assert "\\u001b" in shown.out and "\\u009b" in shown.out
    detail = shown.json()
    assert detail["customer_name"] == HOSTILE_NAME
    assert detail["messages"][0]["text"] == HOSTILE_TEXT
    assert listed.json()[0]["subject"] == HOSTILE_SUBJECT


def test_an_email_body_that_drives_a_terminal_is_shown_not_obeyed(cli_env, classifier):
    # End to end, from the mailbox: the body of an email is stored as it came.
    cli_env.deliver(customer_email("Invoice", HOSTILE_TEXT, sender="eve@evil.example"))
    runner.run_once(Worker(cli_env.settings, classifier))
    [case] = list_cases()

    shown = run_cli("cases", "show", case.tracking_number)

    assert shown.code == ExitCode.OK, shown.err
    assert not RAW_CONTROL.search(shown.out), ascii(shown.out)
    assert "Hello^[[2J^[[H there." in shown.out
    assert "A bell^G, a DEL^? and an 8-bit CSIM-^[31m." in shown.out


def test_a_line_break_in_a_listed_field_cannot_forge_a_row(cli_env):
    record_quarantined(
        InboundRecord(message_id="<q-2@evil.example>", sender="eve@evil.example",
                      sender_name="Eve", subject="Invoice\x1b[2K\n1  fake row",
                      text="", raw=b"", received_at=datetime.now(UTC),
                      source_key="maildir:cur/2"),
        "could not be classified\x07", datetime.now(UTC))

    result = run_cli("quarantine", "list")

    assert result.code == ExitCode.OK, result.err
    assert not RAW_CONTROL.search(result.out), ascii(result.out)
    header, row = result.out.splitlines()
    assert "Invoice^[[2K 1  fake row" in row and "could not be classified^G" in row
    assert header.index("SUBJECT") == row.index("Invoice")


# --- working a case ------------------------------------------------------------------------


def test_assign_is_recorded_with_the_actor_and_not_emailed(cases, cli_env):
    sent_before = len(sent_emails(cli_env.outbox))

    result = run_cli("cases", "assign", cases["copy"], "tomas")

    assert result.code == ExitCode.OK and "tomas" in result.out
    detail = run_cli("cases", "show", cases["copy"], "--json").json()
    assert detail["assignee"] == "tomas"
    event = detail["history"][-1]
    assert (event["kind"], event["actor"], event["to"]) == ("assignment", "maria", "tomas")
    assert len(sent_emails(cli_env.outbox)) == sent_before


def test_internal_note_is_kept_in_history_and_never_emailed(cases, cli_env):
    sent_before = len(sent_emails(cli_env.outbox))
    messages_before = Message.select().count()

    result = run_cli("cases", "note", cases["copy"], "Called AP, waiting on PO 7781")

    assert result.code == ExitCode.OK
    event = run_cli("cases", "show", cases["copy"], "--json").json()["history"][-1]
    assert (event["kind"], event["actor"], event["note"]) == (
        "note", "maria", "Called AP, waiting on PO 7781")
    assert Message.select().count() == messages_before
    assert len(sent_emails(cli_env.outbox)) == sent_before
    assert not any("waiting on PO" in message.as_string()
                   for message in sent_emails(cli_env.outbox))


def test_reply_emails_the_customer_and_joins_the_thread(cases, cli_env):
    sent_before = {m["Message-ID"] for m in sent_emails(cli_env.outbox)}

    result = run_cli("cases", "reply", cases["copy"], "The PDF is attached to your portal.")

    assert result.code == ExitCode.OK and "customer emailed" in result.out
    [reply] = [m for m in sent_emails(cli_env.outbox) if m["Message-ID"] not in sent_before]
    assert reply["To"].addresses[0].addr_spec == OPS
    assert f"[{cases['copy']}]" in reply["Subject"]
    plain = reply.get_body(("plain",)).get_content()
    assert "The PDF is attached to your portal." in plain
    detail = run_cli("cases", "show", cases["copy"], "--json").json()
    assert [detail["messages"][-1]["message_id"]] == message_ids(reply["Message-ID"])
    assert detail["messages"][-1]["direction"] == "out"
    assert detail["history"][-1]["kind"] == "reply"
    assert detail["history"][-1]["actor"] == "maria"
    # The case was new: a specialist's reply picks it up, and the email says so.
    assert detail["status"] == "in_progress"
    assert (detail["history"][-2]["from"], detail["history"][-2]["to"]) == (
        "new", "in_progress")
    assert "status: in progress" in plain


@pytest.mark.parametrize("command", ["reply", "note", "assign"])
@pytest.mark.parametrize("text", ["", "   ", "\n\t "], ids=["empty", "spaces", "newline"])
def test_blank_reply_note_or_assignee_is_a_usage_error_and_records_nothing(
    cases, cli_env, command, text
):
    sent_before = len(sent_emails(cli_env.outbox))
    events = StatusEvent.select().count()
    messages = Message.select().count()

    result = run_cli("cases", command, cases["copy"], text)

    assert_one_line_error(result, ExitCode.USAGE)
    assert "blank" in result.err or "not a specialist name" in result.err
    assert StatusEvent.select().count() == events
    assert Message.select().count() == messages
    assert len(sent_emails(cli_env.outbox)) == sent_before
    assert get_case(cases["copy"]).assignee is None


@pytest.mark.parametrize("argv", [
    ["cases", "resolve", "{copy}", "--note", "  "],
    ["cases", "status", "{copy}", "in_progress", "--note", "\n"],
    ["disputes", "decide", "{dispute}", "rejected", "--note", " "],
], ids=["resolve", "status", "decide"])
def test_a_blank_note_the_customer_would_read_is_a_usage_error(cases, cli_env, argv):
    sent_before = len(sent_emails(cli_env.outbox))
    events = StatusEvent.select().count()

    result = run_cli(*[part.format(**cases) for part in argv])

    assert_one_line_error(result, ExitCode.USAGE)
    assert "blank" in result.err
    assert StatusEvent.select().count() == events
    assert len(sent_emails(cli_env.outbox)) == sent_before


def test_cases_list_names_the_processes_when_given_an_unknown_one(cases):
    result = run_cli("cases", "list", "--process", "nope")

    assert_one_line_error(result, ExitCode.USAGE)
    assert "unknown process 'nope'" in result.err and "charge_correction" in result.err


@pytest.mark.parametrize("name", ["maria\ntomas", "x" * 101])
def test_an_assignee_nobody_could_find_is_a_usage_error(cases, name):
    result = run_cli("cases", "assign", cases["copy"], name)

    assert_one_line_error(result, ExitCode.USAGE)
    assert "not a specialist name" in result.err
    assert get_case(cases["copy"]).assignee is None


@pytest.mark.parametrize("again", ["maria", " maria "])
def test_assigning_the_current_assignee_again_changes_nothing(cases, again):
    assert run_cli("cases", "assign", cases["copy"], "maria").code == ExitCode.OK
    events = StatusEvent.select().count()

    result = run_cli("cases", "assign", cases["copy"], again)

    assert result.code == ExitCode.OK, result.err
    assert result.err == ""
    assert "already assigned to maria" in result.out and "nothing changed" in result.out
    assert StatusEvent.select().count() == events
    history = run_cli("cases", "show", cases["copy"], "--json").json()["history"]
    assert [(e["from"], e["to"]) for e in history if e["kind"] == "assignment"] == [
        (None, "maria")]


def test_reassigning_records_who_had_it(cases):
    run_cli("cases", "assign", cases["copy"], "maria")

    result = run_cli("cases", "assign", cases["copy"], " tomas ")

    assert result.code == ExitCode.OK and "assigned to tomas" in result.out
    history = run_cli("cases", "show", cases["copy"], "--json").json()["history"]
    assert [(e["from"], e["to"]) for e in history if e["kind"] == "assignment"] == [
        (None, "maria"), ("maria", "tomas")]


def test_status_changes_resolve_and_reopen_are_events_with_actor_and_note(cases, cli_env):
    tracking = cases["copy"]
    sent_before = len(sent_emails(cli_env.outbox))

    steps = [
        run_cli("cases", "status", tracking, "in_progress", "--note", "Looking into it."),
        run_cli("cases", "status", tracking, "awaiting_customer", "--note",
                "Which month do you need?"),
        run_cli("cases", "resolve", tracking, "--note", "Sent the February PDF."),
        run_cli("cases", "reopen", tracking, "--note", "Wrong month, sorry."),
    ]

    assert [step.code for step in steps] == [ExitCode.OK] * 4
    assert "is now resolved" in steps[2].out
    detail = run_cli("cases", "show", tracking, "--json").json()
    assert detail["status"] == "in_progress"
    changes = [(e["from"], e["to"], e["actor"], e["note"]) for e in detail["history"]]
    assert changes == [
        (None, "new", "system", "opened by email"),
        ("new", "in_progress", "maria", "Looking into it."),
        ("in_progress", "awaiting_customer", "maria", "Which month do you need?"),
        ("awaiting_customer", "resolved", "maria", "Sent the February PDF."),
        ("resolved", "in_progress", "maria", "Wrong month, sorry."),
    ]
    assert all(is_utc_iso(event["created_at"]) for event in detail["history"])
    # Each customer-visible change sent one email.
    assert len(sent_emails(cli_env.outbox)) == sent_before + 4


@pytest.mark.parametrize("note", [[], ["--note", ""], ["--note", " \n"]],
                         ids=["no-note", "empty", "blank"])
def test_resolving_through_status_needs_a_note_as_resolve_does(cases, cli_env, note):
    # The customer would read "Your case is now: resolved." and not a word of how.
    sent_before = len(sent_emails(cli_env.outbox))
    events = StatusEvent.select().count()

    result = run_cli("cases", "status", cases["copy"], "resolved", *note)

    assert_one_line_error(result, ExitCode.USAGE)
    assert "--note" in result.err and f"cases resolve {cases['copy']}" in result.err
    assert get_case(cases["copy"]).status == "new"
    assert StatusEvent.select().count() == events
    assert len(sent_emails(cli_env.outbox)) == sent_before


def test_resolving_through_status_with_a_note_emails_the_note(cases, cli_env):
    sent_before = {m["Message-ID"] for m in sent_emails(cli_env.outbox)}

    result = run_cli("cases", "status", cases["copy"], "resolved", "--note",
                     "Sent the February PDF.")

    assert result.code == ExitCode.OK, result.err
    assert "is now resolved" in result.out
    [notice] = [m for m in sent_emails(cli_env.outbox) if m["Message-ID"] not in sent_before]
    assert "Sent the February PDF." in notice.get_body(("plain",)).get_content()


def test_actor_defaults_to_billing_inbox_actor_variable(cases, monkeypatch):
    monkeypatch.setenv("BILLING_INBOX_ACTOR", "lena")
    stdout, stderr = io.StringIO(), io.StringIO()

    code = main(["cases", "note", cases["copy"], "no --as given"], stdout, stderr)

    assert code == ExitCode.OK
    assert StatusEvent.select().order_by(StatusEvent.id.desc()).first().actor == "lena"


def test_case_cannot_go_back_to_new(cases):
    run_cli("cases", "status", cases["copy"], "in_progress")

    result = run_cli("cases", "status", cases["copy"], "new")

    assert_one_line_error(result, ExitCode.NOT_ALLOWED)
    assert get_case(cases["copy"]).status == "in_progress"


def test_reopen_applies_only_to_a_resolved_case(cases, cli_env):
    # `cases reopen` is documented as "Put a resolved case back in progress"; on a new
    # case it must not pose as a status change and email the customer.
    sent_before = len(sent_emails(cli_env.outbox))

    result = run_cli("cases", "reopen", cases["copy"])

    assert_one_line_error(result, ExitCode.NOT_ALLOWED)
    assert get_case(cases["copy"]).status == "new"
    assert len(sent_emails(cli_env.outbox)) == sent_before


def test_resolved_case_can_be_reopened_and_history_is_never_rewritten(cases):
    tracking = cases["copy"]
    run_cli("cases", "resolve", tracking, "--note", "Sent.")
    before = run_cli("cases", "show", tracking, "--json").json()["history"]

    run_cli("cases", "reopen", tracking)
    run_cli("cases", "status", tracking, "closed", "--note", "Done for good.")

    after = run_cli("cases", "show", tracking, "--json").json()["history"]
    assert after[: len(before)] == before
    assert [event["to"] for event in after[len(before):]] == ["in_progress", "closed"]


# --- disputes ------------------------------------------------------------------------------


def test_disputes_list_json_shape(cases):
    rows = run_cli("disputes", "list", "--json").json()

    [row] = rows
    assert set(row) >= DISPUTE_FIELDS
    assert (row["tracking_number"], row["customer_email"]) == (cases["dispute"], CFO)
    assert (row["invoice_number"], row["disputed_amount"], row["currency"], row["status"],
            row["approved_amount"]) == ("48213", "1250.00", "USD", "open", None)
    assert cases["dispute"] in run_cli("disputes", "list").out


@pytest.mark.parametrize(("argv", "status", "approved"), [
    (["approved"], "approved", "1250.00"),
    (["partially_approved", "--amount", "400"], "partially_approved", "400.00"),
    (["rejected"], "rejected", "0.00"),
], ids=["approved", "partial", "rejected"])
def test_dispute_decision_is_recorded_and_emailed_with_the_amount(
    cases, cli_env, argv, status, approved
):
    sent_before = {m["Message-ID"] for m in sent_emails(cli_env.outbox)}

    result = run_cli("disputes", "decide", cases["dispute"], *argv,
                     "--note", "Credit memo CM-88 issued.")

    assert result.code == ExitCode.OK, result.err
    [row] = run_cli("disputes", "list", "--json").json()
    assert (row["status"], row["approved_amount"]) == (status, approved)
    case_row = run_cli("cases", "list", "--json").json()
    [listed] = [r for r in case_row if r["tracking_number"] == cases["dispute"]]
    assert listed["dispute"]["approved_amount"] == approved
    event = run_cli("cases", "show", cases["dispute"], "--json").json()["history"][-1]
    assert (event["kind"], event["to"], event["actor"]) == ("dispute", status, "maria")
    [notice] = [m for m in sent_emails(cli_env.outbox) if m["Message-ID"] not in sent_before]
    text = notice.get_body(("plain",)).get_content()
    assert f"[{cases['dispute']}]" in notice["Subject"]
    assert "Credit memo CM-88 issued." in text
    if status != "rejected":
        assert f"{float(approved):,.2f} USD" in text


def decision_state() -> tuple[str, str | None]:
    """(status, approved_amount) of the fixture's one dispute, as `disputes list --json`."""
    [row] = run_cli("disputes", "list", "--json").json()
    return row["status"], row["approved_amount"]


@pytest.mark.parametrize("amount", [
    "1.000,00", "1,25", "1,2500", "12,50,000", "NaN", "nan", "inf", "Infinity", "-5", "+5",
    "1e3", "1250.", ".5", "1250.001", "1 250", "", "0x10", "\u0664\u0660\u0660",
])
def test_an_ambiguous_or_impossible_amount_is_a_usage_error_and_changes_nothing(
    cases, cli_env, amount
):
    # "1.000,00" used to become 1.00 (commas dropped), -5 and NaN were emailed as credits.
    sent_before = len(sent_emails(cli_env.outbox))
    events = StatusEvent.select().count()

    result = run_cli("disputes", "decide", cases["dispute"], "partially_approved",
                     f"--amount={amount}", "--note", "Credit memo CM-88.")

    assert_one_line_error(result, ExitCode.USAGE)
    assert f"not an amount: {amount!r}" in result.err
    assert "1,250.00" in result.err and "2 decimals" in result.err  # the expected form
    assert decision_state() == ("open", None)
    assert StatusEvent.select().count() == events
    assert len(sent_emails(cli_env.outbox)) == sent_before


@pytest.mark.parametrize(("decision", "amount", "approved"), [
    ("partially_approved", "400", "400.00"),
    ("partially_approved", "400.5", "400.50"),
    ("partially_approved", "1,000", "1000.00"),
    ("partially_approved", " 999.99 ", "999.99"),
    ("approved", "1250", "1250.00"),
    ("approved", "1,250.00", "1250.00"),
    ("approved", "1250.0", "1250.00"),
    ("rejected", "0", "0.00"),
])
def test_an_unambiguous_amount_is_accepted(cases, decision, amount, approved):
    result = run_cli("disputes", "decide", cases["dispute"], decision, "--amount", amount,
                     "--note", "Credit memo CM-88.")

    assert result.code == ExitCode.OK, result.err
    assert decision_state() == (decision, approved)


@pytest.mark.parametrize(("argv", "says"), [
    (["approved", "--amount", "400"], "use partially_approved"),
    (["approved", "--amount", "1250.01"], "use partially_approved"),
    (["approved", "--amount", "0"], "more than zero"),
    (["partially_approved", "--amount", "0"], "more than zero"),
    (["partially_approved", "--amount", "0.00"], "more than zero"),
    (["partially_approved", "--amount", "2,000"], "less than the disputed 1250.00"),
], ids=["approved-less", "approved-more", "approved-zero", "partial-zero",
        "partial-zero-cents", "partial-more"])
def test_an_amount_that_contradicts_the_decision_is_not_allowed(cases, cli_env, argv, says):
    sent_before = len(sent_emails(cli_env.outbox))

    result = run_cli("disputes", "decide", cases["dispute"], *argv, "--note", "x")

    assert_one_line_error(result, ExitCode.NOT_ALLOWED)
    assert says in result.err
    assert decision_state() == ("open", None)
    assert len(sent_emails(cli_env.outbox)) == sent_before


@pytest.mark.parametrize(("decision", "amount"), [
    ("approved", "NaN"), ("approved", "-5"), ("approved", "Infinity"),
    ("approved", "400"), ("approved", "0"),
    ("partially_approved", "NaN"), ("partially_approved", "sNaN"),
    ("partially_approved", "-Infinity"), ("partially_approved", "-5"),
    ("partially_approved", "0.001"), ("partially_approved", "10.005"),
    ("partially_approved", "1E+30"), ("partially_approved", "1250.00"),
    ("rejected", "NaN"), ("rejected", "-5"),
])
def test_decide_dispute_itself_refuses_amounts_no_customer_should_be_sent(
    cases, cli_env, decision, amount
):
    # Whoever calls it (not only the CLI, which refuses most of these as usage errors).
    from decimal import Decimal

    from db.lifecycle import decide_dispute
    from db.models import DisputeStatus
    from db.records import TransitionNotAllowed

    with pytest.raises(TransitionNotAllowed):
        decide_dispute(cases["dispute"], DisputeStatus(decision), "maria",
                       datetime.now(UTC), "x", Decimal(amount))

    assert decision_state() == ("open", None)
    assert run_cli("outbox", "list", "--json").json() == []


def test_a_closed_case_dispute_cannot_be_decided_nor_revised(cases, cli_env):
    # The customer was told the case is closed: no decision email may follow.
    decided = run_cli("disputes", "decide", cases["dispute"], "rejected", "--note", "No.")
    assert decided.code == ExitCode.OK, decided.err
    closed = run_cli("cases", "status", cases["dispute"], "closed", "--note", "Done.")
    assert closed.code == ExitCode.OK, closed.err
    sent_before = len(sent_emails(cli_env.outbox))
    events = StatusEvent.select().count()

    revised = run_cli("disputes", "decide", cases["dispute"], "approved", "--note",
                      "Changed our mind.", "--revise")

    assert_one_line_error(revised, ExitCode.NOT_ALLOWED)
    assert f"{cases['dispute']} is closed" in revised.err
    assert "closed case cannot change" in revised.err
    assert decision_state() == ("rejected", "0.00")
    assert get_case(cases["dispute"]).status == "closed"
    assert StatusEvent.select().count() == events
    assert len(sent_emails(cli_env.outbox)) == sent_before


def test_a_case_with_an_undecided_dispute_cannot_be_closed(cases, cli_env):
    # Closed is final and a closed case's dispute cannot be decided: closing first would
    # leave the dispute open in `disputes list` for good.
    sent_before = len(sent_emails(cli_env.outbox))

    refused = run_cli("cases", "status", cases["dispute"], "closed", "--note", "Done.")

    assert_one_line_error(refused, ExitCode.NOT_ALLOWED)
    assert "undecided dispute (open)" in refused.err
    assert f"disputes decide {cases['dispute']}" in refused.err
    assert get_case(cases["dispute"]).status == "new"
    assert len(sent_emails(cli_env.outbox)) == sent_before

    assert run_cli("disputes", "decide", cases["dispute"], "rejected", "--note",
                   "The seats were in use.").code == ExitCode.OK
    assert run_cli("cases", "status", cases["dispute"], "closed", "--note",
                   "Done.").code == ExitCode.OK
    revised = run_cli("disputes", "decide", cases["dispute"], "approved", "--note", "Ok.",
                      "--revise")

    assert_one_line_error(revised, ExitCode.NOT_ALLOWED)
    assert f"{cases['dispute']} is closed" in revised.err
    assert decision_state() == ("rejected", "0.00")


def test_a_misfiled_case_moves_into_charge_correction_with_its_dispute(cases, cli_env):
    # The invoice-copy request was really a charge dispute: it needs the dispute workflow.
    sent_before = len(sent_emails(cli_env.outbox))

    moved = run_cli("cases", "process", cases["copy"], "charge_correction")

    assert moved.code == ExitCode.OK, moved.err
    assert f"{cases['copy']} filed under charge_correction (was invoice_copy)" in moved.out
    assert "dispute opened" in moved.out
    detail = run_cli("cases", "show", cases["copy"], "--json").json()
    assert detail["process"] == "charge_correction"
    assert detail["dispute"]["status"] == "open"
    assert detail["history"][-1]["kind"] == "process"
    assert (detail["history"][-1]["from"], detail["history"][-1]["to"]) == (
        "invoice_copy", "charge_correction")
    assert len(sent_emails(cli_env.outbox)) == sent_before  # internal: nobody is emailed
    decided = run_cli("disputes", "decide", cases["copy"], "rejected", "--note", "No.")
    assert decided.code == ExitCode.OK, decided.err


def test_leaving_charge_correction_removes_an_untouched_dispute_only(cases, cli_env):
    moved = run_cli("cases", "process", cases["dispute"], "general")

    assert moved.code == ExitCode.OK, moved.err
    assert "its dispute, never reviewed, was removed" in moved.out
    assert run_cli("disputes", "list", "--json").json() == []

    assert run_cli("cases", "process", cases["dispute"], "charge_correction").code == 0
    assert run_cli("disputes", "review", cases["dispute"]).code == ExitCode.OK
    refused = run_cli("cases", "process", cases["dispute"], "general")

    assert_one_line_error(refused, ExitCode.NOT_ALLOWED)
    assert "under_review" in refused.err
    assert run_cli("cases", "show", cases["dispute"], "--json").json()["process"] == (
        "charge_correction")


def test_cases_process_refuses_an_unknown_process_and_a_closed_case(cases, cli_env):
    unknown = run_cli("cases", "process", cases["copy"], "refund")
    assert_one_line_error(unknown, ExitCode.USAGE)
    assert "unknown process 'refund'" in unknown.err and "charge_correction" in unknown.err

    assert run_cli("cases", "status", cases["copy"], "closed", "--note", "Sent.").code == 0
    closed = run_cli("cases", "process", cases["copy"], "general")
    assert_one_line_error(closed, ExitCode.NOT_ALLOWED)
    same = run_cli("cases", "process", cases["dispute"], "charge_correction")
    assert same.code == ExitCode.OK and "nothing changed" in same.out


def test_a_resolved_case_dispute_can_still_be_decided_and_revised(cases, cli_env):
    # Deciding is often what resolves a case: the decision may be recorded after it.
    assert run_cli("cases", "resolve", cases["dispute"], "--note", "Credited.").code == 0
    sent_before = len(sent_emails(cli_env.outbox))

    decided = run_cli("disputes", "decide", cases["dispute"], "partially_approved",
                      "--amount", "500", "--note", "Half the seats were in use.")
    revised = run_cli("disputes", "decide", cases["dispute"], "approved", "--note",
                      "All seats were unused.", "--revise")

    assert decided.code == ExitCode.OK, decided.err
    assert revised.code == ExitCode.OK, revised.err
    assert decision_state() == ("approved", "1250.00")
    assert get_case(cases["dispute"]).status == "resolved"
    assert len(sent_emails(cli_env.outbox)) == sent_before + 2


# --- outbox, quarantine, customers, config, db ---------------------------------------------


def test_failed_delivery_stays_in_outbox_until_retry(cases, cli_env, monkeypatch):
    # A port nobody listens on: the real failure a down SMTP server gives.
    monkeypatch.setenv("BILLING_INBOX_SMTP_URL", f"smtp://127.0.0.1:{free_port()}")

    queued = run_cli("cases", "reply", cases["copy"], "Here is your copy.")
    pending = run_cli("outbox", "list", "--json").json()

    assert queued.code == ExitCode.OK and "will be retried" in queued.out
    [item] = pending
    assert (item["tracking_number"], item["kind"], item["recipients"]) == (
        cases["copy"], "reply", OPS)
    assert item["case"] == item["tracking_number"]  # the older key, kept for scripts
    assert item["delivery_state"] == "pending" and item["attempts"] == 1
    assert item["last_error"]
    assert cases["copy"] in run_cli("outbox", "list").out
    still_down = run_cli("outbox", "retry")
    # Exit 5: cron and monitoring can tell that nothing went out.
    assert still_down.code == ExitCode.DELIVERY_FAILED, still_down.err
    assert "0 sent, 1 failed" in still_down.out

    monkeypatch.setenv("BILLING_INBOX_SMTP_URL", f"maildir:{cli_env.outbox}")
    retried = run_cli("outbox", "retry")

    assert retried.code == ExitCode.OK and "1 sent, 0 failed" in retried.out
    assert run_cli("outbox", "list", "--json").json() == []
    assert any("Here is your copy." in m.get_body(("plain",)).get_content()
               for m in sent_emails(cli_env.outbox))
    assert "nothing to retry" in run_cli("outbox", "retry").out


def test_a_reply_refused_for_good_is_listed_undeliverable_until_retried(
    cases, cli_env, monkeypatch, smtp_server
):
    monkeypatch.setenv("BILLING_INBOX_SMTP_URL", smtp_server.url)
    smtp_server.refuse(True, at="RCPT", reply="550 5.1.1 no such user here")

    queued = run_cli("cases", "reply", cases["copy"], "Here is your copy.")

    assert queued.code == ExitCode.OK
    assert "refused 1 queued email(s) for good, which are not retried" in queued.out
    [item] = run_cli("outbox", "list", "--json").json()
    assert (item["delivery_state"], item["attempts"]) == ("undeliverable", 1)
    assert "550" in item["last_error"]
    assert "undeliverable" in run_cli("outbox", "list").out

    smtp_server.refuse(False)
    retried = run_cli("outbox", "retry")

    assert retried.code == ExitCode.OK and "1 sent, 0 failed" in retried.out
    assert run_cli("outbox", "list", "--json").json() == []
    assert len(smtp_server.wait_for(1)) == 1


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one", "two-workers"])
def test_run_once_exits_5_when_replies_could_not_be_delivered(cli_env, monkeypatch, workers,
                                                              capfd):
    monkeypatch.setenv("BILLING_INBOX_SMTP_URL", f"smtp://127.0.0.1:{free_port()}")
    cli_env.deliver(customer_email("Copy please", "Please resend invoice 4471 as a PDF.",
                                   sender="pat@example.org"))

    ran = run_cli("run", "--once", *workers)

    assert ran.code == ExitCode.DELIVERY_FAILED
    # Forked workers print their summaries to the process's own stdout.
    out = ran.out + capfd.readouterr().out
    assert "1 case_opened" in out and "0 replies sent, 1 delivery failures" in out
    [item] = run_cli("outbox", "list", "--json").json()
    assert item["delivery_state"] == "pending"


# Bytes no text codec would keep as they are.
PDF = b"%PDF-1.4\n\x00\xff\xfe binary \x80\x81 proof of payment\n%%EOF\n"


def email_with_attachments() -> bytes:
    message = EmailMessage()
    message["From"] = f"Casey CFO <{CFO}>"
    message["To"] = "billing@acme-billing.example"
    message["Subject"] = "Proof of payment"
    message["Message-ID"] = "<attached-1@example.org>"
    message.set_content("Invoice 48213 was paid on 2 March: the bank's receipt is attached.")
    message.add_attachment(PDF, maintype="application", subtype="pdf",
                           filename="receipt.pdf")
    message.add_attachment("a sender-chosen path", filename="../../etc/cron.d/evil")
    return message.as_bytes()


def test_cases_attachments_lists_and_saves_what_the_customer_attached(
    cli_env, classifier, tmp_path
):
    cli_env.deliver(email_with_attachments())
    runner.run_once(Worker(cli_env.settings, classifier))
    [case] = list_cases()
    folder = tmp_path / "saved"

    listed = run_cli("cases", "attachments", case.tracking_number, "--json")
    saved = run_cli("cases", "attachments", case.tracking_number, "--save", str(folder))
    again = run_cli("cases", "attachments", case.tracking_number, "--save", str(folder))

    assert listed.code == ExitCode.OK, listed.err
    assert [(item["number"], item["name"], item["size"]) for item in listed.json()] == [
        (1, "receipt.pdf", len(PDF)), (2, "../../etc/cron.d/evil", 21)]
    assert saved.code == ExitCode.OK, saved.err
    assert (folder / "receipt.pdf").read_bytes() == PDF  # byte for byte
    # A sender's path is only a name, inside the folder; nothing is overwritten.
    assert (folder / "evil").read_text() == "a sender-chosen path\n"
    assert sorted(path.name for path in folder.iterdir()) == [
        "evil", "evil-2", "receipt-2.pdf", "receipt.pdf"]
    assert again.code == ExitCode.OK and "receipt-2.pdf" in again.out
    assert not (tmp_path / "etc").exists()
    shown = run_cli("cases", "show", case.tracking_number).out
    assert f"[attached: receipt.pdf, application/pdf, {len(PDF)} B]" in shown
    assert f"cases attachments {case.tracking_number} --save FOLDER" in shown
    not_a_folder = run_cli("cases", "attachments", case.tracking_number, "--save",
                           str(folder / "receipt.pdf"))
    assert_one_line_error(not_a_folder, ExitCode.USAGE)
    assert "is a file, not a folder" in not_a_folder.err


def test_cases_attachments_of_a_case_without_any_says_so(cases):
    result = run_cli("cases", "attachments", cases["copy"])

    assert result.code == ExitCode.OK
    assert result.out.strip() == f"{cases['copy']}: no attachments"


def test_run_refuses_a_maildir_that_does_not_exist_instead_of_creating_it(
    cli_env, monkeypatch, tmp_path
):
    typo = tmp_path / "inbx"
    monkeypatch.setenv("BILLING_INBOX_MAILBOX_URL", f"maildir:{typo}")

    result = run_cli("run", "--once")

    assert_one_line_error(result, ExitCode.ERROR)
    assert f"BILLING_INBOX_MAILBOX_URL: no Maildir at {typo}" in result.err
    assert not typo.exists()


def test_a_specialist_command_where_there_is_no_database_says_so(clean_directory):
    # The default database is a relative path: in the wrong directory, "no cases match"
    # (and a new empty file) would mislead.
    result = run_cli("cases", "list")

    assert_one_line_error(result, ExitCode.ERROR)
    assert f"no case database at {clean_directory / 'billing-inbox.db'}" in result.err
    assert "BILLING_INBOX_DATABASE_URL" in result.err
    assert not (clean_directory / "billing-inbox.db").exists()


def test_run_once_quarantines_an_oversized_email_and_lists_it(cli_env, monkeypatch):
    monkeypatch.setenv("BILLING_INBOX_MAX_MESSAGE_BYTES", "3000")
    cli_env.deliver(customer_email("Huge", "x" * 5000, sender="big@example.org"))

    ran = run_cli("run", "--once")

    assert ran.code == ExitCode.OK and "1 quarantined" in ran.out
    [item] = run_cli("quarantine", "list", "--json").json()
    assert {"id", "message_id", "sender", "subject", "reason", "created_at"} <= set(item)
    assert "larger than" in item["reason"] and item["released_at"] is None
    assert str(item["id"]) in run_cli("quarantine", "list").out
    # Never read, so there is nothing to put back: a one-line error, exit 1.
    assert_one_line_error(run_cli("quarantine", "release", str(item["id"])), ExitCode.ERROR)


def test_quarantine_release_puts_the_email_back_in_the_inbox(cli_env):
    raw = customer_email("Broken", "Please look at this.", sender="pat@example.org")
    record_quarantined(
        InboundRecord(message_id="<q-1@example.org>", sender="pat@example.org",
                      sender_name="Pat", subject="Broken", text="", raw=raw,
                      received_at=datetime.now(UTC), source_key="maildir:cur/1"),
        "could not be classified", datetime.now(UTC))
    [item] = run_cli("quarantine", "list", "--json").json()

    result = run_cli("quarantine", "release", str(item["id"]))

    assert result.code == ExitCode.OK
    assert run_cli("quarantine", "list", "--json").json() == []
    inbox = mailbox.Maildir(cli_env.inbox, factory=None, create=False)
    assert [inbox.get_bytes(key) for key in inbox.iterkeys()] == [raw]


def test_customers_link_lets_an_address_of_the_same_account_see_the_case(cases):
    case = get_case(cases["dispute"])
    assert not sender_owns(case, "ap@widgets.example")

    first = run_cli("customers", "link", CFO, "WIDGETS-001")
    second = run_cli("customers", "link", "AP@widgets.example", "WIDGETS-001")

    assert (first.code, second.code) == (ExitCode.OK, ExitCode.OK)
    assert "WIDGETS-001" in second.out
    assert f"2 addresses now see its cases: ap@widgets.example, {CFO.lower()}" in second.out
    assert sender_owns(case, "ap@widgets.example")
    assert not sender_owns(case, OPS)


def test_customers_unlink_takes_away_sight_of_the_account_cases(cases):
    # A wrong link shows one customer's billing cases to another: it must be undoable.
    case = get_case(cases["dispute"])
    run_cli("customers", "link", CFO, "WIDGETS-001")
    run_cli("customers", "link", "mallory@evil.example", "WIDGETS-001")
    assert sender_owns(case, "mallory@evil.example")

    unlinked = run_cli("customers", "unlink", "MALLORY@evil.example")

    assert unlinked.code == ExitCode.OK, unlinked.err
    assert "mallory@evil.example no longer sees the cases of account WIDGETS-001" in (
        unlinked.out)
    assert f"still linked: {CFO.lower()}" in unlinked.out
    assert not sender_owns(case, "mallory@evil.example")
    assert sender_owns(case, CFO)
    assert [link["address"] for link in run_cli("customers", "list", "--json").json()] == [
        CFO.lower()]
    again = run_cli("customers", "unlink", "mallory@evil.example")
    assert_one_line_error(again, ExitCode.NOT_FOUND)
    assert "not linked to any account" in again.err


def test_customers_list_shows_who_sees_which_account_and_relinking_says_so(cases):
    assert "no linked addresses" in run_cli("customers", "list").out
    run_cli("customers", "link", "ap@acme.example", "ACME-001")

    moved = run_cli("customers", "link", "ap@acme.example", "ACME-002")
    listing = run_cli("customers", "list")

    assert "ap@acme.example linked to account ACME-002 (was linked to ACME-001)" in moved.out
    assert "1 address now sees its cases: ap@acme.example" in moved.out
    assert listing.code == ExitCode.OK
    assert listing.out.splitlines()[0].split() == ["ACCOUNT", "ADDRESS", "LINKED"]
    assert listing.out.splitlines()[1].split()[:2] == ["ACME-002", "ap@acme.example"]
    [link] = run_cli("customers", "list", "--json").json()
    assert (link["address"], link["account"]) == ("ap@acme.example", "ACME-002")
    assert link["linked_at"]


def test_customers_link_refuses_what_is_not_an_email_address(cases):
    result = run_cli("customers", "link", "bad", "WIDGETS-001")

    assert result.code == ExitCode.USAGE
    assert "not an email address" in result.err
    assert not sender_owns(get_case(cases["dispute"]), "bad")


@pytest.mark.parametrize("account", ["", "   ", "WIDGETS-001\nWIDGETS-002", "A" * 101])
def test_customers_link_refuses_what_is_not_an_account_name(cases, account):
    result = run_cli("customers", "link", "ap@widgets.example", account)

    assert result.code == ExitCode.USAGE
    assert "is not an account name" in result.err
    assert not sender_owns(get_case(cases["dispute"]), "ap@widgets.example")


def test_config_show_json_lists_every_setting_with_passwords_redacted(cli_env, monkeypatch):
    monkeypatch.setenv("BILLING_INBOX_SMTP_URL", "smtp://maria:s3cret-pw@127.0.0.1:2525")

    result = run_cli("config", "show", "--json")
    text = run_cli("config", "show")

    values = result.json()
    assert set(SETTINGS) <= set(values)
    assert values["from_address"] == "billing@acme-billing.example"
    assert "s3cret-pw" not in result.out and "***" in values["smtp_url"]
    assert "s3cret-pw" not in text.out
    assert "BILLING_INBOX_REOPEN_DAYS" in text.out


def test_db_init_creates_the_schema_and_is_repeatable(cli_env):
    first = run_cli("db", "init")
    second = run_cli("db", "init")

    assert (first.code, second.code) == (ExitCode.OK, ExitCode.OK)
    assert f"schema at version {schema_version()}" in second.out
    assert schema_version() >= 1


def test_readme_documents_every_command():
    """A command that exists but is not in the README is a command nobody finds."""
    import argparse
    from pathlib import Path

    from cli import build_parser

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()

    def commands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append(f"{prefix} {name}")
                    found.extend(commands(sub, f"{prefix} {name}"))
        return found

    listed = commands(build_parser(), "billing-inbox")
    assert len(listed) > 20
    missing = [command for command in listed if f"`{command}" not in readme]
    assert not missing, f"README.md does not document: {missing}"


def test_output_into_a_closed_pipe_ends_quietly(cli_env):
    # `billing-inbox config show | head -0`: the reader is gone before the first write.
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())",
               "config", "show"]
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.wait(timeout=60)

    assert stderr == ""
    assert process.returncode == 141
