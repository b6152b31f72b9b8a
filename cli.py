"""billing-inbox: the command line of the billing inbox, for operators and billing specialists.

`main(argv, stdout, stderr)` parses arguments, calls one operation per subcommand and
formats the result; only here do errors become exit codes. Data goes to stdout,
diagnostics to stderr, and tracebacks only with --debug.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from enum import IntEnum
from pathlib import Path
from typing import Any, TextIO

from inbox_worker.settings import SETTINGS, Settings, SettingsError, load_settings
from inbox_worker.tables import format_table

# What a shell reports for a command ended by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    NOT_ALLOWED = 4
    # Replies that could not be delivered yet (they stay pending and are retried): the
    # run did its work, but cron and monitoring must be able to tell nothing went out.
    DELIVERY_FAILED = 5


class CommandError(Exception):
    """A failure to report as one line, with its exit code."""

    def __init__(self, message: str, code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.code = code


# ---- output a terminal shows, never obeys ---------------------------------------------

# Characters a terminal obeys instead of showing: C0 controls but newline and tab, DEL,
# and C1 (U+0080-U+009F; some terminals take U+009B as CSI). Much of what we print comes
# from customer mail, and anyone can email the billing address. Also the bidi
# embeddings, overrides and isolates, which reorder what follows them on the line: "pay
# to account 1234<U+202E>5678" would read as a different number.
TERMINAL_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

# json.dumps escapes C0 controls (ESC comes out as \u001b) but, with ensure_ascii=False,
# leaves DEL, C1 and the bidi controls raw.
UNESCAPED_BY_JSON = re.compile(r"[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible_controls(text: str) -> str:
    """`text` with every control character in `cat -v` notation, so a terminal shows it.

    "Eve \x1b[31mRED" -> "Eve ^[[31mRED", "title\x07" -> "title^G", "\x7f" -> "^?",
    "\x9b" -> "M-^[", "\u202e" -> "<U+202E>". Newline and tab stay (they are layout); a
    CRLF line end becomes LF.
    """
    # Not U+FFFD: the notation is ASCII, so it prints in any locale, and it shows what was
    # sent (^[]0;...^G is plainly an attempt to set the window title) where U+FFFD would
    # look like a charset error.
    return TERMINAL_CONTROL.sub(_caret_notation, text.replace("\r\n", "\n"))


def _caret_notation(match: re.Match[str]) -> str:
    """As `cat -v`: ^@ to ^_ for C0, ^? for DEL, M- and the C0 form for C1; a bidi control
    as <U+202E>."""
    code = ord(match.group())
    if code > 0xFF:
        return f"<U+{code:04X}>"
    meta, code = ("M-", code - 0x80) if code >= 0x80 else ("", code)
    return meta + ("^?" if code == 0x7F else f"^{chr(code + 0x40)}")


def _single_line(value: object) -> str:
    """A header field or table cell: controls visible, line breaks and tabs as spaces.

    A line break in a subject (an encoded-word can hold one) or in a server's error would
    otherwise start a line that passes for a row or a field of its own.
    """
    return visible_controls(str(value)).replace("\n", " ").replace("\t", " ")


def _table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """`format_table` of one-line cells, made visible before the columns are measured."""
    return format_table([[_single_line(cell) for cell in row] for row in rows], headers)


def json_text(value: Any, indent: int | None = None) -> str:
    """`value` as JSON with every control character escaped; other text stays as it is."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    # Outside its strings JSON is ASCII: escaping these anywhere escapes them inside
    # strings, and whoever parses the JSON reads the same value.
    return UNESCAPED_BY_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


class _VisibleFormatter(logging.Formatter):
    """Log lines with control characters shown: a Message-ID or a reason comes from mail."""

    def format(self, record: logging.LogRecord) -> str:
        return visible_controls(super().format(record))


class Context:
    """What a command needs: settings, output streams, and the database on demand."""

    def __init__(self, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> None:
        self.args = args
        self.stdout = stdout
        self.stderr = stderr
        self._settings: Settings | None = None
        self._connected = False

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.args.config)
        return self._settings

    def connect(self, create: bool = False) -> None:
        """Open the case database; only the worker (`create`) may start a new one.

        A specialist in the wrong directory would otherwise get a new, empty SQLite file
        and "no cases match" instead of being told the database is elsewhere.
        """
        if not self._connected:
            from db.database import connect_database, missing_sqlite_file

            missing = None if create else missing_sqlite_file(self.settings.database_url)
            if missing is not None:
                raise CommandError(
                    f"no case database at {missing.resolve()}: the worker creates it on its "
                    f"first run; point BILLING_INBOX_DATABASE_URL at the one it uses")
            try:
                connect_database(self.settings.database_url)
            except Exception as error:
                raise CommandError(f"cannot open the database: {_one_line(error)}") from error
            self._connected = True

    @property
    def actor(self) -> str:
        return self.args.actor or os.environ.get("BILLING_INBOX_ACTOR") or getpass.getuser()

    def print(self, text: str = "") -> None:
        """Human-readable output: control characters in it are shown, never obeyed."""
        print(visible_controls(text), file=self.stdout)

    def print_listing(
        self, items: Sequence[Any], to_json: Callable[[Any], Any], empty: str,
        headers: Sequence[str], to_row: Callable[[Any], Sequence[object]],
    ) -> int:
        """A listing: one JSON array with --json, else a table, or `empty` when none."""
        if self.args.json:
            self.print_json([to_json(item) for item in items])
        elif not items:
            self.print(empty)
        else:
            self.print(_table([to_row(item) for item in items], headers))
        return ExitCode.OK

    def print_json(self, value: Any, indent: int | None = 2) -> None:
        """Machine-readable output (`--json`); indent=None gives one line per value."""
        print(json_text(value, indent), file=self.stdout)

    def progress(self, iterable: Any, total: int, description: str) -> Any:
        """A progress bar on stderr, only on a terminal and never with NO_COLOR."""
        if not self.stderr.isatty() or os.environ.get("NO_COLOR"):
            return iterable
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=description, file=self.stderr, leave=False)


Handler = Callable[[Context], int | None]


def main(
    argv: Sequence[str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one command; returns the exit code (see `ExitCode`)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    try:
        # argparse prints help and usage errors itself: send them to the given streams.
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = parser.parse_args(argv)
    except SystemExit as exit_request:  # argparse exits on --help and on usage errors
        return int(exit_request.code or 0)
    context = Context(args, stdout, stderr)
    _configure_logging(args, stderr)
    try:
        return int(args.handler(context) or ExitCode.OK)
    except SettingsError as error:
        return _fail(context, str(error), ExitCode.ERROR)
    except CommandError as error:
        return _fail(context, str(error), error.code)
    except KeyboardInterrupt:
        return _fail(context, "interrupted", ExitCode.ERROR)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do.
        if stdout is sys.stdout:
            # Python flushes stdout once more at exit, which would fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as error:
        from db.records import CaseNotFound, TransitionNotAllowed

        if isinstance(error, CaseNotFound):
            return _fail(context, str(error), ExitCode.NOT_FOUND)
        if isinstance(error, TransitionNotAllowed):
            return _fail(context, str(error), ExitCode.NOT_ALLOWED)
        if args.debug:
            raise
        return _fail(context, f"{_one_line(error)} (run with --debug for details)",
                     ExitCode.ERROR)


def _fail(context: Context, message: str, code: ExitCode) -> int:
    print(f"billing-inbox: {visible_controls(message)}", file=context.stderr)
    return int(code)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or error.__class__.__name__


def _configure_logging(args: argparse.Namespace, stderr: TextIO) -> None:
    level = logging.DEBUG if args.debug else logging.WARNING
    if getattr(args, "verbose_logs", False):
        level = min(level, logging.INFO)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "billing_inbox", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stderr)
    handler.billing_inbox = True  # type: ignore[attr-defined]
    handler.setFormatter(_VisibleFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)


# ---- the parser -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand, its options and its help (each help ends with an example)."""
    parser = argparse.ArgumentParser(
        prog="billing-inbox",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Turn every email to the billing address into a tracked case, answer "
        "it at once, and let billing specialists work the cases.",
        epilog="Settings come from BILLING_INBOX_* environment variables or a TOML file "
        "(see `billing-inbox config show`).\nExample: billing-inbox demo",
    )
    parser.add_argument("--config", metavar="PATH",
                        help="TOML settings file (default: $BILLING_INBOX_CONFIG)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--as", dest="actor", metavar="NAME",
                        help="who is acting, for the case history (default: $BILLING_INBOX_ACTOR, "
                        "else your user name)")
    parser.set_defaults(handler=lambda context: parser.print_help(context.stdout))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _register_worker_commands(commands)
    _register_case_commands(commands)
    _register_admin_commands(commands)
    return parser


def add_command(
    commands: argparse._SubParsersAction, name: str, handler: Handler, summary: str,
    example: str, json_output: bool = False,
) -> argparse.ArgumentParser:
    """A subcommand whose help ends with an example; `--json` where it lists things."""
    command = commands.add_parser(
        name, help=summary, description=summary, epilog=f"Example: {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.set_defaults(handler=handler)
    if json_output:
        command.add_argument("--json", action="store_true", help="machine-readable output")
    return command


def add_group(commands: argparse._SubParsersAction, name: str, summary: str, example: str
              ) -> argparse._SubParsersAction:
    """A command with subcommands of its own (`cases list`, `outbox retry`, ...)."""
    group = commands.add_parser(name, help=summary, description=summary,
                                epilog=f"Example: {example}",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    group.set_defaults(handler=lambda context: _missing_subcommand(group, context))
    return group.add_subparsers(title="subcommands", metavar="SUBCOMMAND")


def _missing_subcommand(group: argparse.ArgumentParser, context: Context) -> int:
    """`billing-inbox cases` alone: a usage error that shows what the subcommands are."""
    group.print_help(context.stderr)
    return ExitCode.USAGE


def _register_worker_commands(commands: argparse._SubParsersAction) -> None:
    run = add_command(
        commands, "run", cmd_run, "Read the mailbox and answer every email (until Ctrl-C).",
        "billing-inbox run --once")
    run.add_argument("--once", action="store_true",
                     help="process what is in the mailbox now, deliver replies, and exit")
    run.add_argument("--workers", type=int, default=1, metavar="K",
                     help="run K workers on the same mailbox (default 1); each worker is "
                     "two processes, the intake and the sender of its replies")
    add_command(commands, "demo", cmd_demo,
                "Try it with no set-up: sample emails through the real pipeline, locally.",
                "billing-inbox demo")
    add_command(commands, "train", cmd_train,
                "Train the classifier on the labelled examples (also done on first use).",
                "billing-inbox train")
    classify = add_command(
        commands, "classify", cmd_classify,
        "Dry run: parse, route and classify .eml files and show the result; writes nothing.",
        "billing-inbox classify message.eml --explain", json_output=True)
    classify.add_argument("files", nargs="+", metavar="FILE", help=".eml file, or - for stdin")
    classify.add_argument("--explain", action="store_true",
                          help="show which words and rules decided")
    evaluate = add_command(
        commands, "evaluate", cmd_evaluate,
        "Precision, recall and F1 per process, and field accuracy, on labelled emails.",
        "billing-inbox evaluate tests/emails/realworld", json_output=True)
    evaluate.add_argument("path", nargs="?", metavar="PATH",
                          help="folder of .eml files with labels.jsonl (default: held-out "
                          "examples)")


def _register_case_commands(commands: argparse._SubParsersAction) -> None:
    cases = add_group(commands, "cases", "List, inspect and work billing cases.",
                      "billing-inbox cases list --status new")
    listing = add_command(cases, "list", cmd_cases_list, "List cases, newest first.",
                          "billing-inbox cases list --status new --json", json_output=True)
    listing.add_argument("--status", help="new, in_progress, awaiting_customer, resolved, "
                         "closed")
    listing.add_argument("--process", help="service process, e.g. charge_correction")
    listing.add_argument("--assignee", help="specialist name")
    listing.add_argument("--customer", metavar="ADDRESS", help="customer email address")
    show = add_command(cases, "show", cmd_cases_show,
                       "A case with its dispute, its whole email thread and its history.",
                       "billing-inbox cases show BIL-000123", json_output=True)
    show.add_argument("tracking_number")
    assign = add_command(cases, "assign", cmd_cases_assign, "Give a case to a specialist.",
                         "billing-inbox cases assign BIL-000123 maria")
    assign.add_argument("tracking_number")
    assign.add_argument("name")
    status = add_command(cases, "status", cmd_cases_status,
                         "Move a case to a new status; the customer is emailed.",
                         "billing-inbox cases status BIL-000123 awaiting_customer "
                         "--note 'Please send the PO number.'")
    status.add_argument("tracking_number")
    status.add_argument("status", help="new, in_progress, awaiting_customer, resolved or "
                        "closed (the allowed moves depend on the current status)")
    status.add_argument("--note", default="", help="told to the customer with the change; "
                        "required for resolved, as in cases resolve, and for closing a "
                        "case that is not resolved")
    note = add_command(cases, "note", cmd_cases_note,
                       "Add an internal note (never emailed to the customer).",
                       "billing-inbox cases note BIL-000123 'Called AP, waiting on PO'")
    note.add_argument("tracking_number")
    note.add_argument("text")
    reply = add_command(cases, "reply", cmd_cases_reply,
                        "Email the customer in the case thread.",
                        "billing-inbox cases reply BIL-000123 'The copy is attached to "
                        "your portal.'")
    reply.add_argument("tracking_number")
    reply.add_argument("text")
    resolve = add_command(cases, "resolve", cmd_cases_resolve,
                          "Resolve a case and tell the customer how.",
                          "billing-inbox cases resolve BIL-000123 --note 'Due date moved "
                          "to 30 March.'")
    resolve.add_argument("tracking_number")
    resolve.add_argument("--note", required=True, help="the resolution, sent to the customer")
    attachments = add_command(
        cases, "attachments", cmd_cases_attachments,
        "List the files customers attached to a case's emails, or save them.",
        "billing-inbox cases attachments BIL-000123 --save ~/Downloads/BIL-000123",
        json_output=True)
    attachments.add_argument("tracking_number")
    attachments.add_argument("--save", metavar="FOLDER", help="write every attachment "
                             "into FOLDER (created if missing; files already there are "
                             "kept: a new one is saved as name-2.pdf)")
    refile = add_command(cases, "process", cmd_cases_process,
                         "File a misclassified case under another process (internal: the "
                         "customer is not emailed). Into charge_correction it gets its "
                         "dispute record; out of it, an untouched dispute is removed.",
                         "billing-inbox cases process BIL-000123 charge_correction")
    refile.add_argument("tracking_number")
    refile.add_argument("process", help="a process name of the catalog, e.g. general")
    reopen = add_command(cases, "reopen", cmd_cases_reopen,
                         "Put a resolved case back in progress.",
                         "billing-inbox cases reopen BIL-000123")
    reopen.add_argument("tracking_number")
    reopen.add_argument("--note", default="", help="why, sent to the customer")

    disputes = add_group(commands, "disputes", "Invoice charge disputes and their decisions.",

                      "billing-inbox disputes list")
    add_command(disputes, "list", cmd_disputes_list, "List disputes, newest first.",
                "billing-inbox disputes list --json", json_output=True)
    review = add_command(disputes, "review", cmd_disputes_review,
                         "Mark a dispute under review; the customer is emailed that the "
                         "charge is being investigated.",
                         "billing-inbox disputes review BIL-000123 --note 'Checking the "
                         "seat count with the licensing team.'")
    review.add_argument("tracking_number")
    review.add_argument("--note", default="", help="told to the customer with the change")
    amend = add_command(disputes, "amend", cmd_disputes_amend,
                        "Correct what a dispute says is disputed (an amount the customer "
                        "sent later, an invoice the extractor missed); internal: the "
                        "customer is not emailed, the history keeps the old values.",
                        "billing-inbox disputes amend BIL-000123 --amount 99.00 "
                        "--currency USD")
    amend.add_argument("tracking_number")
    amend.add_argument("--amount", help="the disputed amount, like 99.00 or 1,250.00")
    amend.add_argument("--currency", help="its ISO code, like EUR or USD")
    amend.add_argument("--invoice", help="the disputed invoice's number")
    decide = add_command(disputes, "decide", cmd_disputes_decide,
                         "Decide a dispute; the customer is emailed the decision.",
                         "billing-inbox disputes decide BIL-000123 partially_approved "
                         "--amount 40.00 --note 'Credit memo CM-88 issued.'")
    decide.add_argument("tracking_number")
    decide.add_argument("decision", choices=["approved", "partially_approved", "rejected"])
    decide.add_argument("--amount", help="approved amount, like 40.00 or 1,250.00 (digits, "
                        "an optional . and up to 2 decimals); approved grants the disputed "
                        "amount, partially_approved needs one below it")
    decide.add_argument("--note", required=True, help="the reason, sent to the customer")
    decide.add_argument("--revise", action="store_true",
                        help="change a decision already made; the customer's email says it "
                        "replaces the earlier one")


def _register_admin_commands(commands: argparse._SubParsersAction) -> None:
    outbox = add_group(commands, "outbox", "Replies waiting to be delivered.",
                      "billing-inbox outbox list")
    add_command(outbox, "list", cmd_outbox_list, "Replies not yet accepted by the server.",
                "billing-inbox outbox list --json", json_output=True)
    add_command(outbox, "retry", cmd_outbox_retry,
                "Try every pending or undeliverable reply again now.",
                "billing-inbox outbox retry")
    quarantine = add_group(commands, "quarantine", "Emails that could not be processed.",
                      "billing-inbox quarantine list")
    add_command(quarantine, "list", cmd_quarantine_list, "Quarantined emails and why.",
                "billing-inbox quarantine list", json_output=True)
    release = add_command(quarantine, "release", cmd_quarantine_release,
                          "Put a quarantined email back in the inbox to be processed again.",
                          "billing-inbox quarantine release 3")
    release.add_argument("id", type=int)
    customers = add_group(commands, "customers", "Addresses that belong to one customer.",
                      "billing-inbox customers link ap@acme.com ACME-001")
    link = add_command(customers, "link", cmd_customers_link,
                       "Let ADDRESS see the cases of every address linked to ACCOUNT.",
                       "billing-inbox customers link ap@acme.com ACME-001")
    link.add_argument("address")
    link.add_argument("account")
    add_command(customers, "list", cmd_customers_list,
                "Every linked address and its account: who sees whose cases.",
                "billing-inbox customers list --json", json_output=True)
    unlink = add_command(customers, "unlink", cmd_customers_unlink,
                         "Take ADDRESS off its account; it then sees only its own cases.",
                         "billing-inbox customers unlink old-ap@acme.com")
    unlink.add_argument("address")
    config = add_group(commands, "config", "Settings.", "billing-inbox config show")
    add_command(config, "show", cmd_config_show,
                "The effective settings (passwords redacted) and where each can be set.",
                "billing-inbox config show --json", json_output=True)
    database = add_group(commands, "db", "The case database.", "billing-inbox db init")
    add_command(database, "init", cmd_db_init, "Create or upgrade the schema.",
                "billing-inbox db init")


# ---- worker commands --------------------------------------------------------------------


def _worker(context: Context) -> Any:
    from inbox_worker.pipeline import Worker
    from inbox_worker.training import load_classifier

    context.connect(create=True)
    return Worker(context.settings, load_classifier(context.settings))


def cmd_run(context: Context) -> int:
    from inbox_worker import runner
    from inbox_worker.sources import refuse_missing_maildir

    logging.getLogger().setLevel(context.settings.log_level.upper())
    if context.args.workers < 1:
        raise CommandError("--workers must be at least 1", ExitCode.USAGE)
    refuse_missing_maildir(context.settings)
    if context.args.workers > 1:
        outcome = runner.run_processes(context.settings, context.args.workers,
                                       context.args.once)
        if outcome.failed:
            return ExitCode.ERROR
        return ExitCode.DELIVERY_FAILED if outcome.replies_pending else ExitCode.OK
    worker = _worker(context)
    if context.args.once:
        summary = runner.run_once(worker)
        context.print(summary.line())
        return ExitCode.DELIVERY_FAILED if summary.send_failures else ExitCode.OK
    runner.serve_until_signalled(worker)
    return ExitCode.OK


def cmd_demo(context: Context) -> int:
    from inbox_worker.demo import run_demo

    run_demo(context.settings, context.print)
    return ExitCode.OK


def cmd_train(context: Context) -> int:
    from inbox_worker.training import train_classifier

    report = train_classifier(context.settings)
    context.print(f"trained on {report.examples} examples in {report.seconds:.1f} s; "
                  f"model in {context.settings.resolved_model_dir()}")
    return ExitCode.OK


def cmd_classify(context: Context) -> int:
    from inbox_worker.dry_run import classify_files

    for result in classify_files(context.settings, context.args.files, context.args.explain,
                                 sys.stdin.buffer):
        if context.args.json:
            context.print_json(result.to_json(), indent=None)
        else:
            context.print(result.to_text())
    return ExitCode.OK


def cmd_evaluate(context: Context) -> int:
    from classifiers.evaluation import format_report
    from inbox_worker.dry_run import evaluate_examples, evaluation_json

    report = evaluate_examples(context.settings, context.args.path, context.progress)
    if context.args.json:
        context.print_json(evaluation_json(report))
    else:
        context.print(format_report(report))
    return ExitCode.OK


# ---- case commands ----------------------------------------------------------------------


def _now() -> Any:
    from inbox_worker.clock import utc_now

    return utc_now()


def _deliver_now(context: Context) -> str:
    """Try to send queued emails at once; a running worker retries whatever fails."""
    report = _deliver_pending(context)
    if report.undeliverable:
        return (f"customer email queued; the mail server refused {report.undeliverable} "
                "queued email(s) for good, which are not retried (see billing-inbox outbox "
                "list)")
    if report.failed:
        return "customer email queued; delivery failed for now and will be retried"
    return "customer emailed"


def _deliver_pending(context: Context) -> Any:
    """Send what is due now over one connection; the DeliveryReport of
    inbox_worker/outbox.py."""
    from inbox_worker.clock import utc_now
    from inbox_worker.delivery import open_transport
    from inbox_worker.outbox import SentMarks, deliver_pending

    transport = open_transport(context.settings)
    marks = SentMarks(utc_now).start()
    try:
        return deliver_pending(transport, context.settings, utc_now, marks)
    finally:
        marks.stop()  # every mark is written before the command returns
        transport.close()


def _count(number: int, one: str, many: str) -> str:
    """ "1 address", "2 addresses"."""
    return f"{number} {one if number == 1 else many}"


def _age(moment: Any) -> str:
    seconds = max(0, int((_now() - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def cmd_cases_list(context: Context) -> int:
    from db.lookup import list_cases
    from db.views import case_json

    args = context.args
    status = _parse_status(args.status).value if args.status else None
    if args.process:
        _catalog_process(args.process)
    context.connect()
    found = list_cases(status=status, process=args.process, assignee=args.assignee,
                       customer=args.customer)
    return context.print_listing(
        found, case_json, "no cases match",
        ["CASE", "PROCESS", "STATUS", "CUSTOMER", "AGE", "ASSIGNEE", "SUBJECT"],
        lambda case: [case.tracking_number, case.process, case.status, case.customer_email,
                      _age(case.created_at), case.assignee or "-", case.subject[:50]])


def cmd_cases_show(context: Context) -> int:
    from db.lookup import get_case
    from db.views import case_detail_json

    context.connect()
    detail = case_detail_json(get_case(context.args.tracking_number))
    if context.args.json:
        context.print_json(detail)
        return ExitCode.OK
    context.print(_case_text(detail))
    return ExitCode.OK


def cmd_cases_attachments(context: Context) -> int:
    from db.lookup import get_case
    from inbox_worker.attachments import case_attachments, save_attachment

    context.connect()
    found = case_attachments(get_case(context.args.tracking_number))
    if context.args.save is None:
        return context.print_listing(
            found,
            lambda item: {"number": item.number, "message_id": item.message.message_id,
                          "from": item.message.sender, "name": item.name,
                          "content_type": item.content_type, "size": item.size,
                          "saved_whole": item.data is not None},
            f"{context.args.tracking_number}: no attachments",
            ["#", "FROM", "NAME", "TYPE", "SIZE"],
            lambda item: [item.number, item.message.sender, item.name or "-",
                          item.content_type or "-", _size(item.size)])
    folder = Path(context.args.save).expanduser()
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{folder} is a file, not a folder", ExitCode.USAGE)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CommandError(f"cannot use {folder}: {error.strerror}") from None
    missing = 0
    for item in found:
        if item.data is None:
            missing += 1
            context.print(f"#{item.number} {_single_line(item.name)}: not saved, the email "
                          "was not kept whole")
            continue
        try:
            saved = save_attachment(item, folder)
        except OSError as error:
            raise CommandError(f"cannot write into {folder}: {error.strerror}") from None
        context.print(f"saved {_single_line(saved)} ({_size(len(item.data))})")
    if not found:
        context.print(f"{context.args.tracking_number}: no attachments")
    return ExitCode.ERROR if missing else ExitCode.OK


def _size(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024:.0f} KB"


def _case_text(detail: dict[str, Any]) -> str:
    """`cases show`: the case, its dispute, and every message and event in full."""
    lines = [
        f"{detail['tracking_number']}  {detail['process']}  [{detail['status']}]",
        f"Customer:  {_single_line(detail['customer_name'])} "
        f"<{_single_line(detail['customer_email'])}>",
        f"Subject:   {_single_line(detail['subject'])}",
        f"Opened:    {detail['created_at']}   Assignee: {detail['assignee'] or '-'}",
    ]
    if detail["previous_case"]:
        lines.append(f"Follows:   {detail['previous_case']}")
    details = {key: value for key, value in detail["details"].items() if value}
    if details:
        lines.append("Details:   " + ", ".join(f"{k}={v}" for k, v in details.items()))
    if detail["dispute"]:
        dispute = detail["dispute"]
        lines.append(f"Dispute:   invoice {dispute['invoice_number'] or '?'}, "
                     f"{dispute['disputed_amount'] or '?'} {dispute['currency'] or ''} "
                     f"[{dispute['status']}]"
                     + (f", approved {dispute['approved_amount']}"
                        if dispute["approved_amount"] else ""))
    lines.extend(["", "Thread:", *_thread_lines(detail["messages"])])
    if any(message["attachments"] for message in detail["messages"]):
        lines.append(f"  (to save the attachments: billing-inbox cases attachments "
                     f"{detail['tracking_number']} --save FOLDER)")
    lines.extend(["", "History:", *_history_lines(detail["history"])])
    return "\n".join(lines)


def _thread_lines(messages: list[dict[str, Any]]) -> list[str]:
    """Each message's heading, then its whole text indented under it."""
    lines: list[str] = []
    for message in messages:
        arrow = "<-" if message["direction"] == "in" else "->"
        state = f" ({message['delivery_state']})" if message["delivery_state"] else ""
        lines.append(f"  {message['created_at'][:16]} {arrow} {message['kind']}{state}: "
                     f"{_single_line(message['subject'])}")
        # Every line: the last one is often the one that matters ("do not debit our card").
        lines.extend(f"      {line}" for line in (message["text"] or "").strip().splitlines())
        lines.extend(f"      [attached: {_single_line(item.get('name') or '(no name)')}, "
                     f"{_single_line(item.get('type') or '?')}, {_size(item.get('size') or 0)}]"
                     for item in message["attachments"])
    return lines


def _history_lines(history: list[dict[str, Any]]) -> list[str]:
    """One line per event; a note's later lines (it can be a whole reply) under it."""
    lines: list[str] = []
    for event in history:
        change = f"{event['from'] or ''} -> {event['to']}" if event["to"] else ""
        first, *rest = (event["note"] or "").strip().splitlines() or [""]
        lines.append(f"  {event['created_at'][:16]} {event['actor']}: {event['kind']} "
                     f"{change} {first}".rstrip())
        lines.extend(f"      {line}" for line in rest)
    return lines


def _parse_status(value: str) -> Any:
    from db.models import CaseStatus

    try:
        return CaseStatus(value)
    except ValueError:
        choices = ", ".join(status.value for status in CaseStatus)
        raise CommandError(f"unknown status {value!r} (use {choices})", ExitCode.USAGE) from None


def _change_status(context: Context, status: Any, note: str, only_from: Any = None) -> int:
    from db.lifecycle import change_status
    from inbox_worker.notices import status_changed

    if note:
        _text_argument(note, "note")
    context.connect()
    now = _now()
    case = change_status(context.args.tracking_number, status, context.actor, now, note=note,
                         notify=status_changed(context.settings, note, now),
                         only_from=only_from)
    context.print(f"{case.tracking_number} is now {case.status}; {_deliver_now(context)}")
    return ExitCode.OK


def cmd_cases_status(context: Context) -> int:
    """`cases status`: any allowed move; resolving needs its note, as in `cases resolve`."""
    args = context.args
    status = _parse_status(args.status)
    if status == _parse_status("resolved") and not args.note.strip():
        # Otherwise the customer reads "is now: resolved" and not a word of how.
        raise CommandError(f"resolving needs a --note the customer reads as the resolution: "
                           f"billing-inbox cases resolve {args.tracking_number} --note TEXT",
                           ExitCode.USAGE)
    return _change_status(context, status, args.note)


def cmd_cases_resolve(context: Context) -> int:
    # The note is the resolution the customer reads: it is required, so blank is no note.
    note = _text_argument(context.args.note, "resolution note")
    return _change_status(context, _parse_status("resolved"), note)


def cmd_cases_process(context: Context) -> int:
    from db.lifecycle import change_process

    process = _catalog_process(context.args.process)
    context.connect()
    done = change_process(context.args.tracking_number, process.name, process.opens_dispute,
                          context.actor, _now())
    tracking = done.case.tracking_number
    if done.previous == process.name:
        context.print(f"{tracking} is already filed under {process.name}; nothing changed")
        return ExitCode.OK
    news = ""
    if done.dispute_opened is not None:
        amount = done.dispute_opened.disputed_amount
        news = (f"; dispute opened (invoice {done.dispute_opened.invoice_number or '-'}, "
                f"amount {amount if amount is not None else '-'})")
    elif done.dispute_removed:
        news = "; its dispute, never reviewed, was removed"
    context.print(f"{tracking} filed under {process.name} (was {done.previous}){news}")
    return ExitCode.OK


def _catalog_process(name: str) -> Any:
    """The catalog's process called `name`; a usage error listing the names otherwise."""
    from classifiers.catalog import load_catalog

    catalog = load_catalog()
    if name not in catalog:
        raise CommandError(f"unknown process {name!r} (one of: {', '.join(catalog)})",
                           ExitCode.USAGE)
    return catalog[name]


def cmd_cases_reopen(context: Context) -> int:
    return _change_status(context, _parse_status("in_progress"), context.args.note,
                          only_from=_parse_status("resolved"))


def _text_argument(value: str, what: str) -> str:
    """A text the command records or sends: blank (or whitespace only) is a usage error."""
    if not value.strip():
        raise CommandError(f"the {what} is blank: give its text (quoted if it has spaces)",
                           ExitCode.USAGE)
    return value


def _name_argument(value: str, what: str, example: str) -> str:
    """A name stored and matched later (an assignee, an account), stripped.

    A blank, a pasted line break or more than the database column holds would make a
    name nobody finds: a usage error.
    """
    name = value.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise CommandError(f"{value!r} is not {what} (1 to 100 printable characters, "
                           f"like {example})", ExitCode.USAGE)
    return name


def cmd_cases_assign(context: Context) -> int:
    from db.lifecycle import assign_case

    # The name is what `cases list --assignee` matches.
    name = _name_argument(context.args.name, "a specialist name", "maria")
    context.connect()
    assignment = assign_case(context.args.tracking_number, name, context.actor, _now())
    tracking_number = assignment.case.tracking_number
    if not assignment.changed:
        context.print(f"{tracking_number} is already assigned to {name}; nothing changed")
        return ExitCode.OK
    context.print(f"{tracking_number} assigned to {assignment.case.assignee}")
    return ExitCode.OK


def cmd_cases_note(context: Context) -> int:
    from db.lifecycle import add_note

    text = _text_argument(context.args.text, "note text")
    context.connect()
    case = add_note(context.args.tracking_number, text, context.actor, _now())
    context.print(f"note added to {case.tracking_number} (internal, not emailed)")
    return ExitCode.OK


def cmd_cases_reply(context: Context) -> int:
    from db.lifecycle import send_reply
    from inbox_worker.notices import specialist_reply

    text = _text_argument(context.args.text, "reply text")
    context.connect()
    now = _now()
    case = send_reply(context.args.tracking_number, context.actor, now,
                      specialist_reply(context.settings, text, now))
    context.print(f"reply added to {case.tracking_number}; {_deliver_now(context)}")
    return ExitCode.OK


def cmd_disputes_list(context: Context) -> int:
    from db.lookup import list_disputes
    from db.views import dispute_json

    context.connect()
    return context.print_listing(
        list_disputes(),
        lambda d: {"tracking_number": d.case.tracking_number,
                   "customer_email": d.case.customer_email, **dispute_json(d)},
        "no disputes", ["CASE", "INVOICE", "DISPUTED", "STATUS", "APPROVED", "CUSTOMER"],
        lambda d: [d.case.tracking_number, d.invoice_number or "-",
                   f"{d.disputed_amount if d.disputed_amount is not None else '-'} "
                   f"{d.currency or ''}".strip(), d.status,
                   str(d.approved_amount) if d.approved_amount is not None else "-",
                   d.case.customer_email])


def cmd_disputes_review(context: Context) -> int:
    """`disputes review`: mark the dispute under review and email the customer once."""
    from db.lifecycle import review_dispute
    from inbox_worker.notices import dispute_under_review

    context.connect()
    args = context.args
    now = _now()
    review = review_dispute(args.tracking_number, context.actor, now, args.note,
                            notify=dispute_under_review(context.settings, args.note, now))
    tracking_number = review.dispute.case.tracking_number
    if not review.started:
        # Asking twice is harmless: the customer was told once, and is not told again.
        # A --note given now is not sent either: say how to send it, so it is not lost.
        hint = (f" (to tell the customer more, use cases reply {tracking_number})"
                if args.note else "")
        context.print(f"{tracking_number} dispute is already under_review; nothing changed, "
                      f"no email sent{hint}")
        return ExitCode.OK
    moved = "; case now in_progress" if review.case_moved else ""
    context.print(f"{tracking_number} dispute under_review{moved}; {_deliver_now(context)}")
    return ExitCode.OK


# An amount with one meaning only: 1250, 1250.5, 1250.00 or 1,250.00 (commas only as
# thousands separators, in groups of three). 1.000,00 or 1,25 could be read two ways, and
# NaN, inf, -5 or 1e3 are not amounts a specialist credits.
AMOUNT_FORM = r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]{1,2})?"


def _parse_amount(text: str) -> Decimal:
    """`--amount` as an exact Decimal; anything ambiguous is a usage error."""
    value = text.strip()
    if not re.fullmatch(AMOUNT_FORM, value):
        raise CommandError(f"not an amount: {text!r} (use digits with an optional . and up "
                           "to 2 decimals, like 1250.00 or 1,250.00)", ExitCode.USAGE)
    return Decimal(value.replace(",", ""))


def cmd_disputes_amend(context: Context) -> int:
    from db.lifecycle import amend_dispute

    args = context.args
    if args.amount is None and args.currency is None and args.invoice is None:
        raise CommandError("say what to correct: --amount, --currency and/or --invoice",
                           ExitCode.USAGE)
    currency = None
    if args.currency is not None:
        currency = args.currency.strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise CommandError(f"not a currency code: {args.currency!r} (three letters, "
                               "like EUR)", ExitCode.USAGE)
    invoice = None if args.invoice is None else _text_argument(args.invoice, "invoice").strip()
    if invoice is not None and (len(invoice) > 64 or not invoice.isprintable()):
        raise CommandError("an invoice number is 1 to 64 printable characters",
                           ExitCode.USAGE)
    amount = None if args.amount is None else _parse_amount(args.amount)
    context.connect()
    done = amend_dispute(args.tracking_number, context.actor, _now(), amount=amount,
                         currency=currency, invoice_number=invoice)
    tracking_number = done.dispute.case.tracking_number
    if not done.changes:
        context.print(f"{tracking_number} dispute already says so; nothing changed")
        return ExitCode.OK
    changed = "; ".join(f"{field} {before if before is not None else '-'} -> {after}"
                        for field, (before, after) in done.changes.items())
    context.print(f"{tracking_number} dispute amended: {changed} (the customer is not "
                  f"emailed)")
    return ExitCode.OK


def cmd_disputes_decide(context: Context) -> int:
    from db.lifecycle import decide_dispute
    from db.models import DisputeStatus
    from inbox_worker.notices import dispute_decided

    args = context.args
    amount = _parse_amount(args.amount) if args.amount is not None else None
    note = _text_argument(args.note, "note (the reason the customer reads)")
    context.connect()
    now = _now()
    dispute = decide_dispute(args.tracking_number, DisputeStatus(args.decision), context.actor,
                             now, note, amount, notify=dispute_decided(context.settings, now),
                             revise=args.revise)
    context.print(f"{dispute.case.tracking_number} dispute {dispute.status}"
                  f"{f', approved {dispute.approved_amount}' if dispute.approved_amount else ''}"
                  f"; {_deliver_now(context)}")
    return ExitCode.OK


# ---- admin commands ---------------------------------------------------------------------


def cmd_outbox_list(context: Context) -> int:
    from db.outbox import pending_messages
    from db.views import message_json

    def tracking(message: Any) -> str | None:
        return message.case.tracking_number if message.case else None

    context.connect()
    return context.print_listing(
        pending_messages(),
        # "tracking_number" is the key every other listing uses; "case" stays for the
        # scripts that read it (db/views.py: fields are added, never renamed).
        lambda message: {"case": tracking(message), "tracking_number": tracking(message),
                         **message_json(message)},
        "outbox empty: every reply was delivered",
        ["CASE", "KIND", "TO", "STATE", "ATTEMPTS", "LAST ERROR"],
        lambda message: [tracking(message) or "-", message.kind, message.recipients,
                         message.delivery_state, str(message.attempts),
                         message.last_error[:60] or "-"])


def cmd_outbox_retry(context: Context) -> int:
    from db.outbox import retry_now

    context.connect()
    count = retry_now(_now())
    if not count:
        context.print("outbox empty: nothing to retry")
        return ExitCode.OK
    report = _deliver_pending(context)
    context.print(f"{count} replies due now; {report.sent} sent, {report.failed} failed "
                  f"(kept: see billing-inbox outbox list)")
    return ExitCode.DELIVERY_FAILED if report.failed else ExitCode.OK


def cmd_quarantine_list(context: Context) -> int:
    from db.lookup import list_quarantined
    from db.views import quarantined_json

    context.connect()
    return context.print_listing(
        list_quarantined(), quarantined_json, "quarantine empty",
        ["ID", "WHEN", "FROM", "SUBJECT", "REASON"],
        lambda item: [str(item.id), item.created_at.strftime("%Y-%m-%d %H:%M"),
                      item.sender or "-", item.subject[:40], item.reason[:60]])


def cmd_quarantine_release(context: Context) -> int:
    from inbox_worker.quarantine import release

    context.connect()
    context.print(release(context.settings, context.args.id, _now()))
    return ExitCode.OK


def cmd_customers_link(context: Context) -> int:
    from db.lifecycle import link_address
    from db.lookup import account_of, addresses_of_account

    address = context.args.address.strip()
    local, at, domain = address.rpartition("@")
    if not (local and at and "." in domain) or any(char.isspace() for char in address):
        raise CommandError(f"{address!r} is not an email address (like ap@acme.com)",
                           ExitCode.USAGE)
    # Linking grants sight of the account's cases: a near-miss name is a second account.
    account = _name_argument(context.args.account, "an account name", "WIDGETS-001")
    context.connect()
    previous = account_of(address)
    link = link_address(address, account, _now())
    sharing = addresses_of_account(link.account)
    moved = f" (was linked to {previous})" if previous not in (None, link.account) else ""
    context.print(f"{link.email} linked to account {link.account}{moved}; "
                  f"{_count(len(sharing), 'address now sees', 'addresses now see')} its cases: "
                  f"{', '.join(sharing)}")
    return ExitCode.OK


def cmd_customers_list(context: Context) -> int:
    from db.lookup import linked_addresses

    context.connect()
    return context.print_listing(
        linked_addresses(),
        lambda link: {"address": link.email, "account": link.account,
                      "linked_at": link.created_at.isoformat()},
        "no linked addresses: each address sees only its own cases",
        ["ACCOUNT", "ADDRESS", "LINKED"],
        lambda link: [link.account, link.email, link.created_at.strftime("%Y-%m-%d %H:%M")])


def cmd_customers_unlink(context: Context) -> int:
    from db.lifecycle import unlink_address
    from db.lookup import addresses_of_account

    context.connect()
    link = unlink_address(context.args.address.strip())
    left = addresses_of_account(link.account)
    context.print(f"{link.email} no longer sees the cases of account {link.account}"
                  f"{'; still linked: ' + ', '.join(left) if left else ''}")
    return ExitCode.OK


def cmd_config_show(context: Context) -> int:
    values = context.settings.redacted()
    if context.args.json:
        context.print_json(values)
        return ExitCode.OK
    rows = [[f"BILLING_INBOX_{name.upper()}", str(values[name]) or '""', help_text]
            for name, help_text in SETTINGS.items()]
    context.print(_table(rows, ["SETTING", "VALUE", "MEANING"]))
    return ExitCode.OK


def cmd_db_init(context: Context) -> int:
    from db.schema import schema_version

    context.connect()
    context.print(f"schema at version {schema_version()} in "
                  f"{context.settings.redacted()['database_url']}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
