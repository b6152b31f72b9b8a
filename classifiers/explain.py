"""Explaining one classification: which words pushed it, and which extraction rules fired.

Leave-one-word-out: each distinct word of the subject and new text is taken out in turn
and the email scored again; how much the explained process's log-odds fall without the word
is that word's push (negative: it pulled the other way). Log-odds, not probability: a
confident decision sits at a probability of 1.0, where taking one word out changes nothing
that a probability can show. Slow (one scoring per word), so only for
`billing-inbox classify --explain`, never for the inbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from spacy.attrs import IS_PUNCT, IS_SPACE
from spacy.tokens import Doc

from classifiers.classification import Classification, ClassifierInput, json_value
from classifiers.features import negated_positions
from classifiers.input_text import REGIONS_KEY, Regions, make_input_doc, regions
from classifiers.language import CONCEPT_COLUMN, lexeme_columns
from classifiers.reading import RuleMatch
from classifiers.training import TEXTCAT

if TYPE_CHECKING:
    from classifiers.model import ProcessClassifier

MAX_WORDS = 12


@dataclass(frozen=True)
class WordPush:
    """One word and how much it raised the explained process's log-odds (natural log)."""

    word: str
    push: float
    negated: bool


@dataclass(frozen=True)
class Explanation:
    """The classification, the process explained (its best guess), the strongest words
    and every extraction rule that matched."""

    classification: Classification
    explained: str
    words: tuple[WordPush, ...]
    rules: tuple[RuleMatch, ...]

    def to_json(self) -> dict[str, object]:
        """Plain JSON-ready shape for `billing-inbox classify --explain --json`."""
        return {
            **self.classification.to_json(),
            "explained_process": self.explained,
            "words": [
                {"word": w.word, "push": round(w.push, 4), "negated": w.negated} for w in self.words
            ],
            "rules": [
                {"field": r.field, "rule": r.rule, "text": r.text, "value": json_value(r.value)}
                for r in self.rules
            ],
        }


def explain_classification(classifier: ProcessClassifier, item: ClassifierInput) -> Explanation:
    """Classify `item` and say why (see module docstring)."""
    classification = classifier.classify(item)
    explained = classification.best_guess
    doc = make_input_doc(classifier.nlp, item.subject, item.text)
    textcat = classifier.nlp.get_pipe(TEXTCAT)
    words = _words_by_norm(doc)
    variants = [_without(doc, set(positions)) for positions in words.values()]
    column = list(textcat.labels).index(explained)
    whole, *without_each = _log_odds(textcat.predict([doc, *variants]), column)
    concepts = lexeme_columns(doc)[:, CONCEPT_COLUMN]
    negated = set(negated_positions(concepts, _negation_scope(textcat)))
    pushes = [
        WordPush(doc[positions[0]].text, whole - odds,
                 any(position in negated for position in positions))
        for positions, odds in zip(words.values(), without_each, strict=True)
    ]  # fmt: skip
    pushes.sort(key=lambda push: -abs(push.push))
    rules = classifier.extractor.find_matches(doc, item.received_at.date())
    return Explanation(classification, explained, tuple(pushes[:MAX_WORDS]), tuple(rules))


def format_explanation(explanation: Explanation) -> str:
    """Plain text for a terminal: decision, words with their push, rules that matched."""
    result = explanation.classification
    lines = [
        f"process: {result.process} (best guess {explanation.explained}, "
        f"confidence {result.confidence:.2f})",
        "",
        f"words that pushed towards {explanation.explained} (+) or away (-):",
    ]
    for word in explanation.words:
        marker = "  (negated)" if word.negated else ""
        lines.append(f"  {word.push:+.3f}  {word.word}{marker}")
    lines += ["", "extraction rules that matched:"]
    lines += [f"  {r.field:<15} {r.rule:<26} {r.text!r} -> {r.value}" for r in explanation.rules]
    if not explanation.rules:
        lines.append("  (none)")
    return "\n".join(lines)


def _log_odds(probabilities: np.ndarray, column: int) -> list[float]:
    """ln(p / (1 - p)) of one class per row, with 1 - p summed from the other classes:
    near certainty, float32 rounds p to 1.0, but the others keep their precision."""
    rows = np.asarray(probabilities, dtype=np.float64)
    others = np.delete(rows, column, axis=1).sum(axis=1)
    tiny = np.finfo(np.float32).tiny
    return list(np.log(np.maximum(rows[:, column], tiny)) - np.log(np.maximum(others, tiny)))


def _words_by_norm(doc: Doc) -> dict[str, list[int]]:
    """Token positions of each distinct word (by folded form) in subject and new text."""
    quoted_start = regions(doc).quoted_start
    kinds = doc.to_array([IS_SPACE, IS_PUNCT])
    words: dict[str, list[int]] = {}
    for token in doc:
        if token.idx >= quoted_start:
            break
        if not kinds[token.i].any():
            words.setdefault(token.norm_, []).append(token.i)
    return words


def _without(doc: Doc, dropped: set[int]) -> Doc:
    """A copy of a make_input_doc() Doc without some tokens, its regions moved to match."""
    area = regions(doc)
    kept = [token for token in doc if token.i not in dropped]
    copy = Doc(doc.vocab, [t.text for t in kept], [bool(t.whitespace_) for t in kept])
    subject_end = quoted_start = len(copy.text)
    for old, new in zip(kept, copy, strict=True):
        if old.idx >= area.subject_end and subject_end == len(copy.text):
            subject_end = new.idx
        if old.idx >= area.quoted_start:
            quoted_start = new.idx
            break
    copy.user_data[REGIONS_KEY] = Regions(min(subject_end, quoted_start), quoted_start, copy.text)
    return copy


def _negation_scope(textcat) -> int:
    """How many words a negation covers in this model (stored in its featuriser layer)."""
    for layer in textcat.model.walk():
        if layer.name == "billing_ngrams":
            return int(layer.attrs["negation_scope"])
    return 0
