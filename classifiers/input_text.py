"""What of an email reaches the Doc, and where its parts start.

One Doc holds the subject, the new text and, after it, the start of any quoted history the
caller left in. The classifier reads only subject and new text; the extractor reads all of
it, preferring the new text, because a reply often names its invoice only in the quote
("Re: Payment reminder" ... "> invoice 600213 is due on 17/03/2026").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from spacy.attrs import IDX
from spacy.language import Language
from spacy.tokens import Doc

from classifiers.language import doc_columns

MAX_TEXT_CHARS = 1500
MAX_SUBJECT_CHARS = 300
MAX_QUOTED_CHARS = 600
SEPARATOR = " \n "
REGIONS_KEY = "billing_inbox.regions"
# Where a reply's quoted history starts: "> ..." lines, "On <date>, <name> wrote:" (and
# the German, French and Spanish forms), Outlook's "-----Original Message-----" or
# "From: ... / Sent: ..." block. A forwarded message ("From: ... / Date: ...") is new
# text: it is often the request itself.
# spaCy's tokenizer splits on spaces only and caches each space-separated chunk; a chunk
# glued by a newline ("regards,\nPriya") is unique and takes the slow path, which made
# tokenising an email several times slower. Newlines become their own chunk.
# str.replace, not str.translate: translate with a table is slow on non-ASCII text.
_ODD_SPACES = (("\r", ""), ("\t", " "), ("\f", " "), ("\v", " "), ("\u00a0", " "))
_QUOTE_MARKERS = ("original message", "wrote", "schrieb", "écrit", "escribió", "from:")
QUOTED_HISTORY = re.compile(
    r"^[ \t]*>"
    r"|^-{2,}\s*Original Message"
    r"|^(?:On|Am|Le|El)\b[^\n]{0,200}(?:\n[^\n]{0,100})?\b(?:wrote|schrieb|a écrit|escribió)\b"
    r"|^From:[^\n]*\n(?:Sent|Gesendet|Envoyé|Enviado):",
    re.MULTILINE | re.IGNORECASE,
)


@dataclass(frozen=True)
class Regions:
    """Character offsets in the Doc text: the subject ends, the quoted history starts."""

    subject_end: int
    quoted_start: int
    text: str


def make_input_doc(nlp: Language, subject: str, text: str) -> Doc:
    """Tokenise subject, new text and a little quoted history as one Doc.

    Only the first MAX_TEXT_CHARS of the new text (and MAX_SUBJECT_CHARS of the subject) are
    kept, cut at a space: the request is almost always near the top, and the tail
    (signatures, disclaimers) costs time.
    """
    subject = truncate_text(" ".join(subject.split()), MAX_SUBJECT_CHARS)
    new_text, quoted = split_quoted_history(text.strip())
    head = f"{subject}{SEPARATOR}" if subject else ""
    body = separate_lines(truncate_text(new_text.strip(), MAX_TEXT_CHARS))
    tail = separate_lines(truncate_text(quoted, MAX_QUOTED_CHARS))
    joined = f"{head}{body}{SEPARATOR}{tail}" if tail else f"{head}{body}"
    doc = nlp.make_doc(joined)
    # The text is kept because Doc.text rebuilds it token by token, every time.
    doc.user_data[REGIONS_KEY] = Regions(len(subject), len(head) + len(body), joined)
    return doc


def regions(doc: Doc) -> Regions:
    """The Regions of a make_input_doc() Doc; a plain Doc is all new text."""
    found = doc.user_data.get(REGIONS_KEY)
    if found is None:
        text = doc.text
        return Regions(0, len(text), text)
    return found


def token_offsets(doc: Doc) -> np.ndarray:
    """Each token's character offset in the Doc text (uint64), read once per Doc."""
    return doc_columns(doc, (IDX,))


def separate_lines(text: str) -> str:
    """Each line break as a chunk of its own (" \n "), blank lines dropped, tabs and
    non-breaking spaces as plain spaces. (Plain str methods: a regex here cost as much as
    tokenising.)"""
    for odd, plain in _ODD_SPACES:
        if odd in text:
            text = text.replace(odd, plain)
    return " \n ".join(line for line in (part.strip() for part in text.split("\n")) if line)


def split_quoted_history(text: str) -> tuple[str, str]:
    """(new text, quoted history); all new text when nothing new comes before a quote."""
    head = text[: MAX_TEXT_CHARS + MAX_QUOTED_CHARS]
    lowered = head.lower()
    # Substring tests first: most mail has no quote, and they are far cheaper than the regex.
    if ">" not in head and not any(marker in lowered for marker in _QUOTE_MARKERS):
        return text, ""
    quoted = QUOTED_HISTORY.search(head)
    if quoted is None or not text[: quoted.start()].strip():
        return text, ""
    return text[: quoted.start()], text[quoted.start() :]


def truncate_text(text: str, limit: int) -> str:
    """At most `limit` characters, ending at whitespace when there is any in the last 40."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", limit - 40, limit)
    return text[: cut if cut > 0 else limit]
