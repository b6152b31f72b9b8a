"""Token patterns for field extraction, kept as data: one small function per rule.

Each function's name is the rule name shown by `--explain`, and its docstring lists the
strings it is meant to catch; the words themselves are in vocabulary.py. The first token of
every pattern, and most others, is a word class (below), which the extractor stores as a
lexeme flag: the Matcher tries every pattern at every token of a window, and a flag is a
check in C where a set lookup or a regex is a call into Python. Each Rule also names its
anchor, the word class that decides where the Matcher runs at all. NORM is the folded form
from language.py, where every digit run reads "0": "INV-2024-00123" -> "inv-0-0",
"1.250,00" -> "0.0,0".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from classifiers.vocabulary import (
    ACCOUNT_WORDS,
    AFTER_NEXT_WORDS,
    AMOUNT_NORMS,
    CHARGE_VERBS,
    CURRENCY_SYMBOLS,
    CURRENCY_WORDS,
    END_WORDS,
    ID_NORM,
    INVOICE_ID_NORMS,
    INVOICE_WORDS,
    MONTHS,
    NEXT_WORDS,
    NUMBER_MARKERS,
    NUMBER_WORDS,
    PERIOD_UNITS,
    PERIOD_WORDS,
    WEEKDAYS,
)

TokenPattern = list[dict[str, object]]

DAY_SHAPES = ["d", "dd", "dxx", "ddxx"]  # "5", "15", "1st", "15th", "1er"
CENTS_SHAPES = ["d.dd", "dd.dd", "ddd.dd", "d,ddd.dd", "d,dd", "dd,dd", "ddd,dd"]
NUMERIC_DATE_NORMS = ["0/0/0", "0.0.0", "0-0-0", "0/0", "0.0"]
WEEKDAY_LEADS = [*NEXT_WORDS, "by", "on", "until", "till", "before", "bis", "hasta"]
PERIOD_LEADS = ["in", "within", "innerhalb", "en", "dans"]
NEXT_LEADS = ["tomorrow", "mañana", "demain", "next", "nächste", "nächsten", "próximo"]

# Word classes for the tokens of a pattern: (what is compared, the values). "lower" is the
# lowercased text, "norm" the folded form, "shape" spaCy's word shape ("15th" -> "ddxx");
# "norm_pattern" is a regular expression the whole folded form matches. Tested once per
# vocabulary entry and stored as a lexeme flag.
WORD_CLASSES: dict[str, tuple[str, list[str]]] = {
    "invoice_word": ("lower", INVOICE_WORDS),
    "invoice_id": ("norm", INVOICE_ID_NORMS),
    "account_word": ("lower", ACCOUNT_WORDS),
    "currency_mark": ("lower", list(CURRENCY_SYMBOLS)),
    "amount_number": ("norm", AMOUNT_NORMS),
    "short_number": ("shape", ["d", "dd", "ddd"]),
    "cents_number": ("shape", CENTS_SHAPES),
    "charge_verb": ("lower", CHARGE_VERBS),
    "month": ("lower", list(MONTHS)),
    "day_number": ("shape", DAY_SHAPES),
    "numeric_date": ("norm", NUMERIC_DATE_NORMS),
    "weekday": ("lower", list(WEEKDAYS)),
    "weekday_lead": ("lower", WEEKDAY_LEADS),
    "period_end": ("lower", END_WORDS),
    "period_lead": ("lower", PERIOD_LEADS),
    "next_lead": ("lower", [*NEXT_LEADS, "mois", "semaine"]),
    "lone_date_word": ("lower", ["tomorrow", "mañana", "demain", "monatsende", "month-end"]),
    "currency_after": ("lower", [*CURRENCY_SYMBOLS, *CURRENCY_WORDS]),
    "period_unit": ("lower", list(PERIOD_UNITS)),
    "open_bracket": ("lower", ["("]),
    "number_marker": ("lower", NUMBER_MARKERS),
    "id_like": ("norm_pattern", [ID_NORM]),
}
FIRST_FLAG = 20  # spaCy leaves lexeme flags FLAG19..FLAG63 to applications


def word(word_class: str) -> dict[str, object]:
    """A token spec matching one word class: word("month") matches "March", "märz"."""
    return {f"FLAG{FIRST_FLAG + list(WORD_CLASSES).index(word_class)}": True}


_YEAR = {"SHAPE": "dddd"}
_ID = word("id_like")
_MARKERS = {**word("number_marker"), "OP": "{,3}"}


def invoice_keyword_number() -> list[TokenPattern]:
    """'Invoice #48213', 'inv 7781', 'invoice number 2024/0456', 'Rechnung Nr. 4411',
    'factura 2031', 'facture n° 7745', 'bill no. W-2026-03312', 'invoice INV-2026-0042'."""
    return [[word("invoice_word"), _MARKERS, _ID]]


def invoice_parenthesised_id() -> list[TokenPattern]:
    """An id in brackets a few words after the keyword: 'the invoice you sent last week
    (#8820)', 'the first invoice after reopening (R-20455)'."""
    return [
        [
            word("invoice_word"),
            {"IS_PUNCT": False, "OP": "{,6}"},
            {"ORTH": "("},
            {"ORTH": "#", "OP": "?"},
            _ID,
            {"ORTH": ")"},
        ]
    ]


def invoice_prefixed_id() -> list[TokenPattern]:
    """An id that names itself: 'INV-2024-00123', 'INV00123', 'inv#7781', 'INV-CA-2218'."""
    return [[word("invoice_id")]]


def account_keyword_number() -> list[TokenPattern]:
    """'account 10-4432', 'acct #A-99812', 'customer number 55231', 'Kundennummer: K-229104',
    'numéro client FR-30981', 'our account (ID 2207-NW)', 'Member #D-207',
    'customer reference 330-771-92', 'contract no. CA-2021-118', 'cuenta n.º 00451-7'."""
    return [[word("account_word"), _MARKERS, _ID]]


def amount_currency_first() -> list[TokenPattern]:
    """'$1,250.00', 'USD 99', '£45.50', '€300', "CHF 1'200.00", 'A$4,120.00', '€ 2 340,00'."""
    return [
        [word("currency_mark"), word("amount_number")],
        [word("currency_mark"), word("short_number"), {"SHAPE": "ddd,dd"}],
    ]


def amount_currency_last() -> list[TokenPattern]:
    """'1.250,00 EUR', '99 dollars', '640 bucks', '89,00 €', '2 340,00 €', '45 pounds'."""
    return [
        [word("amount_number"), word("currency_after")],
        [word("short_number"), {"SHAPE": "ddd,dd"}, word("currency_after")],
    ]


def amount_bare_charge() -> list[TokenPattern]:
    """An amount with cents but no currency, next to a charge word: 'charges me 25.00',
    'billed us 310.50', 'the 12.99 charge', 'a 7.50 fee'."""
    return [
        [
            word("charge_verb"),
            {"LOWER": {"IN": ["me", "us", "them", "you"]}, "OP": "?"},
            word("cents_number"),
        ],
        [word("cents_number"), {"LOWER": {"IN": ["charge", "fee", "payment", "debit"]}}],
    ]


def date_month_day() -> list[TokenPattern]:
    """'March 15', 'March 15th', 'Mar 15, 2026', 'April 8 2026'."""
    return [[word("month"), word("day_number"), {"ORTH": ",", "OP": "?"}, {**_YEAR, "OP": "?"}]]


def date_day_month() -> list[TokenPattern]:
    """'15 March 2026', 'the 27th of March', '15. März 2026', '15 de marzo de 2026',
    '1er avril', '30 avril'."""
    return [
        [
            word("day_number"),
            {"LOWER": {"IN": ["of", "de", "."]}, "OP": "?"},
            word("month"),
            {"LOWER": {"IN": ["de", ","]}, "OP": "?"},
            {**_YEAR, "OP": "?"},
        ]
    ]


def date_numeric() -> list[TokenPattern]:
    """'15/03/2026', '03/15/2026', '2026-03-15', '15.03.2026', and with a cue '15/03'."""
    return [[word("numeric_date")]]


def date_weekday() -> list[TokenPattern]:
    """'next Friday', 'this Monday', 'nächsten Freitag', 'vendredi prochain', 'by Friday'."""
    return [
        [word("weekday_lead"), word("weekday")],
        [word("weekday"), {"LOWER": {"IN": AFTER_NEXT_WORDS}}],
    ]


def date_end_of_period() -> list[TokenPattern]:
    """'end of the month', 'end of next month', 'Ende des Monats', 'fin de mes', 'fin du mois'."""
    return [
        [
            word("period_end"),
            {"LOWER": {"IN": ["of", "des", "de", "du", "del"]}, "OP": "?"},
            {"LOWER": {"IN": ["the", "this", "next", "el", "la", "le"]}, "OP": "?"},
            {"LOWER": {"IN": PERIOD_WORDS}},
        ],
    ]


def date_in_period() -> list[TokenPattern]:
    """'in two weeks', 'in 10 days', 'within 30 days', 'in zwei Wochen', 'dans deux semaines'."""
    return [
        [
            word("period_lead"),
            {"LOWER": {"IN": ["von", "a"]}, "OP": "?"},
            {"LOWER": {"IN": list(NUMBER_WORDS)}, "OP": "?"},
            {"IS_DIGIT": True, "LENGTH": {"<=": 2}, "OP": "?"},
            {"LOWER": {"IN": ["more", "of"]}, "OP": "?"},
            {"LOWER": {"IN": list(PERIOD_UNITS)}},
        ]
    ]


def date_single_word() -> list[TokenPattern]:
    """'tomorrow', 'mañana', 'demain', 'Monatsende', 'month-end'."""
    return [[word("lone_date_word")]]


def date_next_period() -> list[TokenPattern]:
    """'next week', 'next month', 'nächsten Monat', 'próximo mes', 'mois prochain'."""
    return [
        [
            word("next_lead"),
            {"LOWER": {"IN": ["week", "month", "woche", "monat", "semana", "mes", "prochain"]}},
        ],
    ]


@dataclass(frozen=True)
class Rule:
    """A named set of patterns for one field, and where in a Doc it can match.

    `anchor` is the word class every match contains, `before`/`after` how many tokens a
    match reaches before it and from it on: the extractor only runs the Matcher over
    those windows, because scanning every token of every email is the slow part. A rule
    that `needs_digit` is skipped where the window has no digit ("the invoice", "in May").
    """

    field: str
    patterns: Callable[[], list[TokenPattern]]
    anchor: str
    before: int = 0
    after: int = 1
    needs_digit: bool = True

    @property
    def name(self) -> str:
        return self.patterns.__name__


# Order matters only for the explanation's listing.
RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in [
        Rule("invoice_number", invoice_keyword_number, "invoice_word", after=5),
        Rule("invoice_number", invoice_parenthesised_id, "open_bracket", before=7, after=4),
        Rule("invoice_number", invoice_prefixed_id, "invoice_id"),
        Rule("account_number", account_keyword_number, "account_word", after=5),
        Rule("amount", amount_currency_first, "currency_mark", after=3),
        Rule("amount", amount_currency_last, "currency_after", before=2),
        Rule("amount", amount_bare_charge, "cents_number", before=2, after=2),
        Rule("requested_date", date_month_day, "month", after=4),
        Rule("requested_date", date_day_month, "month", before=2, after=3),
        Rule("requested_date", date_numeric, "numeric_date"),
        Rule("requested_date", date_weekday, "weekday", 1, 2, needs_digit=False),
        Rule("requested_date", date_end_of_period, "period_end", 0, 4, needs_digit=False),
        Rule("requested_date", date_in_period, "period_unit", 5, 1, needs_digit=False),
        Rule("requested_date", date_single_word, "lone_date_word", needs_digit=False),
        Rule("requested_date", date_next_period, "next_lead", 0, 2, needs_digit=False),
    ]
}
