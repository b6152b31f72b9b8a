"""Recognising mail that no person wrote: bounces and automatic replies, flagged at parse.

Flagged mail is recorded but opens no case and gets no reply, so a mistake either way costs:
answering a robot starts a mail loop, flagging a customer loses their request unseen. Only
evidence that people's mail does not carry decides alone; a subject that looks automatic
needs a second sign, and a robot with no sign at all is bounded by the per-sender hourly
cap on automatic replies (`max_auto_replies_per_hour`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from inbox_worker.compose import TRACKING_TAG

Header = Callable[[str], str]

# "MicrosoftExchange" + 32 hex digits is the system mailbox Exchange sends its non-delivery
# reports from; the others are addresses no person reads.
_ROBOT_SENDERS = re.compile(
    r"^((mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?|auto-?reply)([+\-._].*)?"
    r"|microsoftexchange[0-9a-f]{32})@",
    re.IGNORECASE,
)

# Responders and mail systems title their mail "<label>: <the subject they answer>" or the
# label alone. A label that runs on into a sentence is a person writing: "Out of office from
# Dec 20 - can we extend invoice INV-2026-00640?", "Returned mail fee charged twice".
_OUT_OF_OFFICE_LABEL = re.compile(
    r"^\s*(automatic reply|auto[- ]?reply|autoreply|out of (the )?office( autoreply)?|"
    r"abwesenheitsnotiz|automatische antwort|réponse automatique|respuesta automática|"
    r"risposta automatica|absence|vacation reply|i am out of the office)\s*(:|$)",
    re.IGNORECASE,
)
_DELIVERY_FAILURE_LABEL = re.compile(
    r"^\s*(undeliverable|undelivered mail( returned to sender)?|"
    r"delivery status notification( \((failure|delay)\))?|"
    r"mail delivery (failed|failure|subsystem)|returned mail|failure notice|"
    r"delivery failure|unzustellbar|non remis)\s*(:|$)",
    re.IGNORECASE,
)

# Our own subject after such a label: "Re: [BIL-000123] ...", with the tag compose.py writes.
_OUR_SUBJECT = re.compile(r"\s*(re\s*:\s*)*" + TRACKING_TAG.pattern, re.IGNORECASE)

# Precedence values that only software sends. Not "list": Google Groups and Mailman add it
# to every post, including a customer's request sent through their company's group.
_ROBOT_PRECEDENCE = ("bulk", "junk", "auto_reply")

# Auto-reply marks of responders that predate RFC 3834's Auto-Submitted.
_AUTO_REPLY_HEADERS = (
    "x-autoreply", "x-autorespond", "x-autoresponder", "x-autoreply-from", "x-mail-autoreply",
)

# Stamped by Exchange's mailbox-rules agent on what it writes: out-of-office replies, but
# also a rule's forward of a person's email, so these only back up an automatic subject.
_EXCHANGE_AGENT_HEADERS = (
    "x-ms-exchange-inbox-rules-loop", "x-ms-exchange-generated-message-source",
)


def bounce_reason(header: Header, sender: str, subject: str) -> str | None:
    """Why this looks like a delivery failure report, or None.

    The report itself decides (RFC 3464 content, a mailer daemon, Exim's
    X-Failed-Recipients); a subject like "Undeliverable: ..." only together with a sign that
    software sent it, since "Delivery failure surcharge on INV-2026-00321 is wrong" is a
    customer's question.
    """
    content_type = header("content-type").lower()
    if "multipart/report" in content_type and "delivery-status" in content_type:
        return "delivery-status report (RFC 3464)"
    if sender.lower().startswith(("mailer-daemon@", "postmaster@")):
        return f"sender {sender} is a mail system"
    if header("x-failed-recipients").strip():
        return "X-Failed-Recipients header present"
    label = _DELIVERY_FAILURE_LABEL.match(subject)
    if label is None:
        return None
    evidence = _sent_by_software(header, sender) or _subject_hint(header, subject[label.end():])
    return f"delivery failure subject, {evidence}" if evidence else None


def automated_reason(
    header: Header,
    sender: str,
    subject: str,
    own_address: str,
    own_domain: str,
    message_id: str,
) -> str | None:
    """Why this email must not be answered automatically, or None if a person wrote it.

    Reasons, in order: RFC 3834 Auto-Submitted (not "no"), Precedence bulk/junk/auto_reply,
    a vendor auto-reply header, a multipart/report, an empty Return-Path, a robot or missing
    sender, our own address or Message-ID domain, and last an out-of-office subject backed by
    a hint. List-Id, List-Unsubscribe and Precedence: list are no reason: people write
    through Google Groups and CRMs that add them.
    """
    return (
        _sent_by_software(header, sender)
        or _missing_sender(sender)
        or _our_own_mail(sender, own_address, own_domain, message_id)
        or _out_of_office_reply(header, subject)
    )


def _sent_by_software(header: Header, sender: str) -> str | None:
    """Evidence, decisive on its own, that software wrote this email."""
    return (
        _auto_submitted(header)
        or _robot_precedence(header)
        or _auto_reply_header(header)
        or _machine_report(header)
        or _empty_return_path(header)
        or _robot_sender(sender)
    )


def _auto_submitted(header: Header) -> str | None:
    """RFC 3834: any Auto-Submitted value but "no" ("auto-replied", "auto-generated")."""
    value = header("auto-submitted").strip().lower()
    if value and value.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {value}"
    return None


def _robot_precedence(header: Header) -> str | None:
    """Precedence: bulk, junk or auto_reply, as newsletters and vacation programs send."""
    value = header("precedence").strip().lower()
    return f"Precedence: {value}" if value in _ROBOT_PRECEDENCE else None


def _auto_reply_header(header: Header) -> str | None:
    """X-Autoreply, X-Autorespond and kin, or X-Autogenerated: Reply."""
    for name in _AUTO_REPLY_HEADERS:
        if header(name).strip():
            return f"{name} header present"
    if header("x-autogenerated").strip().lower() == "reply":
        return "X-Autogenerated: Reply"
    return None


def _machine_report(header: Header) -> str | None:
    """A multipart/report (RFC 6522): delivery reports, read receipts, abuse reports."""
    if header("content-type").strip().lower().startswith("multipart/report"):
        return "multipart/report content"
    return None


def _empty_return_path(header: Header) -> str | None:
    """Return-Path <>: the null sender that bounces and auto-replies are sent with."""
    return "empty Return-Path" if header("return-path").strip() == "<>" else None


def _robot_sender(sender: str) -> str | None:
    """An address no person reads: mailer-daemon@, no-reply@, bounces+x@, ..."""
    if _ROBOT_SENDERS.match(sender):
        return f"sender {sender} is an automated address"
    return None


def _missing_sender(sender: str) -> str | None:
    """No From address: nobody to answer."""
    return None if sender else "no sender address"


def _our_own_mail(
    sender: str, own_address: str, own_domain: str, message_id: str
) -> str | None:
    """Our own address, or a Message-ID on the domain only our worker uses: a loop."""
    if sender.lower() == own_address.lower():
        return "sent from our own address"
    if own_domain and message_id.lower().endswith(f"@{own_domain.lower()}>"):
        return "carries our own Message-ID domain"
    return None


def _out_of_office_reply(header: Header, subject: str) -> str | None:
    """An out-of-office label ("Automatic reply: ...") backed by a hint that software wrote it.

    The label alone is not enough: "Absence of 3 months - please pause our billing" is
    a request, and even a label-shaped subject may be a person's.
    """
    label = _OUT_OF_OFFICE_LABEL.match(subject)
    if label is None:
        return None
    hint = _subject_hint(header, subject[label.end():])
    return f"out-of-office subject, {hint}" if hint else None


def _subject_hint(header: Header, after_label: str) -> str | None:
    """A sign, too weak to decide alone, that backs up an automatic-looking subject.

    Only responders and mail systems put their label before our own subject ("Automatic
    reply: Re: [BIL-000132] ..."); people answer with "Re:". Exchange marks its own
    automatic mail with X-Auto-Response-Suppress: All and its agents' headers, but CRMs and
    helpdesks send people's mail with the former and rules forward it with the latter.
    """
    if _OUR_SUBJECT.match(after_label):
        return "answering our own email"
    suppress = {part.strip().lower() for part in header("x-auto-response-suppress").split(",")}
    if "all" in suppress:
        return "X-Auto-Response-Suppress: All"
    for name in _EXCHANGE_AGENT_HEADERS:
        if header(name).strip():
            return f"{name} header present"
    return None
