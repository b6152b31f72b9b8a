"""Quote and signature stripping: history goes, everything the customer wrote now stays.

Fixture replies go through `parse_email` (so charsets and CRLF are part of the test);
the attribution-line and false-cut cases call `new_text` on plain strings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from inbox_worker.message import InboundEmail, parse_email
from inbox_worker.quoting import new_text

EMAILS = Path(__file__).parent / "emails"
OWN_ADDRESS = "billing@acme-billing.example"
RECEIVED_AT = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def parse_fixture(name: str) -> InboundEmail:
    return parse_email((EMAILS / name).read_bytes(), OWN_ADDRESS, RECEIVED_AT)


# --- replies from real clients ------------------------------------------------------------


def test_gmail_reply_keeps_multi_paragraph_new_text_and_cuts_at_the_attribution() -> None:
    email = parse_fixture("reply_gmail.eml")

    assert email.text == (
        "Hi,\n\n"
        "Yes, 27 March 2026 works for us as the new due date for INV-2026-00231.\n\n"
        "Could you also confirm that no late fee will be added in the meantime?\n\n"
        "Thanks,\nPriya"
    )


def test_gmail_attribution_wrapped_over_two_lines_is_cut_entirely() -> None:
    email = parse_fixture("reply_gmail_wrapped.eml")

    assert email.text == (
        "One more thing: please send the revised invoice to ap@lumen-analytics.example."
    )


def test_outlook_reply_is_cut_at_the_rule_above_the_header_block() -> None:
    email = parse_fixture("reply_outlook.eml")

    assert email.text == (
        "Hi,\n\n"
        "The seat count on INV-2026-00318 should be 18, not 25. The admin panel\n"
        "screenshot is attached to my first email.\n\n"
        "Mark Li\nOperations, Brightline Media"
    )


def test_german_outlook_reply_is_cut_at_von_gesendet() -> None:
    email = parse_fixture("reply_outlook_german.eml")

    assert email.text == (
        "Guten Morgen,\n\n"
        "unsere UID ist ATU12345678, die Gutschrift für die Umsatzsteuer von 412,00 EUR "
        "bitte an buchhaltung@gruber-holzbau.example senden.\n\n"
        "Mit freundlichen Grüßen\nFlorian Grüber"
    )


def test_apple_mail_reply_drops_the_quote_and_the_mobile_footer() -> None:
    email = parse_fixture("reply_apple_mail.eml")

    assert email.text == (
        "Thank you! The credit memo for INV-2026-00318 looks right.\n\n"
        "Please close the case.\n\n"
        "Hannah"
    )


def test_original_message_rule_cuts_the_history() -> None:
    email = parse_fixture("reply_original_message.eml")

    assert email.text == (
        "We will pay invoice 20931 in full on March 20.\n\nFrank Delgado\nDelgado Auto Body"
    )


def test_inline_answers_between_angle_quotes_are_all_kept() -> None:
    email = parse_fixture("reply_angle_quoted.eml")

    assert "The card payment of $1,845.00 from 10 February." in email.text
    assert "No, please turn autopay off." in email.text
    assert "Which payment" not in email.text
    assert "autopay on?" not in email.text


def test_signature_is_cut_at_dash_dash_space() -> None:
    email = parse_fixture("signature.eml")

    assert email.text == (
        "Hello,\n\n"
        "please charge our new Visa card from April on. I will enter it through the\n"
        "payment link you send.\n\n"
        "Best regards,\nMarta"
    )
    assert "Kowalska Studio" in email.full_text


def test_full_text_keeps_the_history_for_case_lookups() -> None:
    email = parse_fixture("reply_outlook.eml")

    assert "[BIL-000141] Invoice charge correction received" in email.full_text


# --- attribution lines in other languages ---------------------------------------------------

NEW_TEXT = "Vielen Dank, das passt.\n\nDer neue Termin ist der 31. März."


@pytest.mark.parametrize(
    "attribution",
    [
        # Gmail, German
        "Am Mo., 2. März 2026 um 10:12 Uhr schrieb Acme Billing <billing@acme-billing.example>:",
        # Apple Mail, German
        "Am 02.03.2026 um 10:12 schrieb Acme Billing <billing@acme-billing.example>:",
        # Thunderbird, German
        "Am 02.03.26 um 10:12 schrieb Acme Billing:",
        # Gmail, French (note the space before the colon)
        "Le lun. 2 mars 2026 à 10:12, Acme Billing <billing@acme-billing.example> a écrit :",
        # Gmail, Spanish
        "El lun, 2 mar 2026 a las 10:12, Acme Billing (<billing@acme-billing.example>) escribió:",
        # Apple Mail, English
        "On 2 Mar 2026, at 10:12, Acme Billing <billing@acme-billing.example> wrote:",
    ],
    ids=["de-gmail", "de-apple", "de-thunderbird", "fr-gmail", "es-gmail", "en-apple"],
)
def test_attribution_line_and_quote_are_cut(attribution: str) -> None:
    text = f"{NEW_TEXT}\n\n{attribution}\n\n> Sehr geehrter Kunde,\n> Ihre Rechnung ist fällig.\n"

    assert new_text(text) == NEW_TEXT


@pytest.mark.parametrize(
    "header_block",
    [
        "De : Acme Billing <billing@acme-billing.example>\n"
        "Envoyé : lundi 2 mars 2026 10:12\n"
        "À : Céline Dubois <celine.dubois@atelier-lumiere.example>\n"
        "Objet : [BIL-000134] Nous avons reçu votre demande",
        "De: Acme Billing <billing@acme-billing.example>\n"
        "Enviado: lunes, 2 de marzo de 2026 10:12\n"
        "Para: Lucía Fernández <lucia@ferreteria-sol.example>\n"
        "Asunto: [BIL-000135] Hemos recibido su solicitud",
        "*From:* Acme Billing <billing@acme-billing.example>\n"
        "*Sent:* Monday, March 2, 2026 10:12 AM\n"
        "*To:* Mark Li <mark.li@brightline-media.example>\n"
        "*Subject:* [BIL-000141] Invoice charge correction received",
    ],
    ids=["fr-outlook", "es-outlook", "en-outlook-bold"],
)
def test_outlook_header_blocks_in_other_languages_are_cut(header_block: str) -> None:
    text = f"Merci.\n\n________________________________\n{header_block}\n\nBonjour,\n"

    assert new_text(text) == "Merci."


# --- no false cuts of real content -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # "From:" in a sentence.
        "Hello,\n\nFrom: what I can see in the portal, invoice 7781 was paid twice.\n"
        "Please refund one of the payments.\n\nTom",
        # "wrote:" inline, on a line that starts with "On".
        "On Monday we wrote: please cancel the duplicate charge on invoice 20114.\n"
        "Nothing has happened since.\n\nCarrie",
        'We called on Monday and your colleague wrote: "we will credit the late fee".\n'
        "The credit is still missing on invoice 3308.",
        # "On ... wrote:" wrapped over two lines, with the quote going on after the colon.
        "On Monday, after my call, your colleague Sarah\n"
        'wrote: "the late fee will be removed". It is still on invoice 3308.',
        # Dashes that are not a signature separator.
        "Invoice 7781 --- $59.00 charged twice\nInvoice 7782 --- correct\n\nThanks",
        # A request for a different sender and date, written as a list.
        "Please change the billing contact on account ACC-30418:\n\n"
        "From: Jane Doe <jane.doe@x.com>\n"
        "To: Mark Li <mark.li@x.com>\n"
        "Date: effective 1 April 2026\n\n"
        "Thank you,\nJane",
    ],
    ids=[
        "from-in-sentence",
        "on-monday-we-wrote-inline",
        "colleague-wrote-inline",
        "wrote-in-wrapped-prose",
        "dashes-in-a-list",
        "from-to-date-as-a-request",
    ],
)
def test_real_content_that_resembles_a_quote_marker_is_not_cut(text: str) -> None:
    assert new_text(text) == text


def test_message_without_history_is_returned_whole() -> None:
    text = "Please suspend billing for account ACC-55012\nfrom 1 April to 30 April 2026."

    assert new_text(f"\n{text}\n\n") == text


def test_signature_without_trailing_space_is_also_cut() -> None:
    # Many clients strip the trailing space of "-- " when they save a draft.
    text = "Please resend invoice 48213.\n\n--\nMargaret Osei\nPractice Manager"

    assert new_text(text) == "Please resend invoice 48213."
