"""Several worker processes on one mailbox and one PostgreSQL: every email exactly once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from db.database import connect_database
from db.models import Case, Direction, Message
from inbox_worker.training import load_classifier
from tests.mailfactory import customer_email, out_of_office
from tests.servers import append_messages, folder_counts, process_is_running

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = [
    ("More time please", "Could we pay invoice INV-2026-{n:05d} two weeks late?"),
    ("Wrong charge", "Invoice #{n} charges us twice for one licence, refund $99.00 please."),
    ("Copy", "Please resend the PDF of invoice {n}."),
]


def _emails(count: int) -> list[bytes]:
    emails = []
    for n in range(count):
        subject, body = REQUESTS[n % len(REQUESTS)]
        emails.append(customer_email(subject, body.format(n=n), sender=f"c{n}@example.org",
                                     message_id=f"<scale-{n}@example.org>"))
    return emails


def _environment(account, smtp_server, database_url: str, model_dir: str, **extra) -> dict:
    return {
        **os.environ,
        "BILLING_INBOX_MAILBOX_URL": account.url("INBOX"),
        "BILLING_INBOX_SMTP_URL": smtp_server.url,
        "BILLING_INBOX_DATABASE_URL": database_url,
        "BILLING_INBOX_FROM_ADDRESS": "billing@acme-billing.example",
        "BILLING_INBOX_MODEL_DIR": model_dir,
        "BILLING_INBOX_BATCH_SIZE": "10",
        **{f"BILLING_INBOX_{key.upper()}": str(value) for key, value in extra.items()},
    }


def _billing_inbox(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


@pytest.fixture
def trained(make_settings, model_dir):
    """Train once up front so the workers race on emails, not on training."""
    load_classifier(make_settings())
    return model_dir


def _problems(stderr: str) -> str:
    """The worker log without its one-line-per-email INFO lines: the failure's own story."""
    return "\n".join(line for line in stderr.splitlines()
                     if " INFO " not in line or "message_id=" not in line)[-6000:]


def _assert_exactly_once(postgres_url: str, smtp_server, expected_ids: set[str]) -> None:
    connect_database(postgres_url)
    inbound = [message.message_id for message in
               Message.select().where(Message.direction == Direction.INBOUND,
                                      Message.case.is_null(False))]
    assert sorted(inbound) == sorted(expected_ids)  # one case per email, none twice
    assert Case.select().count() == len(expected_ids)
    smtp_server.wait_for(len(expected_ids), timeout=30)
    time.sleep(0.5)  # a second, different acknowledgement would have arrived by now
    acknowledgement_ids: dict[str, set[str]] = {}
    for captured in smtp_server.messages:
        reply = captured.message
        acknowledgement_ids.setdefault(reply["In-Reply-To"], set()).add(reply["Message-ID"])
    # Exactly one acknowledgement per email. The same acknowledgement (same Message-ID)
    # may reach the server twice when a worker dies between the server's 250 and marking
    # it sent: delivery is at-least-once, and mail clients merge identical Message-IDs.
    assert set(acknowledgement_ids) == expected_ids
    assert all(len(ids) == 1 for ids in acknowledgement_ids.values())


@pytest.mark.parametrize("workers", [2, 4])
def test_concurrent_workers_make_one_case_and_one_reply_per_email(
    workers, imap_account, smtp_server, postgres_url, trained
):
    emails = _emails(60)
    append_messages(imap_account, "INBOX", [*emails, out_of_office()])
    env = _environment(imap_account, smtp_server, postgres_url, trained)

    result = subprocess.run(_billing_inbox("run", "--once", "--workers", str(workers)),
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, _problems(result.stderr)
    _assert_exactly_once(postgres_url, smtp_server, {f"<scale-{n}@example.org>"
                                                     for n in range(60)})
    assert folder_counts(imap_account)["INBOX"] == 0


def test_copies_of_one_email_raced_by_four_workers_open_one_case(
    imap_account, smtp_server, postgres_url, trained
):
    # The same Message-ID under many UIDs (a forwarding loop, a list that delivers twice),
    # spread over the workers' batches: they race to record it, and the database decides.
    copies = [customer_email("Copy please", "Please resend invoice 4471 as a PDF.",
                             sender="pat@example.org", message_id="<copied@example.org>")] * 40
    append_messages(imap_account, "INBOX", copies)
    env = _environment(imap_account, smtp_server, postgres_url, trained, batch_size=5)

    result = subprocess.run(_billing_inbox("run", "--once", "--workers", "4"), env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, _problems(result.stderr)
    _assert_exactly_once(postgres_url, smtp_server, {"<copied@example.org>"})
    assert "outcome=quarantined" not in result.stderr
    assert result.stderr.count("outcome=duplicate") == 39
    assert folder_counts(imap_account) == {"INBOX": 0, "Processed": 40, "Quarantine": 0}


def test_worker_killed_mid_batch_leaves_nothing_lost_or_doubled(
    imap_account, smtp_server, postgres_url, trained
):
    emails = _emails(200)
    append_messages(imap_account, "INBOX", emails)
    env = _environment(imap_account, smtp_server, postgres_url, trained,
                       claim_lease_seconds=2)
    victim = subprocess.Popen(_billing_inbox("run"), env=env, cwd=ROOT,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_first_case(postgres_url)  # it is working through the batches now
    finally:
        os.killpg(victim.pid, signal.SIGKILL)  # no clean shutdown: claims stay behind
        victim.wait()
    assert folder_counts(imap_account)["INBOX"] > 0, "killed too late to prove anything"
    time.sleep(2.5)  # the dead worker's claims run out

    result = subprocess.run(_billing_inbox("run", "--once", "--workers", "2"), env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, _problems(result.stderr)
    _assert_exactly_once(postgres_url, smtp_server, {f"<scale-{n}@example.org>"
                                                     for n in range(200)})
    assert folder_counts(imap_account)["INBOX"] == 0


def _wait_for_first_case(postgres_url: str, timeout: float = 120) -> None:
    """Return once a worker has committed its first batch (of 10: many are still to come)."""
    connect_database(postgres_url)
    deadline = time.monotonic() + timeout
    while not Case.select().exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no case was opened")
        time.sleep(0.005)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()]


def test_the_sender_and_reading_processes_end_when_their_worker_is_killed(
    imap_account, smtp_server, tmp_path, trained
):
    append_messages(imap_account, "INBOX", _emails(1))
    env = _environment(imap_account, smtp_server, f"sqlite:///{tmp_path}/cases.db", trained)
    worker = subprocess.Popen(_billing_inbox("run"), env=env, cwd=ROOT,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        smtp_server.wait_for(1, timeout=60)  # serving, and its sender has sent a reply
        helpers = _children(worker.pid)
        # The sender and the reading process (both forked: no resource tracker).
        assert len(helpers) == 2, "the worker lacks its sender or its reading process"
        worker.kill()  # SIGKILL: no clean shutdown, its helpers are not told to stop
        worker.wait()
        deadline = time.monotonic() + 15
        while any(map(process_is_running, helpers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(process_is_running, helpers)), "a helper process outlived its worker"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)


def test_each_worker_logs_one_line_per_email_under_its_own_name(
    imap_account, smtp_server, postgres_url, trained
):
    append_messages(imap_account, "INBOX", _emails(40))
    env = _environment(imap_account, smtp_server, postgres_url, trained)

    result = subprocess.run(_billing_inbox("run", "--once", "--workers", "2"), env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, _problems(result.stderr)
    lines = [line for line in result.stderr.splitlines() if "message_id=<scale-" in line]
    assert sorted(line.split("message_id=")[1].split()[0] for line in lines) == sorted(
        f"<scale-{n}@example.org>" for n in range(40))
    # Each line names the worker that handled the email.
    assert {line.split()[3] for line in lines} <= {"worker-1", "worker-2"}
