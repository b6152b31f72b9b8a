"""Parse stage: what a user would notice when a real-world email goes through `parse_email`.

Fixtures are small `.eml` files in tests/emails; the few messages that only make sense
generated (NUL bytes, header injection, a 5 MB attachment) are built in the test.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from inbox_worker.message import InboundEmail, parse_email, synthesised_message_id

EMAILS = Path(__file__).parent / "emails"
OWN_ADDRESS = "billing@acme-billing.example"
RECEIVED_AT = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
OUR_FIRST_ID = "<5e2a9c1b7d3f4a6e8b0c2d4f6a8b0c1d@billing-inbox.acme-billing.example>"
OUR_SECOND_ID = "<7f3b0d2c8e4a5b6f9c1d3e5a7b9c0d2e@billing-inbox.acme-billing.example>"


def parse_fixture(name: str) -> InboundEmail:
    return parse_email((EMAILS / name).read_bytes(), OWN_ADDRESS, RECEIVED_AT)


def parse_bytes(raw: bytes) -> InboundEmail:
    return parse_email(raw, OWN_ADDRESS, RECEIVED_AT)


def simple_message(body: bytes, headers: str = "") -> bytes:
    """A minimal plain-text email with extra header lines, for generated edge cases."""
    return (
        b"From: Tom Briggs <tom@briggs-cafe.example>\r\n"
        b"To: billing@acme-billing.example\r\n"
        b"Subject: feb bill\r\n"
        b"Date: Wed, 11 Mar 2026 07:45:10 +0000\r\n"
        b"Message-ID: <generated.1@briggs-cafe.example>\r\n"
        + headers.encode("ascii")
        + b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"\r\n" + body
    )


ALL_FIXTURES = sorted(path.name for path in EMAILS.glob("*.eml"))


# --- every fixture -------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_fixture_parses_into_clean_one_line_headers_and_text(name: str) -> None:
    email = parse_fixture(name)

    assert re.fullmatch(r"<[^<>\s]+>", email.message_id)
    assert "\n" not in email.subject and "\r" not in email.subject
    assert "\n" not in email.sender_name and "\r" not in email.sender_name
    assert email.sender == email.sender.lower()
    assert "\x00" not in email.text and "\x00" not in email.full_text
    assert email.date.tzinfo is not None and email.date.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_raw_keeps_the_exact_bytes(name: str) -> None:
    raw = (EMAILS / name).read_bytes()

    assert parse_bytes(raw).raw == raw


def test_crlf_message_keeps_its_crlf_line_endings_in_raw() -> None:
    raw = (EMAILS / "plain_text.eml").read_bytes()
    assert b"\r\n" in raw

    assert parse_bytes(raw).raw == raw


# --- senders, recipients, subjects, dates -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "address", "display_name"),
    [
        ("plain_text.eml", "dana.whitfield@harborfreight-logistics.example", "Dana Whitfield"),
        ("multipart_alternative.eml", "jose.martinez@costa-verde.example", "José Martínez"),
        ("koi8r.eml", "i.petrov@sever-trade.example", "Игорь Петров"),
        ("latin1_quoted_printable.eml", "j.weiss@mueller-soehne.example", "Jürgen Weiß"),
        ("rfc2231_attachment.eml", "anna.weber@weber-bau.example", "Weber, Anna"),
        ("bounce_dsn.eml", "mailer-daemon@mx.acme-billing.example", "Mail Delivery System"),
    ],
)
def test_sender_address_is_lowercased_and_display_name_decoded(
    name: str, address: str, display_name: str
) -> None:
    email = parse_fixture(name)

    assert email.sender == address
    assert email.sender_name == display_name


@pytest.mark.parametrize(
    ("name", "subject"),
    [
        ("koi8r.eml", "Счет-фактура 2026-117: неверная сумма"),
        ("latin1_quoted_printable.eml", "Änderung der Rechnungsanschrift"),
        ("multipart_alternative.eml", "Facturación incorrecta – INV-2026-00377"),
        # An encoded word in the middle of plain words.
        ("rfc2231_attachment.eml", "Rechnung März - falscher Betrag"),
        # Two adjacent encoded words join without the whitespace between them.
        (
            "ooo_subject_reponse_automatique.eml",
            "Réponse automatique : [BIL-000134] Nous avons reçu votre demande",
        ),
        ("reply_outlook_german.eml", "AW: [BIL-000142] Ihre Anfrage ist eingegangen"),
    ],
)
def test_subject_is_decoded_to_unicode(name: str, subject: str) -> None:
    assert parse_fixture(name).subject == subject


def test_date_with_offset_is_converted_to_utc() -> None:
    email = parse_fixture("plain_text.eml")  # Mon, 2 Mar 2026 10:13:55 +0100

    assert email.date == datetime(2026, 3, 2, 9, 13, 55, tzinfo=UTC)


def test_recipients_list_to_and_cc_addresses() -> None:
    email = parse_fixture("plain_text.eml")

    assert email.recipients == (
        "billing@acme-billing.example",
        "ap@harborfreight-logistics.example",
    )


# --- bodies and charsets --------------------------------------------------------------


def _eight_bit_header_email(from_name: bytes, subject: bytes, charset: bytes) -> bytes:
    # Raw 8-bit bytes in headers, as many mailers write them despite RFC 5322.
    return (b"From: " + from_name + b" <klara@weiss.example>\r\n"
            b"To: billing@acme-billing.example\r\nSubject: " + subject + b"\r\n"
            b"Message-ID: <eight.bit@weiss.example>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=" + charset + b"\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\nBitte die Rechnung f\xfcr M\xe4rz.\r\n")


@pytest.mark.parametrize(("from_name", "subject", "charset"), [
    (b"Kl\xe4rchen Wei\xdf", b"Rechnungskopie f\xfcr M\xe4rz", b"windows-1252"),
    (b"Kl\xc3\xa4rchen Wei\xc3\x9f", b"Rechnungskopie f\xc3\xbcr M\xc3\xa4rz", b"utf-8"),
    (b"Kl\xe4rchen Wei\xdf", b"=?utf-8?q?Rechnungskopie_f=C3=BCr?= M\xe4rz", b"iso-8859-1"),
], ids=["windows-1252", "utf-8", "encoded-word-beside-latin-1"])
def test_raw_8bit_header_bytes_give_the_name_and_subject_as_written(
    from_name: bytes, subject: bytes, charset: bytes
) -> None:
    email = parse_bytes(_eight_bit_header_email(from_name, subject, charset))

    assert email.sender_name == "Klärchen Weiß"
    assert email.sender == "klara@weiss.example"
    assert email.subject == "Rechnungskopie für März"


def test_koi8r_body_is_decoded_to_cyrillic() -> None:
    email = parse_fixture("koi8r.eml")

    assert email.text.startswith("Здравствуйте!")
    assert "указана сумма 45 000 руб." in email.text
    assert email.text.endswith('ООО "Север Трейд"')


def test_latin1_quoted_printable_body_keeps_umlauts_and_joins_soft_line_breaks() -> None:
    email = parse_fixture("latin1_quoted_printable.eml")

    assert "Müller & Söhne GmbH, Große Straße 5, 80331 München. Ansprechpartner" in email.text
    assert email.text.endswith("Mit freundlichen Grüßen\nJürgen Weiß\nBuchhaltung")
    assert "=\n" not in email.full_text and "=FC" not in email.full_text


def test_multipart_alternative_uses_the_plain_text_part() -> None:
    email = parse_fixture("multipart_alternative.eml")

    assert "Invoice INV-2026-00377 charges us 1.250,00 € for the premium plan" in email.text
    assert email.text.endswith("Saludos,\nJosé Martínez")
    assert "<" not in email.text


def test_html_only_mail_gives_readable_text_without_tags_styles_or_scripts() -> None:
    email = parse_fixture("html_only_blockquote.eml")

    assert email.text == (
        "Hello,\n\n"
        "Our company card ending in 4242 expired last week & the March payment failed. "
        "Please switch account ACC-20931 to the new card; I’ll enter the details through "
        "your payment link.\n\n"
        "Thanks,\nLena Fischer\nOffice Manager, Nordlicht Design"
    )
    for leftover in ("<div", "<br", "&amp;", "&lt;", "color:", "Card update", "track("):
        assert leftover not in email.full_text


def test_html_only_mail_leaves_the_blockquoted_history_out_of_text() -> None:
    email = parse_fixture("html_only_blockquote.eml")

    assert "INV-2026-00388" not in email.text
    assert "wrote:" not in email.text
    assert "the payment for invoice INV-2026-00388 was declined." in email.full_text


def test_wrongly_declared_charset_is_recorded_as_a_defect_and_keeps_the_ascii_text() -> None:
    email = parse_fixture("wrong_charset_latin1_as_utf8.eml")

    assert "CharsetDecodeDefect" in email.defects
    assert "wir haben die Rechnung INV-2026-00502 doppelt bezahlt." in email.text
    assert "Betrag von 89,90 EUR." in email.text


def test_wrongly_declared_charset_still_shows_the_latin1_umlauts() -> None:
    # Says utf-8, bytes are latin-1: the customer's name must not turn into "Bj\ufffdrn".
    email = parse_fixture("wrong_charset_latin1_as_utf8.eml")

    assert "\ufffd" not in email.text
    assert email.text.endswith("Grüße aus Köln\nBjörn")


def test_a_from_without_an_address_gives_no_sender_to_answer() -> None:
    email = parse_bytes(b"From: not an address at all\r\nTo: billing@acme-billing.example\r\n"
                        b"Subject: Invoice\r\nMessage-ID: <nofrom@example.org>\r\n\r\n"
                        b"Please resend invoice 42.\r\n")

    assert email.sender == ""
    assert email.automated_reason == "no sender address"


def test_control_characters_in_name_and_subject_are_dropped() -> None:
    # Terminal escapes (clear screen, window title, colours) and a bidi override.
    email = parse_bytes(
        b"From: \"Eve \x1b[31mRED\x1b[0m \xe2\x80\xaegnp.exe\" <eve@example.org>\r\n"
        b"To: billing@acme-billing.example\r\n"
        b"Subject: =?utf-8?q?Invoice_=1B]0;pwned-title=07_INV-42?=\r\n"
        b"Message-ID: <escape@example.org>\r\n\r\nPlease check.\r\n"
    )

    assert email.sender_name == "Eve [31mRED [0m gnp.exe"
    assert email.subject == "Invoice ]0;pwned-title INV-42"
    assert not any(ord(char) < 32 or 0x7f <= ord(char) <= 0x9f for char in
                   email.sender_name + email.subject)


def test_japanese_iso_2022_jp_body_is_readable() -> None:
    # 7-bit ISO-2022-JP is still what many Japanese mail clients send; mail-parser
    # handed its escape sequences through as they were.
    email = parse_fixture("iso2022jp.eml")

    assert email.subject == "支払期限の延長のお願い"
    assert email.text == "請求書 INV-2026-00450 の支払期限を12月25日まで延長していただけますか。"
    assert "\x1b" not in email.full_text


def test_pgp_signed_mail_gives_the_signed_text_without_the_signature_block() -> None:
    email = parse_fixture("pgp_signed.eml")

    assert email.text == (
        "Hello,\n\nwe are back from the winter break. Please resume billing for account\n"
        "ACC-77120 from 1 April 2026.\n\nKai"
    )
    assert "BEGIN PGP SIGNATURE" not in email.full_text
    assert [(a.name, a.content_type) for a in email.attachments] == [
        ("signature.asc", "application/pgp-signature")
    ]


def test_nul_byte_in_body_and_subject_does_not_survive_into_text() -> None:
    # PostgreSQL text columns reject NUL, so one stray byte would fail the whole transaction.
    raw = simple_message(b"Please pay\x00 invoice 7781 on the 20th.\r\n").replace(
        b"Subject: feb bill", b"Subject: feb\x00 bill"
    )

    email = parse_bytes(raw)

    assert email.text == "Please pay invoice 7781 on the 20th."
    assert "\x00" not in email.full_text
    assert email.subject == "feb bill"
    assert email.raw == raw


# --- header injection -----------------------------------------------------------------


def test_encoded_line_break_in_subject_comes_out_as_one_line() -> None:
    raw = simple_message(b"hello\r\n").replace(
        b"Subject: feb bill", b"Subject: =?utf-8?q?Hello=0D=0ABcc:_victim@example.com?="
    )

    email = parse_bytes(raw)

    assert email.subject == "Hello Bcc: victim@example.com"


def test_encoded_line_break_in_display_name_comes_out_as_one_line() -> None:
    raw = simple_message(b"hello\r\n").replace(
        b"From: Tom Briggs <tom@briggs-cafe.example>",
        b"From: =?utf-8?q?Eve=0D=0ABcc=3A_victim=40example.com?= <eve@example.com>",
    )

    email = parse_bytes(raw)

    # mail-parser leaves an encoded word that decodes to control characters undecoded;
    # either way the name must stay on one line.
    assert "\n" not in email.sender_name and "\r" not in email.sender_name
    assert email.sender == "eve@example.com"


def test_display_name_with_a_bare_colon_still_gives_the_angle_address() -> None:
    # Not valid RFC 2047 in a phrase (":" and "@" must be encoded), but this is what
    # injection attempts look like; the mailbox in angle brackets is still the sender.
    raw = simple_message(b"hello\r\n").replace(
        b"From: Tom Briggs <tom@briggs-cafe.example>",
        b"From: =?utf-8?q?Eve=0D=0ABcc:_victim@example.com?= <eve@example.com>",
    )

    email = parse_bytes(raw)

    assert "\n" not in email.sender_name and "\r" not in email.sender_name
    assert email.sender == "eve@example.com"


# --- attachments ----------------------------------------------------------------------


def test_rfc2231_attachment_names_are_decoded_with_their_content_types() -> None:
    email = parse_fixture("rfc2231_attachment.eml")

    assert [(a.name, a.content_type) for a in email.attachments] == [
        ("Rechnung März.pdf", "application/pdf"),
        # filename*0*= / filename*1*= continuation.
        ("Leistungsübersicht Februar.csv", "text/csv"),
    ]


def test_attachment_size_is_the_decoded_size_not_the_base64_size() -> None:
    email = parse_fixture("rfc2231_attachment.eml")

    # 335 bytes of PDF sent as base64 in 76-character lines; 67 bytes of 8bit CSV.
    assert [a.size for a in email.attachments] == [335, 67]


def test_five_megabyte_attachment_parses_with_its_size() -> None:
    size = 5 * 1024 * 1024
    message = EmailMessage()
    message["From"] = "Anna Weber <anna.weber@weber-bau.example>"
    message["To"] = OWN_ADDRESS
    message["Subject"] = "Scans of all 2025 invoices"
    message["Message-ID"] = "<big.scan.2026@weber-bau.example>"
    message.set_content("All scans attached.\n")
    message.add_attachment(
        (bytes(range(256)) * (size // 256))[:size],
        maintype="application",
        subtype="pdf",
        filename="Scans 2025.pdf",
    )

    email = parse_bytes(message.as_bytes())

    assert email.text == "All scans attached."
    assert [(a.name, a.size) for a in email.attachments] == [("Scans 2025.pdf", size)]


# --- broken and incomplete mail ----------------------------------------------------------


def test_broken_mime_still_gives_the_text_and_notes_the_defects() -> None:
    email = parse_fixture("broken_mime.eml")

    assert email.text == "Why is invoice 7781 higher than last month?"
    assert email.sender == "greg@holt-plumbing.example"
    assert "CloseBoundaryNotFoundDefect" in email.defects
    assert "MissingHeaderBodySeparatorDefect" in email.defects


def test_impossible_date_falls_back_to_received_at_and_is_noted() -> None:
    email = parse_fixture("broken_mime.eml")  # Date: Tue, 10 Mar 2026 25:61:00 +9900

    assert email.date == RECEIVED_AT
    assert "DateHeaderDefect" in email.defects


def test_missing_message_id_gets_a_stable_synthesised_one() -> None:
    raw = (EMAILS / "no_message_id.eml").read_bytes()

    first = parse_bytes(raw)
    again = parse_bytes(bytes(raw))
    edited = parse_bytes(raw.replace(b"the 20th", b"the 21st"))

    assert first.message_id == again.message_id == synthesised_message_id(raw)
    assert re.fullmatch(r"<[^<>\s]+@[^<>\s]+>", first.message_id)
    assert edited.message_id != first.message_id
    assert first.text.startswith("hey, can i pay the feb bill on the 20th")


def test_missing_from_gives_an_empty_sender_without_raising() -> None:
    email = parse_fixture("no_from.eml")

    assert (email.sender, email.sender_name) == ("", "")
    assert email.subject == "Scanned document"
    assert email.text == "Please find the scanned remittance advice for invoice 48213 attached."


def test_missing_date_falls_back_to_received_at() -> None:
    email = parse_fixture("no_date.eml")

    assert email.date == RECEIVED_AT
    assert email.sender == "m.osei@riverside-clinic.example"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"just some text without any headers",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x\r\n",
        b"From: <>\r\nSubject: =?utf-8?q?broken\r\n\r\n\xff\xfe\x00",
    ],
    ids=["empty", "blank-lines", "no-headers", "empty-parts", "garbage"],
)
def test_degenerate_input_never_raises(raw: bytes) -> None:
    email = parse_bytes(raw)

    assert email.raw == raw
    assert email.message_id == synthesised_message_id(raw)
    assert "\x00" not in email.text


# --- threading headers --------------------------------------------------------------------


def test_in_reply_to_and_folded_references_are_parsed() -> None:
    email = parse_fixture("reply_gmail.eml")

    assert email.in_reply_to == OUR_SECOND_ID
    assert email.references == (OUR_FIRST_ID, OUR_SECOND_ID)


@pytest.mark.parametrize(
    ("name", "prefix"),
    [("reply_gmail.eml", "Re: "), ("reply_outlook_german.eml", "AW: "), ("reply_sv.eml", "SV: ")],
)
def test_localised_reply_prefixes_keep_their_threading_headers(name: str, prefix: str) -> None:
    email = parse_fixture(name)

    assert email.subject.startswith(prefix)
    assert email.in_reply_to.endswith("@billing-inbox.acme-billing.example>")
    assert email.in_reply_to in email.references


def test_in_reply_to_with_a_trailing_comment_gives_just_the_message_id() -> None:
    raw = simple_message(
        b"thanks\r\n",
        headers=f"In-Reply-To: {OUR_FIRST_ID} (Acme Billing's message of 2 Mar 2026)\r\n",
    )

    assert parse_bytes(raw).in_reply_to == OUR_FIRST_ID
