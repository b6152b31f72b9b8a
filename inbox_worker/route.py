"""Route: decide what one parsed email is, as one of a closed set of decisions.

`route_message` reads like a policy: ordered, named checks, the first that applies wins.
It only looks things up; the act stage carries the decision out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from classifiers.catalog import GENERAL
from classifiers.model import Classification
from db.lookup import IntakeHistory, find_thread
from db.models import Case, CaseStatus
from inbox_worker.message import InboundEmail
from inbox_worker.settings import Settings

_STATUS_QUESTION = re.compile(
    r"\b(any (updates?|news|progress)|status|what'?s happening|where are (we|things)|"
    r"heard (back|anything)|still waiting|update (on|about) (my|this|the|our)|"
    r"how (is|are) (it|my|our|things) (going|coming)|estado|novedad(es)?|"
    r"neuigkeiten|sachstand|stand der|des nouvelles|où en est|état de)\b",
    re.IGNORECASE,
)
# A status question is short; a long reply that mentions "status" is new information.
_STATUS_QUESTION_MAX_WORDS = 60
# "Thanks, all good now!": a reply that only thanks us asks for nothing, so it neither
# reopens a resolved case nor opens a new one. Short, no question, thanks and nothing else.
_THANKS = re.compile(
    r"^\W*(?:(?:ok(?:ay)?|great|perfect|wonderful|brilliant|all (?:good|sorted|fine)(?: now)?|"
    r"(?:many|big|thanks?|thank you) (?:thanks|again)|thanks?(?: (?:a lot|so much|very much|"
    r"again))?|thank you(?: (?:so much|very much|again|for (?:your|the) help))?|cheers|"
    r"much appreciated|merci(?: beaucoup)?|danke(?: schön| sehr)?|vielen dank|gracias|"
    r"muchas gracias)\W*)+$",
    re.IGNORECASE,
)
_THANKS_MAX_WORDS = 12


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
    """The customer adds to their own case; unless `wakes_case` is false (a mere thank
    you), a case that waited for them or was resolved lately goes back to work."""

    case: Case
    wakes_case: bool = True


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
    """A new inquiry, with its classification; linked to the finished case it answers
    (closed, or resolved longer ago than `reopen_days`)."""

    classification: Classification
    previous_case: Case | None = None


Decision = Ignore | Duplicate | FollowUp | StatusRequest | NotYours | NewCase


def route_message(
    email: InboundEmail,
    classification: Classification | None,
    settings: Settings,
    history: IntakeHistory,
    now: datetime,
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
    thread = find_thread(email.sender, [email.in_reply_to, *email.references],
                         tracking_numbers(email, settings.tracking_prefix))
    if thread is not None and not thread.sender_may_see:
        return NotYours(thread.case)
    asks_status = is_status_question(email)
    if thread is not None:
        if asks_status:
            return StatusRequest(thread.case)
        if is_thanks_only(email):
            return FollowUp(thread.case, wakes_case=False)
        if is_finished(thread.case, settings, now):
            # The resolution email said "reply and we will reopen": past the window, a
            # new case linked to this one is how that promise is kept.
            return NewCase(classification, previous_case=thread.case)
        return FollowUp(thread.case)
    if classification is None:
        raise ValueError(f"{email.message_id} needs a classification to open a case")
    if asks_status and classification.process == GENERAL:
        # Without a thread, only a message that asks for nothing else is a status question:
        # "change the status of my account to suspended" is a new request.
        return StatusRequest(None)
    return NewCase(classification)


def reopen_until(case: Case, settings: Settings) -> datetime | None:
    """Until when a customer's reply reopens this resolved case (None: not resolved)."""
    if case.resolved_at is None:
        return None
    return case.resolved_at + timedelta(days=settings.reopen_days)


def is_finished(case: Case, settings: Settings, now: datetime) -> bool:
    """Closed, or resolved longer ago than `reopen_days`: a reply opens a new case."""
    if case.status == CaseStatus.CLOSED:
        return True
    until = reopen_until(case, settings)
    return case.status == CaseStatus.RESOLVED and until is not None and now > until


def is_thanks_only(email: InboundEmail) -> bool:
    """A short reply that only thanks us ("Merci beaucoup, thank you!")."""
    text = email.text.strip()
    return (len(text.split()) <= _THANKS_MAX_WORDS and "?" not in text
            and bool(_THANKS.match(text)))


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
