"""`billing-inbox classify` (a dry run that writes nothing) and `billing-inbox evaluate`."""

from __future__ import annotations

import io
import json
import sys

from cli import main
from tests.mailfactory import customer_email, dsn_bounce

KEYS = {"file", "route", "reason", "process", "confidence", "invoice_number", "amount",
        "currency", "account_number", "requested_date"}


def _run(*argv: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=stdout, stderr=stderr)
    return code, stdout.getvalue(), stderr.getvalue()


def test_classify_json_gives_one_object_per_file_and_writes_nothing(clean_directory):
    correction = clean_directory / "correction.eml"
    correction.write_bytes(customer_email(
        "Double charge", "Invoice #48213 charges our licence twice. Please refund the "
        "duplicate $1,250.00."))
    bounce = clean_directory / "bounce.eml"
    bounce.write_bytes(dsn_bounce())
    before = sorted(path.name for path in clean_directory.iterdir())

    code, out, _ = _run("classify", str(correction), str(bounce), "--json")

    assert code == 0
    first, second = (json.loads(line) for line in out.splitlines())
    assert set(first) >= KEYS and set(second) >= KEYS
    assert first["route"] == "new_case" and first["reason"] is None
    assert first["process"] == "charge_correction"
    assert (first["invoice_number"], first["amount"], first["currency"]) == (
        "48213", "1250.00", "USD")
    assert second["route"] == "ignore" and second["process"] is None
    assert "delivery-status" in second["reason"]
    assert sorted(path.name for path in clean_directory.iterdir()) == before


def test_classify_reads_stdin_and_explains(clean_directory, monkeypatch):
    raw = customer_email("Account", "Please do NOT suspend us, we just need two more weeks "
                         "to pay invoice INV-2026-00412.")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))

    code, out, _ = _run("classify", "-", "--explain")

    assert code == 0
    assert "new_case" in out and "extend_due_date" in out
    assert "INV-2026-00412" in out
    assert len(out.splitlines()) > 3  # the explanation follows the summary


def test_evaluate_reports_per_process_scores_on_the_heldout_examples(clean_directory):
    code, out, _ = _run("evaluate")

    assert code == 0
    for process in ("extend_due_date", "charge_correction", "general"):
        assert process in out
    assert "macro" in out.lower()


def test_evaluate_a_folder_of_labelled_eml_files(clean_directory):
    folder = clean_directory / "labelled"
    folder.mkdir()
    (folder / "a.eml").write_bytes(customer_email(
        "Resend", "Could you resend the PDF of invoice 7781? Our auditor needs it."))
    (folder / "b.eml").write_bytes(customer_email(
        "Winter", "We close for the winter: please pause billing until March."))
    (folder / "labels.jsonl").write_text(
        '{"file": "a.eml", "label": "invoice_copy", "invoice_number": "7781", '
        '"amount": null, "currency": null}\n'
        '{"file": "b.eml", "label": "suspend_billing", "invoice_number": null, '
        '"amount": null, "currency": null}\n')

    code, out, _ = _run("evaluate", str(folder), "--json")

    assert code == 0
    report = json.loads(out)
    assert report["examples"] == 2
    assert report["accuracy"] == 1.0


def test_evaluate_a_path_that_is_not_a_folder_says_so(clean_directory):
    code, _, err = _run("evaluate", str(clean_directory / "nonexistent"))

    assert code == 1
    assert "nonexistent is not a folder" in err and "labels.jsonl" in err
