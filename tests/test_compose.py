"""Replies are safe to send: customer text is escaped in HTML and cannot add headers."""

from __future__ import annotations

import email
import email.policy
import shutil
from datetime import UTC, datetime

import pytest
from jinja2 import TemplateSyntaxError

from classifiers.catalog import load_catalog
from inbox_worker.compose import compose_email, thread_subject
from inbox_worker.settings import Settings

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _acknowledgement(customer_name: str, subject: str, recipient: str = "pat@example.org",
                     references: tuple[str, ...] = ("<customer-1@example.org>",)):
    context = {
        "tracking_number": "BIL-000042", "customer_name": customer_name,
        "customer_email": recipient, "from_name": "Billing Team",
        "process": load_catalog()["invoice_copy"],
        "details": {"invoice_number": "<b>7781</b>", "requested_date": None, "amount_text": ""},
        "previous_tracking_number": None,
    }
    draft = compose_email(
        Settings(from_address="billing@acme-billing.example"), kind="acknowledgement",
        template="acknowledgement", context=context, recipient=recipient,
        recipient_name=customer_name, subject=thread_subject(subject, "BIL-000042"),
        in_reply_to=references[-1], references=list(references),
        now=NOW, process="invoice_copy",
    )
    return draft, email.message_from_bytes(draft.raw, policy=email.policy.default)


def test_customer_text_is_escaped_in_the_html_part_and_kept_in_the_text_part():
    _, message = _acknowledgement('<script>alert("x")</script>', "Copy please")

    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;7781&lt;/b&gt;" in html
    assert '<script>alert("x")</script>' in text  # plain text needs no escaping


def test_customer_text_cannot_add_header_lines():
    draft, message = _acknowledgement("Eve\r\nBcc: victim@example.com",
                                      "Hi\r\nBcc: victim@example.com\nX-Evil: 1")

    assert message["Bcc"] is None and message["X-Evil"] is None
    headers = draft.raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in headers and b"\r\nX-Evil:" not in headers
    assert message["Subject"].startswith("Re: [BIL-000042] Hi")
    assert [address.addr_spec for address in message["To"].addresses] == ["pat@example.org"]


def test_reply_subject_keeps_one_token_and_drops_stacked_prefixes():
    assert thread_subject("AW: Re: SV: [BIL-000042] Invoice question", "BIL-000042") == (
        "Re: [BIL-000042] Invoice question")
    assert thread_subject("", None) == "Re: your billing request"


def test_a_new_case_from_a_closed_one_carries_only_its_own_tracking_number():
    # The customer replied to closed case BIL-000016; the new case is BIL-000020.
    assert thread_subject("Re: [BIL-000016] Need a few more weeks", "BIL-000020") == (
        "Re: [BIL-000020] Need a few more weeks")
    assert thread_subject("[ACM-000007] Invoice [BIL-000016] copy", "BIL-000020") == (
        "Re: [BIL-000020] Invoice copy")


def test_names_subjects_and_text_in_any_language_arrive_intact():
    draft, message = _acknowledgement("Zoë Müller-Łukasiewicz", "Factura März – ¿copia?")

    assert str(message["To"]) == "Zoë Müller-Łukasiewicz <pat@example.org>"
    assert message["Subject"] == "Re: [BIL-000042] Factura März – ¿copia?"
    assert "Zoë Müller-Łukasiewicz" in message.get_body(preferencelist=("plain",)).get_content()
    assert "Zoë Müller-Łukasiewicz" in message.get_body(preferencelist=("html",)).get_content()
    assert draft.raw.isascii()  # no 8-bit data for servers without SMTPUTF8


def test_a_long_thread_gives_a_folded_references_header_within_line_limits():
    chain = tuple(f"<message-{number:03d}.{'x' * 40}@mail.example.org>" for number in range(60))
    draft, message = _acknowledgement("Pat", "Still open", references=chain)

    assert message["References"].split() == list(chain)
    assert message["In-Reply-To"] == chain[-1]
    assert all(len(line) <= 998 for line in draft.raw.split(b"\r\n"))


def test_message_ids_that_cannot_be_repeated_in_a_header_are_left_out_of_threading():
    unusable = ("<ü-not-ascii@example.org>", f"<{'y' * 400}@example.org>")
    _, message = _acknowledgement("Pat", "Hello",
                                  references=("<fine@example.org>", *unusable))

    assert message["References"] == "<fine@example.org>"
    assert message["In-Reply-To"] is None  # the customer's own id was unusable


def test_a_template_that_does_not_compile_stops_a_worker_when_it_starts(tmp_path, monkeypatch):
    # The operator learns at start-up, not from the first customer whose email needed it.
    from inbox_worker import compose
    from inbox_worker.pipeline import Worker

    broken = tmp_path / "templates"
    shutil.copytree(compose.templates_dir(), broken)
    (broken / "status_reply.txt").write_text("Your case {% if %} is open.\n")
    monkeypatch.setattr(compose, "templates_dir", lambda: broken)
    compose._environment.cache_clear()
    try:
        with pytest.raises(TemplateSyntaxError) as failed:
            Worker(Settings(), classifier=None)
        assert failed.value.name == "status_reply.txt"
    finally:
        monkeypatch.undo()
        compose._environment.cache_clear()  # the next test gets the real templates
