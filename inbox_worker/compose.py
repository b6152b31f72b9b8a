"""Reply: every email we send, rendered from `templates/` and given its threading headers.

Templates come in pairs (`NAME.txt`, `NAME.html`); a process-specific `NAME_PROCESS.txt`
wins over the generic one. Headers are built here and only here, from sanitised values,
so nothing a customer wrote can add a header line.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.header import Header
from email.quoprimime import body_encode
from email.utils import format_datetime, formataddr
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

from db.records import OutboundDraft
from inbox_worker.settings import Settings

_REPLY_PREFIX = re.compile(
    r"^\s*((re|aw|sv|vs|wg|fw|fwd|tr|rv|enc|antw|odp|r)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE
)

# "[BIL-000123]": how a tracking number appears in our subjects, whatever its prefix.
TRACKING_TAG = re.compile(r"\[[A-Za-z][A-Za-z0-9]{0,15}-\d{6,}\]")

# We send one shape of email only: multipart/alternative with a plain-text and an HTML
# part. Writing it directly costs a tenth of building it with `email.mime` and flattening
# it; every header value reaching here is one sanitised line (`header_text`), encoded by
# the standard library (`formataddr`, `Header`) when it is not ASCII.
_MAX_7BIT_LINE = 900


_MAX_HEADER_LINE = 998  # RFC 5322 2.1.1
_MAX_THREADING_ID = 250


def _wire_email(headers: Sequence[tuple[str, str]], text: str, html: str) -> bytes:
    """The email as sent: CRLF line ends, no line over 998 characters."""
    boundary = f"=_{uuid.uuid4().hex}"  # random: cannot occur in either part
    lines = [_header_line(name, value) for name, value in headers]
    lines += ["MIME-Version: 1.0",
              f'Content-Type: multipart/alternative; boundary="{boundary}"', ""]
    for body, subtype in ((text, "plain"), (html, "html")):
        lines += [f"--{boundary}", *_text_part(body, subtype)]
    lines += [f"--{boundary}--", ""]
    # Only an internationalised address (which needs SMTPUTF8) can make this non-ASCII.
    return "\r\n".join(lines).encode("utf-8")


def _header_line(name: str, value: str) -> str:
    """`Name: value`, folded at spaces when longer than a line may be (long References)."""
    line = f"{name}: {value}"
    if len(line) <= _MAX_HEADER_LINE:
        return line
    words = line.split(" ")
    folded = [words[0]]
    for word in words[1:]:
        if len(folded[-1]) + 1 + len(word) > 78:
            folded.append(f" {word}")
        else:
            folded[-1] += f" {word}"
    return "\r\n".join(folded)


def _threading_ids(message_ids: Sequence[str]) -> list[str]:
    """The Message-IDs we can repeat in a header: ASCII (RFC 5322) and of sane length."""
    return [message_id for message_id in dict.fromkeys(message_ids)
            if message_id and message_id.isascii() and len(message_id) <= _MAX_THREADING_ID]


def _text_part(body: str, subtype: str) -> list[str]:
    """One part's header and body lines: ASCII as it is, anything else quoted-printable."""
    body_lines = body.splitlines()
    if body.isascii() and max(map(len, body_lines), default=0) <= _MAX_7BIT_LINE:
        return [f'Content-Type: text/{subtype}; charset="us-ascii"',
                "Content-Transfer-Encoding: 7bit", "", *body_lines]
    # quoprimime encodes characters 0-255: give it the UTF-8 bytes as such characters.
    encoded = body_encode(body.encode("utf-8").decode("latin-1"), eol="\r\n")
    return [f'Content-Type: text/{subtype}; charset="utf-8"',
            "Content-Transfer-Encoding: quoted-printable", "", encoded]


def _header_line_value(value: str) -> str:
    """An RFC 2047 encoded-word when `value` is not ASCII (it is one line already)."""
    return value if value.isascii() else Header(value, "utf-8").encode(linesep="\r\n")


def templates_dir() -> Path:
    """The Jinja2 templates: beside the packages in a checkout, under share/ when installed."""
    checkout = Path(__file__).resolve().parent.parent / "templates"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "billing-inbox" / "templates"


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(templates_dir()),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the code; no stat() per email
    )


def preload_templates() -> int:
    """Compile every template now; returns how many.

    A worker does this when it starts: a template that does not compile stops it then,
    not at the first customer's email, and the first acknowledgements of a burst do not
    wait for the compiling (tens of milliseconds a template, the first time).
    """
    environment = _environment()
    names = environment.list_templates()
    for name in names:
        environment.get_template(name)
    return len(names)


def render(name: str, context: Mapping[str, Any], process: str = "") -> tuple[str, str]:
    """Plain-text and HTML bodies of template `name`, process-specific when one exists."""
    text, html = _templates(name, process)
    return text.render(**context), html.render(**context)


@lru_cache(maxsize=256)
def _templates(name: str, process: str) -> tuple[Template, Template]:
    # Cached: Jinja2 caches templates it found, but looks for a missing process-specific
    # one on disk again every time.
    environment = _environment()
    chosen = []
    for extension in ("txt", "html"):
        candidates = [f"{name}_{process}.{extension}"] if process else []
        chosen.append(environment.select_template([*candidates, f"{name}.{extension}"]))
    return chosen[0], chosen[1]


def new_message_id(settings: Settings) -> str:
    """An unguessable Message-ID on a domain only we use, so loops are recognisable."""
    domain = settings.from_address.rpartition("@")[2]
    return f"<{uuid.uuid4().hex}@billing-inbox.{domain}>"


def thread_subject(subject: str, tracking_number: str | None) -> str:
    """`Re: [BIL-000123] Original subject`, without stacked Re:/AW:/Fwd: prefixes."""
    clean = _REPLY_PREFIX.sub("", header_text(subject))
    if tracking_number:
        # Any tag goes, not only this case's: a reply about a closed case opens a new
        # one, and two tags in one subject would leave the customer guessing which counts.
        clean = " ".join(TRACKING_TAG.sub(" ", clean).split())
        clean = f"[{tracking_number}] {clean}".strip()
    return f"Re: {clean}" if clean else "Re: your billing request"


def header_text(value: str) -> str:
    """A value safe for a header: one line, no control characters, bounded length."""
    text = str(value)
    if not text.isprintable():  # rare: most subjects and names are one clean line
        text = "".join(char if char.isprintable() else " " for char in text)
    return " ".join(text.split())[:200]


def compose_email(
    settings: Settings,
    *,
    kind: str,
    template: str,
    context: Mapping[str, Any],
    recipient: str,
    recipient_name: str,
    subject: str,
    in_reply_to: str,
    references: Sequence[str],
    now: datetime,
    process: str = "",
    auto_submitted: str | None = "auto-replied",
) -> OutboundDraft:
    """Render a template into a multipart/alternative email ready for the outbox.

    `auto_submitted` is the RFC 3834 keyword, or None for a person's own words.
    """
    text, html = render(template, context, process)
    message_id = new_message_id(settings)
    references = _threading_ids(references)
    in_reply_to = next(iter(_threading_ids([in_reply_to])), "")
    subject = header_text(subject)
    headers = [
        ("From", formataddr((header_text(settings.from_name), settings.from_address),
                            charset="utf-8")),
        ("To", formataddr((header_text(recipient_name), header_text(recipient)),
                          charset="utf-8")),
        ("Subject", _header_line_value(subject)),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
    ]
    if in_reply_to:
        headers.append(("In-Reply-To", in_reply_to))
    if references:
        headers.append(("References", " ".join(references)))
    if auto_submitted:
        # RFC 3834: marks us as a robot so well-behaved auto-responders stay quiet;
        # "auto-replied" answers a message, "auto-generated" tells news unasked.
        headers += [("Auto-Submitted", auto_submitted), ("X-Auto-Response-Suppress", "All")]
    return OutboundDraft(
        message_id=message_id,
        recipient=recipient,
        subject=subject,
        text=text,
        raw=_wire_email(headers, text, html),
        kind=kind,
        in_reply_to=in_reply_to,
        references=tuple(references),
    )
