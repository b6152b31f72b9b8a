"""Reading (parse + classify) in the worker's own process or in forked reading processes."""

from __future__ import annotations

import logging
import mailbox
import os
import pickle
import signal
import time
from contextlib import closing

import pytest

from db.lookup import list_cases
from inbox_worker import runner
from inbox_worker.pipeline import Worker
from inbox_worker.reading import ReaderDied, ReadingProcesses
from inbox_worker.sources import open_source
from inbox_worker.training import load_classifier
from tests.mailfactory import customer_email, out_of_office
from tests.servers import process_is_running

REQUESTS = [
    ("Copy please", "Please resend invoice 4471 as a PDF."),
    ("Pause billing", "Please suspend billing on our account from December until March."),
    ("Charged twice", "You charged us twice on invoice INV-2026-0042, 120.00 EUR each."),
    ("We are back", "We reopened this week, please resume billing on our account."),
    ("New card", "Please charge our new credit card from now on, the old one expired."),
]


@pytest.fixture(scope="module")
def classifier(model_dir: str):
    from inbox_worker.settings import Settings

    return load_classifier(Settings(model_dir=model_dir))


def _fill_inbox(tmp_path) -> None:
    inbox = mailbox.Maildir(tmp_path / "inbox", factory=None, create=True)
    for number, (subject, body) in enumerate(REQUESTS):
        inbox.add(customer_email(subject, body, sender=f"customer{number}@example.org",
                                 message_id=f"<reading-{number}@example.org>"))
    inbox.add(out_of_office())


@pytest.mark.parametrize("reading_processes", [0, 1, 2])
def test_every_way_of_reading_gives_each_email_the_same_case(
    make_settings, database, tmp_path, reading_processes
):
    # Batches of two, so that with reading processes later batches are read ahead.
    settings = make_settings(database_url=database, batch_size=2,
                             reading_processes=reading_processes)
    _fill_inbox(tmp_path)

    summary = runner.run_once(Worker(settings, load_classifier(settings)))

    assert summary.outcomes == {"case_opened": 5, "ignored_automated": 1}
    assert summary.sent == 5
    assert sorted((case.customer_email, case.process) for case in list_cases()) == [
        ("customer0@example.org", "invoice_copy"),
        ("customer1@example.org", "suspend_billing"),
        ("customer2@example.org", "charge_correction"),
        ("customer3@example.org", "resume_billing"),
        ("customer4@example.org", "update_payment_method"),
    ]


def test_a_reading_process_that_dies_loses_no_email(make_settings, database, tmp_path, caplog):
    settings = make_settings(database_url=database, batch_size=2)
    _fill_inbox(tmp_path)
    worker = Worker(settings, load_classifier(settings))
    reader = ReadingProcesses(1, worker.classifier, settings.from_address)
    (pid,) = reader.pids
    os.kill(pid, signal.SIGKILL)  # a real death, as the kernel's OOM killer would cause
    deadline = time.monotonic() + 10
    while process_is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    caplog.set_level(logging.ERROR, logger="inbox_worker.pipeline")

    try:
        with closing(open_source(settings)) as source:
            summary = worker.process_available(source, lambda reserved: None, reader)
        with pytest.raises(ReaderDied):
            reader.check_alive()  # what makes a serving worker start new ones
    finally:
        reader.close()

    assert summary.outcomes == {"case_opened": 5, "ignored_automated": 1}
    assert len(list_cases()) == 5
    assert "a reading process ended; reading this batch in the worker" in caplog.text


def test_a_living_reading_process_passes_the_check(classifier):
    reader = ReadingProcesses(1, classifier, "billing@acme-billing.example")
    try:
        reader.check_alive()
    finally:
        reader.close()


def test_a_classification_survives_the_trip_from_a_reading_process(classifier):
    from classifiers.model import ClassifierInput
    from inbox_worker.clock import utc_now

    classification = classifier.classify(
        ClassifierInput("Invoice 4471", "Please resend invoice 4471 as a PDF.", utc_now()))

    copy = pickle.loads(pickle.dumps(classification))

    assert copy == classification
    assert copy.fields.invoice_number == "4471"
    with pytest.raises(TypeError):
        copy.scores["general"] = 1.0  # still read-only

