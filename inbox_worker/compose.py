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
from email.charset import QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
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


# The classic (compat32) message classes build an email several times faster than
# EmailMessage, whose every header assignment is parsed; header values are sanitised by
# `header_text` first. ASCII bodies go out as 7bit, others as readable quoted-printable.
_UTF8_QUOTED_PRINTABLE = Charset("utf-8")
_UTF8_QUOTED_PRINTABLE.body_encoding = QP
class _WirePolicy(Compat32):
    """compat32 with CRLF, writing short ASCII headers as they are.

    Folding every header through `email.header.Header` was a third of the cost of a
    reply. Our header values are already one sanitised line (`header_text`), so a short
    ASCII one needs no folding; a long Message-ID stays on one line, which some clients
    need to match threads. Anything else is folded as usual.
    """

    def _fold(self, name: str, value: Any, sanitize: bool) -> str:
        if isinstance(value, str) and value.isascii() and len(name) + len(value) < 990:
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)


# CRLF on the wire: smtplib sends bytes as they are, and servers count lines by CRLF.
_WIRE_POLICY = _WirePolicy(linesep="\r\n", max_line_length=998)


def _text_part(body: str, subtype: str) -> MIMEText:
    if body.isascii() and all(len(line) <= 900 for line in body.splitlines()):
        return MIMEText(body, subtype, "us-ascii")
    return MIMEText(body, subtype, _UTF8_QUOTED_PRINTABLE)


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
        clean = clean.replace(f"[{tracking_number}]", "").strip()
        clean = f"[{tracking_number}] {clean}".strip()
    return f"Re: {clean}" if clean else "Re: your billing request"


def header_text(value: str) -> str:
    """A value safe for a header: one line, no control characters, bounded length."""
    text = "".join(char if char.isprintable() else " " for char in str(value))
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
    automatic: bool = True,
) -> OutboundDraft:
    """Render a template into a multipart/alternative email ready for the outbox."""
    text, html = render(template, context, process)
    message_id = new_message_id(settings)
    references = list(dict.fromkeys(reference for reference in references if reference))
    subject = header_text(subject)
    # A random boundary cannot occur in the text; it saves the generator from scanning the
    # parts with a freshly compiled regex for every email.
    message = MIMEMultipart("alternative", boundary=f"=_{uuid.uuid4().hex}")
    message["From"] = formataddr((header_text(settings.from_name), settings.from_address),
                                 charset="utf-8")
    message["To"] = formataddr((header_text(recipient_name), header_text(recipient)),
                               charset="utf-8")
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = " ".join(references)
    if automatic:
        # RFC 3834: marks us as a robot so well-behaved auto-responders stay quiet.
        message["Auto-Submitted"] = "auto-replied"
        message["X-Auto-Response-Suppress"] = "All"
    message.attach(_text_part(text, "plain"))
    message.attach(_text_part(html, "html"))
    return OutboundDraft(
        message_id=message_id,
        recipient=recipient,
        subject=subject,
        text=text,
        raw=message.as_bytes(policy=_WIRE_POLICY),
        kind=kind,
        in_reply_to=in_reply_to,
        references=tuple(references),
    )
