"""Recognising mail that no person wrote: bounces and automatic replies.

Answering these is how mail loops start, so the worker records them and never replies.
`automated_reason` lists every reason not to acknowledge in one place, in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Header = Callable[[str], str]

_ROBOT_SENDERS = re.compile(
    r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?|auto-?reply)"
    r"([+\-._].*)?@",
    re.IGNORECASE,
)
_OUT_OF_OFFICE_SUBJECTS = re.compile(
    r"^\s*(automatic reply|auto[- ]?reply|autoreply|out of (the )?office|"
    r"abwesenheitsnotiz|automatische antwort|réponse automatique|respuesta automática|"
    r"risposta automatica|absence|vacation reply|i am out of the office)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECTS = re.compile(
    r"^\s*(undeliverable|undelivered mail|delivery status notification|"
    r"mail delivery (failed|failure|subsystem)|returned mail|failure notice|"
    r"delivery failure|unzustellbar|non remis)",
    re.IGNORECASE,
)


def bounce_reason(header: Header, sender: str, subject: str) -> str | None:
    """Why this looks like a delivery failure report, or None."""
    content_type = header("content-type").lower()
    if "multipart/report" in content_type and "delivery-status" in content_type:
        return "delivery-status report (RFC 3464)"
    if sender.lower().startswith(("mailer-daemon@", "postmaster@")):
        return f"sender {sender} is a mail system"
    if _BOUNCE_SUBJECTS.match(subject):
        return "delivery failure subject"
    return None


def automated_reason(
    header: Header,
    sender: str,
    subject: str,
    own_address: str,
    own_domain: str,
    message_id: str,
) -> str | None:
    """Why this email must not be answered automatically, or None if a person wrote it."""
    auto_submitted = header("auto-submitted").strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    precedence = header("precedence").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    for name in ("list-id", "list-unsubscribe", "x-autoreply", "x-autorespond"):
        if header(name):
            return f"{name} header present"
    if header("return-path").strip() == "<>":
        return "empty Return-Path"
    if not sender:
        return "no sender address"
    if _ROBOT_SENDERS.match(sender):
        return f"sender {sender} is an automated address"
    if sender.lower() == own_address.lower():
        return "sent from our own address"
    if own_domain and message_id.lower().endswith(f"@{own_domain.lower()}>"):
        return "carries our own Message-ID domain"
    if _OUT_OF_OFFICE_SUBJECTS.match(subject):
        return "out-of-office subject"
    return None
