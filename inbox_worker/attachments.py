"""A case's attachments, read back from the customer emails it keeps, and saved to files.

The worker stores each inbound email whole (`Message.raw`) and lists its attachments
(`Message.attachments`); this module finds their content again, in the order the parser
listed them, for `billing-inbox cases attachments`. File names come from the sender, so
they are reduced to a plain name in the chosen folder, and nothing is overwritten.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

import mailparser

from db.models import Case, Direction, Message

# Characters a file name must not carry: path separators, and what Windows refuses.
_UNSAFE = set('/\\<>:"|?*')
MAX_NAME_CHARS = 120


@dataclass(frozen=True)
class CaseAttachment:
    """One attachment of one customer email of a case; `data` is None when that email's
    raw form was not kept (nothing can be saved then)."""

    number: int
    message: Message
    name: str
    content_type: str
    size: int
    data: bytes | None


def case_attachments(case: Case) -> list[CaseAttachment]:
    """Every attachment of the customer's emails in the case, oldest email first,
    numbered from 1."""
    found: list[CaseAttachment] = []
    inbound = case.messages.where(Message.direction == Direction.INBOUND).order_by(Message.id)
    for message in inbound:
        listed = message.attachments or []
        if not listed:
            continue
        contents = _contents(bytes(message.raw)) if message.raw else []
        for index, item in enumerate(listed):
            data = contents[index] if index < len(contents) else None
            found.append(CaseAttachment(
                len(found) + 1, message, str(item.get("name") or ""),
                str(item.get("type") or ""), int(item.get("size") or 0), data))
    return found


def save_attachment(attachment: CaseAttachment, folder: Path) -> Path:
    """Write it into `folder` under a safe form of its name; "name-2.pdf" when "name.pdf"
    is taken. Returns the path written."""
    if attachment.data is None:
        raise ValueError(f"attachment {attachment.number}: the email was not kept whole")
    stem, dot, suffix = safe_file_name(attachment.name, attachment.number).rpartition(".")
    if not stem:
        stem, dot, suffix = suffix, "", ""
    for copy in range(1, 1000):
        name = f"{stem}{'' if copy == 1 else f'-{copy}'}{dot}{suffix}"
        try:
            with open(folder / name, "xb") as file:
                file.write(attachment.data)
            return folder / name
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder / stem}: too many files of that name")


def safe_file_name(name: str, number: int) -> str:
    """The last path part of `name`, without controls, separators or leading dots;
    "attachment-N" when nothing is left ("../../etc/passwd" -> "passwd")."""
    last = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(char for char in last if char.isprintable() and char not in _UNSAFE)
    kept = kept.strip().lstrip(".").strip()
    if len(kept) > MAX_NAME_CHARS:  # shortened, keeping a short extension (".pdf")
        stem, dot, suffix = kept.rpartition(".")
        ending = f"{dot}{suffix}" if stem and len(suffix) <= 10 else ""
        kept = kept[: MAX_NAME_CHARS - len(ending)] + ending
    return kept or f"attachment-{number}"


def _contents(raw: bytes) -> list[bytes]:
    """The decoded content of each attachment, as message.parse_email listed them."""
    return [_decoded(item) for item in mailparser.parse_from_bytes(raw).attachments]


def _decoded(item: dict) -> bytes:
    payload = item.get("payload") or ""
    if not item.get("binary"):
        return payload.encode("utf-8", "replace")
    compact = "".join(payload.split())
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4))
    except binascii.Error:
        return compact.encode("ascii", "replace")  # not base64 after all: kept as it came
