"""`billing-inbox demo`: the real pipeline over sample emails, with nothing to set up.

It always uses the embedded defaults (a SQLite file and Maildirs in the working
directory), never the configured servers, so trying it cannot touch real mail. Run it
again and the same emails come back as duplicates: nothing is doubled.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import mailbox
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from db.database import connect_database
from db.lookup import find_case_by_message_ids
from db.models import Case, Direction, Message
from inbox_worker.pipeline import Worker
from inbox_worker.runner import run_once
from inbox_worker.settings import Settings
from inbox_worker.tables import format_table
from inbox_worker.training import load_classifier, needs_training

SAMPLES_DIR = Path(__file__).with_name("samples")


def run_demo(user_settings: Settings, say: Callable[[str], None]) -> None:
    """Write the samples to the local inbox, process them, and show what came of it."""
    settings = dataclasses.replace(
        Settings(), model_dir=user_settings.model_dir, log_level=user_settings.log_level
    )
    samples = sorted(SAMPLES_DIR.glob("*.eml"))
    inbox_path = Path(settings.mailbox.path)
    inbox_path.parent.mkdir(parents=True, exist_ok=True)
    with closing(mailbox.Maildir(inbox_path, factory=None, create=True)) as inbox:
        for sample in samples:
            inbox.add(sample.read_bytes())
    say(f"Wrote {len(samples)} sample customer emails to the Maildir {inbox_path}/")
    connect_database(settings.database_url)
    say("Training the classifier on the packaged examples (first run, a few seconds)..."
        if needs_training(settings) else "Loading the classifier...")
    worker = Worker(settings, load_classifier(settings))
    summary = run_once(worker)
    say(f"Processed: {summary.line()}")
    if summary.outcomes["duplicate"]:
        say("(Emails seen before - same Message-ID - are recognised: nothing is doubled.)")
    say("")
    cases = _sample_cases(samples)
    _show_cases(cases, say)
    _show_acknowledgement(cases, say)
    say(f"\nCases are in {settings.database_url}; replies in the Maildir "
        f"{settings.smtp.path}/. Try: .venv/bin/billing-inbox cases list")


def _sample_cases(samples: list[Path]) -> list[Case]:
    cases: dict[int, Case] = {}
    for sample in samples:
        parsed = email.message_from_bytes(sample.read_bytes(), policy=email.policy.default)
        case = find_case_by_message_ids([str(parsed.get("Message-ID", "")).strip()])
        if case is not None:
            cases[case.id] = case
    return list(cases.values())


def _show_cases(cases: list[Case], say: Callable[[str], None]) -> None:
    rows = [[case.tracking_number, case.process, case.customer_email, case.subject[:40]]
            for case in cases]
    say(format_table(rows, ["CASE", "PROCESS", "CUSTOMER", "SUBJECT"]))


def _show_acknowledgement(cases: list[Case], say: Callable[[str], None]) -> None:
    disputed = [case for case in cases if case.process == "charge_correction"] or cases
    if not disputed:
        return
    reply = (
        Message.select()
        .where(Message.case == disputed[0], Message.direction == Direction.OUTBOUND)
        .order_by(Message.id)
        .first()
    )
    if reply is None:
        return
    parsed = email.message_from_bytes(bytes(reply.raw), policy=email.policy.default)
    body = parsed.get_body(preferencelist=("plain",))
    say("\nThe acknowledgement the customer received:\n" + "-" * 72)
    for header in ("From", "To", "Subject", "In-Reply-To"):
        say(f"{header}: {parsed[header]}")
    say("")
    say(body.get_content().rstrip() if body else reply.body_text)
    say("-" * 72)
