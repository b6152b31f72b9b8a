"""Field extraction from billing emails: ids, amounts, accounts, requested dates, reasons.

No trained model is needed: extraction is rules over the shared tokenizer.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from classifiers.dates import numeric_date
from classifiers.extract import extract_fields
from classifiers.input_text import make_input_doc
from classifiers.language import create_nlp

# A Wednesday.
RECEIVED = datetime(2026, 3, 11, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Payment for INV-2024-00123 will be late.", "INV-2024-00123"),
        ("Invoice #48213 has the wrong total.", "48213"),
        ("can we pay inv 7781 a bit later?", "7781"),
        ("Regarding invoice number 2024/0456, please resend it.", "2024/0456"),
        ("Bitte senden Sie die Rechnung Nr. 4411 noch einmal.", "4411"),
        ("Necesito una copia de la factura 2031.", "2031"),
        ("Au sujet de la facture n° 7745 du mois dernier.", "7745"),
        ("The invoice you sent last week (#8820) lists the fee twice.", "8820"),
        ("Our bill no. W-2026-03312 looks odd.", "W-2026-03312"),
    ],
)
def test_invoice_number_forms(text: str, expected: str) -> None:
    assert extract_fields(text, RECEIVED).invoice_number == expected


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("You charged us $1,250.00 for the setup.", "1250.00", "USD"),
        ("Der Betrag von 1.250,00 EUR ist falsch.", "1250.00", "EUR"),
        ("The fee was USD 99 this month.", "99", "USD"),
        ("A late fee of £45.50 was added.", "45.50", "GBP"),
        ("We paid €300 twice.", "300", "EUR"),
        ("There is a 99 dollars charge I do not recognise.", "99", "USD"),
        ("Bitte korrigieren Sie die 8 Stunden (CHF 1'200.00).", "1200.00", "CHF"),
        ("Any chance of an extension on the A$4,120.00 invoice?", "4120.00", "AUD"),
        ("Our invoice for CAD 780 is due this week.", "780", "CAD"),
        ("Le montant de 2 340,00 € est dû.", "2340.00", "EUR"),
        ("its like 640 bucks i think", "640", "USD"),
    ],
)
def test_amount_forms_become_decimal_and_iso_currency(
    text: str, amount: str, currency: str
) -> None:
    fields = extract_fields(text, RECEIVED)
    assert (fields.amount, fields.currency) == (Decimal(amount), currency)


def test_invoice_number_date_and_phone_number_are_not_amounts() -> None:
    text = "Invoice 48213 was dated 15/03/2026. Call me on +1 (555) 123-4567 about it."
    fields = extract_fields(text, RECEIVED)
    assert fields.amount is None
    assert fields.invoice_number == "48213"


def test_number_followed_by_currency_after_invoice_word_is_an_amount() -> None:
    fields = extract_fields("The invoice 500 USD is wrong.", RECEIVED)
    assert (fields.amount, fields.currency, fields.invoice_number) == (Decimal(500), "USD", None)


def test_amount_and_invoice_number_side_by_side_are_both_read() -> None:
    fields = extract_fields("Invoice #48213 for $3,480.00 is due on March 5.", RECEIVED)
    assert (fields.invoice_number, fields.amount) == ("48213", Decimal("3480.00"))


def test_disputed_amount_is_preferred_over_prices_in_the_same_email() -> None:
    text = (
        "The agreed price is £380.00 per month, invoiced £420.00. "
        "Please correct the overcharge of £40.00 and reissue."
    )
    assert extract_fields(text, RECEIVED).amount == Decimal("40.00")


def test_unit_price_loses_to_the_total_it_explains() -> None:
    text = "Three extra days at $45/day = $135.00. Please fix."
    assert extract_fields(text, RECEIVED).amount == Decimal("135.00")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Please update account 10-4432.", "10-4432"),
        ("Our acct #A-99812 needs a new card.", "A-99812"),
        ("customer number 55231, new address below", "55231"),
        ("Unsere Kundennummer: K-229104.", "K-229104"),
        ("Numéro client FR-30981", "FR-30981"),
    ],
)
def test_account_number_forms(text: str, expected: str) -> None:
    assert extract_fields(text, RECEIVED).account_number == expected


def test_card_ending_digits_are_not_an_account_number() -> None:
    assert extract_fields("Charge the card ending 8810 please.", RECEIVED).account_number is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Could we pay by March 15?", date(2026, 3, 15)),
        ("Please move the due date to 15/03/2026.", date(2026, 3, 15)),
        ("We can pay on March 15th.", date(2026, 3, 15)),
        ("Suspend billing from 2026-03-15.", date(2026, 3, 15)),
        ("Could we pay next Friday instead?", date(2026, 3, 20)),
        ("We'll pay this Friday.", date(2026, 3, 13)),
        ("will pay by end of the month, sorry", date(2026, 3, 31)),
        ("Can we settle it in two weeks?", date(2026, 3, 25)),
        ("We close on October 12; suspend billing from the 13th of October.", date(2026, 10, 13)),
    ],
)
def test_requested_date_forms_resolved_against_received_day(text: str, expected: date) -> None:
    assert extract_fields(text, RECEIVED).requested_date == expected


def test_past_due_date_is_not_the_requested_date() -> None:
    text = "Invoice 3307 was due on March 2, could we have until April 10?"
    assert extract_fields(text, RECEIVED).requested_date == date(2026, 4, 10)


def test_year_less_date_months_back_means_next_year() -> None:
    received = datetime(2026, 12, 20, tzinfo=UTC)
    text = "Could you amend the due date to January 5?"
    assert extract_fields(text, received).requested_date == date(2027, 1, 5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A part over 12 decides the order.
        ("please wait until 25/03/2026", date(2026, 3, 25)),
        ("please wait until 3/25/2026 for the $500", date(2026, 3, 25)),
        # Both parts 12 or under: "/" with US dollars reads month first...
        ("please wait until 04/05/2026 for the $500", date(2026, 4, 5)),
        # ... any other currency, or none, reads day first; "." always does.
        ("please wait until 04/05/2026 for the 500 EUR", date(2026, 5, 4)),
        ("please wait until 04/05/2026", date(2026, 5, 4)),
        ("bitte warten Sie bis 04.05.2026 ($500)", date(2026, 5, 4)),
    ],
)
def test_ambiguous_numeric_dates_follow_the_documented_rule(text: str, expected: date) -> None:
    assert extract_fields(text, RECEIVED).requested_date == expected


def test_numeric_date_rule_directly() -> None:
    assert numeric_date("04/05/2026", RECEIVED.date(), day_first=False) == (date(2026, 4, 5), True)
    assert numeric_date("04/05", RECEIVED.date(), day_first=True) == (date(2026, 5, 4), False)


def test_german_email_fields() -> None:
    text = (
        "Sehr geehrte Damen und Herren, wir bitten um Zahlungsaufschub für die Rechnung "
        "Nr. 2026-0112 über 1.250,00 EUR bis zum 15. April 2026."
    )
    fields = extract_fields(text, RECEIVED)
    assert fields.invoice_number == "2026-0112"
    assert (fields.amount, fields.currency) == (Decimal("1250.00"), "EUR")
    assert fields.requested_date == date(2026, 4, 15)


def test_spanish_email_fields() -> None:
    text = "¿Podemos pagar la factura F-2026-118 por importe de 890,00 € hasta el 30 de abril?"
    fields = extract_fields(text, RECEIVED)
    assert (fields.invoice_number, fields.amount, fields.currency) == (
        "F-2026-118",
        Decimal("890.00"),
        "EUR",
    )
    assert fields.requested_date == date(2026, 4, 30)


def test_french_email_fields() -> None:
    text = "La facture n° 7745 d'un montant de 2 340,00 € : pouvons-nous payer le 30 avril ?"
    fields = extract_fields(text, RECEIVED)
    assert (fields.invoice_number, fields.amount) == ("7745", Decimal("2340.00"))
    assert fields.requested_date == date(2026, 4, 30)


def test_reason_is_the_sentence_saying_what_is_wrong() -> None:
    text = (
        "Hello,\n\nI run the Pine Street gym.\nInvoice 4411 charged the monthly fee twice, "
        "which is wrong.\nPlease fix it.\n\nThanks, Rob"
    )
    reason = extract_fields(text, RECEIVED).reason
    assert reason == "Invoice 4411 charged the monthly fee twice, which is wrong."


def test_reason_is_cut_to_200_characters_at_a_word() -> None:
    text = "The invoice is wrong because " + "the line items repeat " * 20 + "twice."
    reason = extract_fields(text, RECEIVED).reason
    assert reason is not None
    assert len(reason) <= 200
    assert reason.endswith("…")


def test_polite_request_without_complaint_has_no_reason() -> None:
    assert extract_fields("Please send a copy of invoice 5590.", RECEIVED).reason is None


def test_fields_come_from_the_subject_too() -> None:
    nlp = create_nlp()
    doc = make_input_doc(nlp, "Invoice 10-4418 extension", "Any chance of two more weeks?")
    assert extract_fields(doc, RECEIVED).invoice_number == "10-4418"


def test_quoted_history_fills_in_an_invoice_number_the_new_text_lacks() -> None:
    nlp = create_nlp()
    text = (
        "Could we have until next Wednesday please?\n\n"
        "On Mon, 9 Mar 2026 at 08:00, Billing <ar@example.com> wrote:\n"
        "> Invoice 600213 is due on 17/03/2026."
    )
    fields = extract_fields(make_input_doc(nlp, "Re: Payment reminder", text), RECEIVED)
    assert fields.invoice_number == "600213"
    # A date in the quote is the old due date, never the one asked for.
    assert fields.requested_date == date(2026, 3, 18)


def test_words_the_vocabulary_meets_for_the_first_time_are_found() -> None:
    # Word-class flags of a new word are set when its Doc is scanned (extract.py). Every
    # word here is new to this vocabulary, so each pattern depends on that.
    nlp = create_nlp()
    assert "Rechnung" not in nlp.vocab and "Juni" not in nlp.vocab
    text = "Rechnung Nr. 4411 über 1.250,00 EUR. Können wir bis zum 30. Juni zahlen?"
    fields = extract_fields(make_input_doc(nlp, "", text), RECEIVED)
    assert fields.invoice_number == "4411"
    assert (fields.amount, fields.currency) == (Decimal("1250.00"), "EUR")
    assert fields.requested_date == date(2026, 6, 30)
    # The same words in a second email are read from the flags set the first time.
    again = extract_fields(make_input_doc(nlp, "", text.replace("4411", "5522")), RECEIVED)
    assert (again.invoice_number, again.requested_date) == ("5522", date(2026, 6, 30))

