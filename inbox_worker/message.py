"""Parse: raw bytes in, one frozen `InboundEmail` out. The only module that uses mail-parser.

mail-parser records defects instead of raising, but any attribute it does not know
becomes a header lookup that silently returns "", so every access to it stays in
`parse_email` and everything after this stage reads our own dataclass.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import decode_header
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr

import mailparser

from inbox_worker.automated import Header, automated_reason, bounce_reason
from inbox_worker.html_text import html_to_text
from inbox_worker.quoting import new_text

log = logging.getLogger(__name__)

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
# C0 and C1 controls, DEL, and the bidi embeddings, overrides and isolates.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    size: int


@dataclass(frozen=True)
class InboundEmail:
    """One customer email, parsed once and passed unchanged through the pipeline."""

    message_id: str
    sender: str
    sender_name: str
    recipients: tuple[str, ...]
    subject: str
    date: datetime
    text: str
    full_text: str
    in_reply_to: str
    references: tuple[str, ...]
    attachments: tuple[Attachment, ...]
    bounce_reason: str | None
    automated_reason: str | None
    defects: tuple[str, ...]
    raw: bytes

    @property
    def is_bounce(self) -> bool:
        return self.bounce_reason is not None

    @property
    def is_automated(self) -> bool:
        return self.automated_reason is not None

    @property
    def needs_no_reply(self) -> bool:
        """Bounces and robots: routed without classification, never answered."""
        return self.is_bounce or self.is_automated


def parse_email(raw: bytes, own_address: str, received_at: datetime) -> InboundEmail:
    """Parse raw RFC 5322 bytes; broken input gives defects, never an exception."""
    defects: list[str] = []
    try:
        parsed = mailparser.parse_from_bytes(raw)
    except Exception as error:  # mail-parser's own errors and RecursionError alike
        defects.append(f"unparseable: {error.__class__.__name__}")
        log.warning("could not parse message (%s); keeping raw bytes", error)
        parsed = mailparser.parse_from_bytes(b"")
    message = parsed.message

    def header(name: str) -> str:
        value = message.get(name) if message is not None else None
        return str(value) if value is not None else ""

    sender_name, sender = _sender(parsed, header)
    subject = _clean_header_text(parsed.subject if message is not None else "")
    raw_headers = _eight_bit_headers(raw, message)
    if raw_headers is not None:
        # Undeclared 8-bit header bytes: mail-parser mangles them ("Kl\\udce4rchen").
        name, address = parseaddr(raw_headers.get("from", ""))
        if address.lower() == sender:
            sender_name = _clean_header_text(name)
        subject = _clean_header_text(raw_headers.get("subject", subject))
    # PostgreSQL text cannot hold NUL, and no customer means one.
    full_text = _body_text(parsed).replace("\x00", "")
    message_id = _first_message_id(header("message-id")) or synthesised_message_id(raw)
    own_domain = own_address.rpartition("@")[2]
    if parsed.has_defects:
        defects.extend(sorted(parsed.defects_categories))
    return InboundEmail(
        message_id=message_id,
        sender=sender,
        sender_name=sender_name,
        recipients=tuple(address for _, address in getaddresses(
            [header("to"), header("cc")]) if address),
        subject=subject,
        date=_date(parsed, received_at),
        text=new_text(full_text),
        full_text=full_text,
        in_reply_to=_first_message_id(header("in-reply-to")),
        references=tuple(_MESSAGE_ID.findall(header("references"))),
        attachments=tuple(
            Attachment(
                name=str(item.get("filename") or ""),
                content_type=str(item.get("mail_content_type") or ""),
                size=_decoded_size(item),
            )
            for item in parsed.attachments
        ),
        bounce_reason=bounce_reason(header, sender, subject),
        automated_reason=automated_reason(
            header, sender, subject, own_address, f"billing-inbox.{own_domain}", message_id
        ),
        defects=tuple(defects),
        raw=raw,
    )


def synthesised_message_id(raw: bytes) -> str:
    """A stable Message-ID for mail that has none, so reprocessing still deduplicates."""
    return f"<sha256.{hashlib.sha256(raw).hexdigest()[:40]}@billing-inbox.invalid>"


def _sender(parsed: mailparser.MailParser, header: Header) -> tuple[str, str]:
    # mail-parser decodes RFC 2047 names; the raw header is the fallback when it gave up.
    decoded = parsed.from_ if parsed.message is not None else []
    name, address = decoded[0] if decoded else ("", "")
    if "@" not in address:
        raw_from = _clean_header_text(header("from"))
        # A display name with a bare colon reads as a group; the angle address is the truth.
        angle = re.findall(r"<([^<>@\s]+@[^<>\s]+)>", raw_from)
        name, address = ("", angle[-1]) if angle else parseaddr(raw_from)
    if "@" not in address:
        # "From: not an address at all" read as the local user "not": there is nobody
        # to answer, and an answer to a bare name goes to a local mailbox or bounces.
        return _clean_header_text(name or address), ""
    return _clean_header_text(name), _clean_header_text(address).lower()


def _eight_bit_headers(raw: bytes, message: Message | None) -> dict[str, str] | None:
    """From and Subject read from header bytes that are not ASCII; None when they are.

    RFC 5322 headers are ASCII, but many mailers write raw UTF-8 or windows-1252 in
    them. Tried in turn: UTF-8, the message's own charset, then cp1252 (latin-1 for
    the five bytes it leaves undefined), so "Kl\xe4rchen" reads as Klärchen.
    """
    head = header_section(raw)
    if head.isascii():
        return None
    charsets = ["utf-8", *(message.get_charsets() if message is not None else [])]
    headers = HeaderParser(policy=compat32).parsestr(_decode_first(head, charsets))
    found = {}
    for name in ("from", "subject"):
        value = headers.get(name)
        if value is not None:
            # Encoded words (=?utf-8?q?...?=) may still sit beside the raw bytes.
            found[name] = _decode_words(" ".join(str(value).split()))
    return found


def _decode_words(value: str) -> str:
    """`value` with its RFC 2047 encoded words decoded; text around them kept as it is."""
    texts = []
    for part, charset in decode_header(value):
        if isinstance(part, str):  # no encoded word at all
            return part
        # decode_header hands the plain text between encoded words back as
        # raw-unicode-escape bytes.
        try:
            texts.append(part.decode(charset or "raw-unicode-escape", "replace"))
        except LookupError:  # an encoded word naming a charset nobody knows
            texts.append(part.decode("utf-8", "replace"))
    return "".join(texts)


def _body_text(parsed: mailparser.MailParser) -> str:
    if parsed.message is None:
        return ""
    plain = "\n".join(parsed.text_plain).strip()
    # mail-parser leaves 7-bit ISO-2022-JP (Japanese mail) undecoded: ESC sequences.
    if "CharsetDecodeDefect" in parsed.defects_categories or "\x1b" in plain:
        redecoded = _redecode_plain_text(parsed.message)
        if redecoded:
            return redecoded
    if plain:
        return plain
    return html_to_text("\n".join(parsed.text_html))


def _redecode_plain_text(message: Message) -> str:
    """Text parts decoded by trying charsets in turn, for mail that mislabels its charset.

    Mail clients that say utf-8 and send latin-1 are common; cp1252 and latin-1 decode
    any byte, so the customer's umlauts survive instead of turning into U+FFFD.
    """
    texts = []
    for part in message.walk():
        if part.get_content_type() != "text/plain" or part.get_filename():
            continue
        payload = part.get_payload(decode=True) or b""
        texts.append(_decode_first(payload, [part.get_content_charset(), "utf-8"]))
    return "\n".join(texts).strip()


def _decode_first(data: bytes, charsets: list[str | None]) -> str:
    """`data` decoded by the first of `charsets` that fits, else cp1252, else latin-1.

    cp1252 and latin-1 between them decode any byte, so nothing turns into U+FFFD.
    """
    for charset in [*charsets, "cp1252"]:
        if charset is None:
            continue
        try:
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def header_section(raw: bytes) -> bytes:
    """The header section of a message: up to and including the blank line that ends it
    (all of `raw` when there is none, as in a message without a body)."""
    for blank_line in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(blank_line)
        if end >= 0:
            return raw[:end + len(blank_line)]
    return raw


def _date(parsed: mailparser.MailParser, received_at: datetime) -> datetime:
    value = parsed.date if parsed.message is not None else None
    if not isinstance(value, datetime):
        return received_at
    # mail-parser hands back naive UTC plus a separate offset.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _first_message_id(value: str) -> str:
    match = _MESSAGE_ID.search(value or "")
    return match.group(0) if match else ""


def _clean_header_text(value: str) -> str:
    """Header text for display: no line breaks or control characters from the sender.

    Escape sequences in a name or subject would otherwise reach a specialist's terminal
    (clearing it, retitling it, planting links) and our replies' greetings; bidi
    overrides would let a name display as something it is not.
    """
    return " ".join(_CONTROL_CHARACTERS.sub(" ", str(value or "")).split())


def _decoded_size(item: dict) -> int:
    payload = item.get("payload") or ""
    if item.get("binary"):
        compact = "".join(payload.split())  # base64 line breaks are not content
        return len(compact) * 3 // 4 - compact[-2:].count("=")
    return len(payload.encode("utf-8", "replace"))
