"""Route: decide what one parsed email is, as one of a closed set of decisions.

`route_message` reads like a policy: ordered, named checks, the first that applies wins.
It only looks things up; the act stage carries the decision out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from classifiers.catalog import GENERAL
from classifiers.model import Classification
from db.lookup import IntakeHistory, find_thread
from db.models import Case, CaseStatus
from inbox_worker.message import InboundEmail

_STATUS_QUESTION = re.compile(
    r"\b(any (updates?|news|progress)|status|what'?s happening|where are (we|things)|"
    r"heard (back|anything)|still waiting|update (on|about) (my|this|the|our)|"
    r"how (is|are) (it|my|our|things) (going|coming)|estado|novedad(es)?|"
    r"neuigkeiten|sachstand|stand der|des nouvelles|où en est|état de)\b",
    re.IGNORECASE,
)
# A status question is short; a long reply that mentions "status" is new information.
_STATUS_QUESTION_MAX_WORDS = 60


@dataclass(frozen=True)
class Ignore:
    """Answering would risk a mail loop: record with the reason, never reply."""

    outcome: str
    reason: str


@dataclass(frozen=True)
class Duplicate:
    """This Message-ID was handled before (a re-fetch after a crash, a second worker)."""


@dataclass(frozen=True)
class FollowUp:
    """The customer adds to their own case."""

    case: Case


@dataclass(frozen=True)
class StatusRequest:
    """The customer asks how their case is going (case None: asks for all their cases)."""

    case: Case | None


@dataclass(frozen=True)
class NotYours:
    """The email names a case that belongs to someone else: reveal nothing."""

    case: Case


@dataclass(frozen=True)
class NewCase:
    """A new inquiry, with its classification; linked to a closed case it mentions."""

    classification: Classification
    previous_case: Case | None = None


Decision = Ignore | Duplicate | FollowUp | StatusRequest | NotYours | NewCase


def route_message(
    email: InboundEmail,
    classification: Classification | None,
    prefix: str,
    history: IntakeHistory,
) -> Decision:
    """The first matching check decides; in order of what must never be answered.

    `classification` may be None only for mail that needs no reply (bounces, robots).
    `history` says which Message-IDs were recorded before.
    """
    if email.is_bounce:
        return Ignore("ignored_bounce", email.bounce_reason or "bounce")
    if email.is_automated:
        return Ignore("ignored_automated", email.automated_reason or "automated")
    if history.is_known(email.message_id):
        return Duplicate()
    thread = find_thread(
        email.sender, [email.in_reply_to, *email.references], tracking_numbers(email, prefix)
    )
    if thread is not None and not thread.sender_may_see:
        return NotYours(thread.case)
    asks_status = is_status_question(email)
    if thread is not None:
        if asks_status:
            return StatusRequest(thread.case)
        if thread.case.status == CaseStatus.CLOSED:
            return NewCase(classification, previous_case=thread.case)
        return FollowUp(thread.case)
    if classification is None:
        raise ValueError(f"{email.message_id} needs a classification to open a case")
    if asks_status and classification.process == GENERAL:
        # Without a thread, only a message that asks for nothing else is a status question:
        # "change the status of my account to suspended" is a new request.
        return StatusRequest(None)
    return NewCase(classification)


def tracking_numbers(email: InboundEmail, prefix: str) -> list[str]:
    """Tracking numbers in the subject first, then the body (also in quoted history)."""
    pattern = re.compile(rf"\b{re.escape(prefix)}-\d{{6,}}\b", re.IGNORECASE)
    found = pattern.findall(email.subject) + pattern.findall(email.full_text)
    return list(dict.fromkeys(number.upper() for number in found))


def is_status_question(email: InboundEmail) -> bool:
    """A short message whose subject or new text asks for an update."""
    if len(email.text.split()) > _STATUS_QUESTION_MAX_WORDS:
        return False
    return bool(_STATUS_QUESTION.search(email.text) or (
        not email.text.strip() and _STATUS_QUESTION.search(email.subject)
    ))
