"""Separating what the customer just wrote from the quoted history below it.

Conservative on purpose: cutting real content is worse than keeping some history, so
we only cut at markers that mail clients write (attribution lines, Outlook header blocks,
"Original Message" rules, `>` quoting, the `-- ` signature separator).
"""

from __future__ import annotations

import re

# "On Mon, 3 Mar 2026 at 10:12, Billing <billing@x.com> wrote:" and its translations.
_ATTRIBUTION = re.compile(
    r"^\s*(on|am|le|el|il|op|em)\b.{0,400}?"
    r"(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu)\s*:\s*$",
    re.IGNORECASE,
)
# German and Dutch clients put the verb first: "Am 2. März 2026 schrieb Billing <b@x>:".
_VERB_FIRST_ATTRIBUTION = re.compile(
    r"^\s*(am|op)\b.{0,200}?\b(schrieb|schreef)\b.{0,200}:\s*$", re.IGNORECASE
)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|"
    r"mensaje original|messaggio originale|oorspronkelijk bericht)\s*-{2,}\s*$",
    re.IGNORECASE,
)
# Outlook quotes a header block: From/Von/De ... then Sent/Gesendet/Envoyé/Date.
_HEADER_FROM = re.compile(r"^\s*\*?(from|von|de|da|van)\s*\*?\s*:\s*\S", re.IGNORECASE)
_HEADER_SENT = re.compile(
    r"^\s*\*?(sent|date|gesendet|datum|envoyé|enviado|fecha|inviato|verzonden)\s*\*?\s*:",
    re.IGNORECASE,
)
_HEADER_SUBJECT = re.compile(
    r"^\s*\*?(subject|betreff|objet|asunto|oggetto|onderwerp)\s*\*?\s*:", re.IGNORECASE
)
_SIGNATURE = re.compile(r"^(-- ?|—— ?)$")
_MOBILE_FOOTER = re.compile(r"^\s*(sent from my \w+|get outlook for \w+)", re.IGNORECASE)


def new_text(text: str) -> str:
    """The part of a plain-text body the sender wrote now, without quotes or signature.

    >>> new_text("Please send a copy.\\n\\nOn Mon, 2 Mar 2026, Billing wrote:\\n> Hello")
    'Please send a copy.'
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    end = _history_start(lines)
    kept = [line for line in lines[:end] if not line.lstrip().startswith(">")]
    kept = [line for line in kept if not _MOBILE_FOOTER.match(line)]
    return "\n".join(kept).strip()


def _history_start(lines: list[str]) -> int:
    """Index of the first line of quoted history or signature (len(lines) if none)."""
    for index, line in enumerate(lines):
        if _SIGNATURE.match(line) or _ORIGINAL_MESSAGE.match(line):
            return index
        # Clients wrap long attribution lines, so try the line joined with the next one.
        joined = line if index + 1 >= len(lines) else f"{line} {lines[index + 1]}"
        if _is_attribution(line, joined):
            return index
        if _HEADER_FROM.match(line) and _is_quoted_header_block(lines[index + 1 : index + 6]):
            return _skip_rule_above(lines, index)
    return len(lines)


def _is_attribution(line: str, joined: str) -> bool:
    if _ATTRIBUTION.match(line) or _VERB_FIRST_ATTRIBUTION.match(line):
        return True
    wrapped = not line.rstrip().endswith((".", "!", "?"))
    return wrapped and bool(_ATTRIBUTION.match(joined) or _VERB_FIRST_ATTRIBUTION.match(joined))


def _is_quoted_header_block(following: list[str]) -> bool:
    """Sent/Date and Subject lines under a From: line: a client quoting a message.

    Both are required, so a customer writing "From: Jane / To: Mark / Date: 1 April" about
    a contact change keeps their text.
    """
    return any(_HEADER_SENT.match(line) for line in following) and any(
        _HEADER_SUBJECT.match(line) for line in following
    )


def _skip_rule_above(lines: list[str], index: int) -> int:
    """Include Outlook's `____` rule above a quoted header block in the history."""
    if index > 0 and set(lines[index - 1].strip()) == {"_"}:
        return index - 1
    return index
