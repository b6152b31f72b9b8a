"""The multilingual billing lexicon (lexicon.toml), compiled for per-word lookups.

Looked up once per vocabulary entry (a lexeme attribute), never per token.
"""

from __future__ import annotations

import functools
import re
import tomllib
from pathlib import Path

LEXICON_PATH = Path(__file__).with_name("lexicon.toml")
MIN_CONTAINS_CHARS = 5


@functools.cache
def _compiled() -> tuple[dict[str, str], re.Pattern[str], re.Pattern[str]]:
    """Whole words to concept, one regex for word beginnings and one for compound parts
    (a named group per concept)."""
    with LEXICON_PATH.open("rb") as handle:
        concepts = tomllib.load(handle)["concepts"]
    exact: dict[str, str] = {}
    starts, contains = [], []
    for name, entry in concepts.items():
        exact.update((word, f"@{name}") for word in entry.get("exact", []))
        words = sorted(entry.get("starts", []), key=len, reverse=True)
        if words:
            starts.append(f"(?P<{name}>{'|'.join(map(re.escape, words))})")
        parts = [part for part in entry.get("contains", []) if len(part) >= MIN_CONTAINS_CHARS]
        if parts:
            contains.append(f"(?P<{name}>{'|'.join(map(re.escape, parts))})")
    return exact, re.compile("|".join(starts)), re.compile("|".join(contains))


def concept_of(folded: str) -> str:
    """The concept tag of a folded word, or "" when it has none.

    "suspended" -> "@pause", "winterpause" -> "@pause", "tarjeta" -> "@payment_means".
    """
    exact, starts, contains = _compiled()
    if folded in exact:
        return exact[folded]
    # A compound's last part carries its meaning ("Rechnungskopie" is a copy), so parts first.
    match = contains.search(folded) or starts.match(folded)
    return f"@{match.lastgroup}" if match else ""
