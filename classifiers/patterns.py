"""Token patterns for field extraction, kept as data: one small function per rule.

Each function's name is the rule name shown by `--explain`, and its docstring lists the
strings it is meant to catch. Patterns read only attributes the Matcher checks in C (LOWER,
NORM, SHAPE, IS_DIGIT...) on a pattern's first token, so scanning a Doc stays cheap; the
one REGEX predicate sits after a keyword. NORM is the folded form from language.py, where
every digit run reads "0": "INV-2024-00123" -> "inv-0-0", "1.250,00" -> "0.0,0".
"""

from __future__ import annotations

from collections.abc import Callable

TokenPattern = list[dict[str, object]]

INVOICE_WORDS = [
    "invoice", "invoices", "inv", "bill", "rechnung", "rechnungsnummer", "rechnungsnr",
    "factura", "facturas", "facture", "factures", "fattura", "faktura",
]  # fmt: skip
ACCOUNT_WORDS = [
    "account", "acct", "acc", "a/c", "customer", "client", "cliente", "kundennummer",
    "kundennr", "kunden-nr", "compte", "cuenta", "kundenkonto", "konto", "member",
    "membership", "reference", "contract", "id", "vertrag", "contrato", "contrat",
]  # fmt: skip
# Words between a keyword and its number: "invoice no. 123", "account (ID 2207-NW)".
NUMBER_MARKERS = [
    "#", "no", "nr", "n", "°", "º", "nº", "n°", "num", "number", "numero", "número",
    "numéro", "nummer", "id", "ref", ":", ".", ",", "(", "is", "de", "n.º", "lautet", "es",
]  # fmt: skip
# Folded shapes an id may have: letters, then digits, separators, a short letter tail.
ID_NORM = r"^(?:[a-z]{1,6}[-/#.]?){0,2}0(?:[-/.](?:0|[a-z]{1,3}))*$"
INVOICE_ID_NORMS = [
    f"inv{separator}{digits}"
    for separator in ("", "-", "/", "#", ".", "_")
    for digits in ("0", "0-0", "0/0", "0-0-0", "0.0")
] + ["inv-ca-0", "inv-us-0", "inv-eu-0", "inv-uk-0"]

# Currency marks -> ISO 4217. "$" alone is USD; other dollars carry their prefix.
CURRENCY_SYMBOLS = {
    "$": "USD", "us$": "USD", "usd": "USD", "€": "EUR", "eur": "EUR", "£": "GBP",
    "gbp": "GBP", "chf": "CHF", "sfr": "CHF", "sfr.": "CHF", "cad": "CAD", "c$": "CAD",
    "ca$": "CAD", "can$": "CAD", "aud": "AUD", "a$": "AUD", "au$": "AUD", "nzd": "NZD",
    "nz$": "NZD", "jpy": "JPY", "¥": "JPY", "sek": "SEK", "nok": "NOK", "dkk": "DKK",
    "pln": "PLN", "inr": "INR", "₹": "INR", "mxn": "MXN", "mx$": "MXN", "brl": "BRL",
    "r$": "BRL", "zar": "ZAR", "sgd": "SGD", "s$": "SGD", "hkd": "HKD", "hk$": "HKD",
}  # fmt: skip
CURRENCY_WORDS = {
    "dollar": "USD", "dollars": "USD", "bucks": "USD", "euro": "EUR", "euros": "EUR",
    "pound": "GBP", "pounds": "GBP", "quid": "GBP", "franken": "CHF", "francs": "CHF",
}  # fmt: skip
# Folded amount shapes: "99", "45.50", "1,250.00", "1.250,00", "1'200.00", "300,-".
AMOUNT_NORMS = [
    "0", "0.0", "0,0", "0,0.0", "0.0,0", "0'0", "0'0.0", "0,0,0", "0,0,0.0", "0.0.0",
    "0.0.0,0", "0'0'0.0", "0,-", "0.-",
]  # fmt: skip
CHARGE_VERBS = ["charged", "charges", "charge", "billed", "bills", "invoiced", "overcharged"]

MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4,
    "apr": 4, "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11,
    "nov": 11, "december": 12, "dec": 12,
    "januar": 1, "jänner": 1, "februar": 2, "märz": 3, "mai": 5, "juni": 6, "juli": 7,
    "oktober": 10, "dezember": 12,
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7,
    "agosto": 8, "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11,
    "diciembre": 12,
    "janvier": 1, "février": 2, "mars": 3, "avril": 4, "juin": 6, "juillet": 7, "août": 8,
    "septembre": 9, "octobre": 10, "novembre": 11, "décembre": 12,
}  # fmt: skip
WEEKDAYS = {
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5,
    "sunday": 6, "montag": 0, "dienstag": 1, "mittwoch": 2, "donnerstag": 3, "freitag": 4,
    "lunes": 0, "martes": 1, "miércoles": 2, "jueves": 3, "viernes": 4,
    "lundi": 0, "mardi": 1, "mercredi": 2, "jeudi": 3, "vendredi": 4,
}  # fmt: skip
NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "ten": 10, "couple": 2, "zwei": 2, "drei": 3, "vier": 4, "dos": 2, "tres": 3,
    "cuatro": 4, "deux": 2, "trois": 3, "quatre": 4, "einer": 1, "una": 1, "une": 1,
}  # fmt: skip
PERIOD_UNITS = {
    "day": 1, "days": 1, "week": 7, "weeks": 7, "tage": 1, "tagen": 1, "woche": 7,
    "wochen": 7, "días": 1, "dias": 1, "semana": 7, "semanas": 7, "jours": 1,
    "semaine": 7, "semaines": 7,
}  # fmt: skip
NEXT_WORDS = ["next", "this", "coming", "nächsten", "nächster", "kommenden", "próximo", "este"]
AFTER_NEXT_WORDS = ["prochain", "próximo", "proximo"]
END_WORDS = ["end", "ende", "fin", "final"]
PERIOD_WORDS = ["month", "week", "year", "quarter", "monats", "monat", "mes", "mois"]

_DAY = {"NORM": {"IN": ["0", "0st", "0nd", "0rd", "0th", "0er"]}, "LENGTH": {"<=": 4}}
_YEAR = {"SHAPE": "dddd"}
_MONTH = {"LOWER": {"IN": list(MONTHS)}}
_MARKERS = {"LOWER": {"IN": NUMBER_MARKERS}, "OP": "{,3}"}
_ID = {"NORM": {"REGEX": ID_NORM}}
_AMOUNT = {"NORM": {"IN": AMOUNT_NORMS}}
_CENTS = {"SHAPE": {"IN": ["d.dd", "dd.dd", "ddd.dd", "d,ddd.dd", "d,dd", "dd,dd", "ddd,dd"]}}
_CURRENCY_BEFORE = {"LOWER": {"IN": list(CURRENCY_SYMBOLS)}}
_CURRENCY_AFTER = {"LOWER": {"IN": list(CURRENCY_SYMBOLS) + list(CURRENCY_WORDS)}}


def invoice_keyword_number() -> list[TokenPattern]:
    """'Invoice #48213', 'inv 7781', 'invoice number 2024/0456', 'Rechnung Nr. 4411',
    'factura 2031', 'facture n° 7745', 'bill no. W-2026-03312', 'invoice INV-2026-0042'."""
    return [[{"LOWER": {"IN": INVOICE_WORDS}}, _MARKERS, _ID]]


def invoice_parenthesised_id() -> list[TokenPattern]:
    """An id in brackets a few words after the keyword: 'the invoice you sent last week
    (#8820)', 'the first invoice after reopening (R-20455)'."""
    return [
        [
            {"LOWER": {"IN": INVOICE_WORDS}},
            {"IS_PUNCT": False, "OP": "{,6}"},
            {"ORTH": "("},
            {"ORTH": "#", "OP": "?"},
            _ID,
            {"ORTH": ")"},
        ]
    ]


def invoice_prefixed_id() -> list[TokenPattern]:
    """An id that names itself: 'INV-2024-00123', 'INV00123', 'inv#7781', 'INV-CA-2218'."""
    return [[{"NORM": {"IN": INVOICE_ID_NORMS}}]]


def account_keyword_number() -> list[TokenPattern]:
    """'account 10-4432', 'acct #A-99812', 'customer number 55231', 'Kundennummer: K-229104',
    'numéro client FR-30981', 'our account (ID 2207-NW)', 'Member #D-207',
    'customer reference 330-771-92', 'contract no. CA-2021-118', 'cuenta n.º 00451-7'."""
    return [[{"LOWER": {"IN": ACCOUNT_WORDS}}, _MARKERS, _ID]]


def amount_currency_first() -> list[TokenPattern]:
    """'$1,250.00', 'USD 99', '£45.50', '€300', "CHF 1'200.00", 'A$4,120.00', '€ 2 340,00'."""
    return [
        [_CURRENCY_BEFORE, _AMOUNT],
        [_CURRENCY_BEFORE, {"IS_DIGIT": True, "LENGTH": {"<=": 3}}, {"SHAPE": "ddd,dd"}],
    ]


def amount_currency_last() -> list[TokenPattern]:
    """'1.250,00 EUR', '99 dollars', '640 bucks', '89,00 €', '2 340,00 €', '45 pounds'."""
    return [
        [_AMOUNT, _CURRENCY_AFTER],
        [{"IS_DIGIT": True, "LENGTH": {"<=": 3}}, {"SHAPE": "ddd,dd"}, _CURRENCY_AFTER],
    ]


def amount_bare_charge() -> list[TokenPattern]:
    """An amount with cents but no currency, next to a charge word: 'charges me 25.00',
    'billed us 310.50', 'the 12.99 charge', 'a 7.50 fee'."""
    return [
        [
            {"LOWER": {"IN": CHARGE_VERBS}},
            {"LOWER": {"IN": ["me", "us", "them", "you"]}, "OP": "?"},
            _CENTS,
        ],
        [_CENTS, {"LOWER": {"IN": ["charge", "fee", "payment", "debit"]}}],
    ]


def date_month_day() -> list[TokenPattern]:
    """'March 15', 'March 15th', 'Mar 15, 2026', 'April 8 2026'."""
    return [[_MONTH, _DAY, {"ORTH": ",", "OP": "?"}, {**_YEAR, "OP": "?"}]]


def date_day_month() -> list[TokenPattern]:
    """'15 March 2026', 'the 27th of March', '15. März 2026', '15 de marzo de 2026',
    '1er avril', '30 avril'."""
    return [
        [
            _DAY,
            {"LOWER": {"IN": ["of", "de", "."]}, "OP": "?"},
            _MONTH,
            {"LOWER": {"IN": ["de", ","]}, "OP": "?"},
            {**_YEAR, "OP": "?"},
        ]
    ]


def date_numeric() -> list[TokenPattern]:
    """'15/03/2026', '03/15/2026', '2026-03-15', '15.03.2026', and with a cue '15/03'."""
    return [[{"NORM": {"IN": ["0/0/0", "0.0.0", "0-0-0", "0/0", "0.0"]}}]]


def date_weekday() -> list[TokenPattern]:
    """'next Friday', 'this Monday', 'nächsten Freitag', 'vendredi prochain', 'by Friday'."""
    weekday = {"LOWER": {"IN": list(WEEKDAYS)}}
    return [
        [{"LOWER": {"IN": NEXT_WORDS}}, weekday],
        [weekday, {"LOWER": {"IN": AFTER_NEXT_WORDS}}],
        [{"LOWER": {"IN": ["by", "on", "until", "till", "before", "bis", "hasta"]}}, weekday],
    ]


def date_end_of_period() -> list[TokenPattern]:
    """'end of the month', 'end of next month', 'Ende des Monats', 'fin de mes', 'fin du mois'."""
    return [
        [
            {"LOWER": {"IN": END_WORDS}},
            {"LOWER": {"IN": ["of", "des", "de", "du", "del"]}, "OP": "?"},
            {"LOWER": {"IN": ["the", "this", "next", "el", "la", "le"]}, "OP": "?"},
            {"LOWER": {"IN": PERIOD_WORDS}},
        ],
        [{"LOWER": {"IN": ["monatsende", "month-end"]}}],
    ]


def date_in_period() -> list[TokenPattern]:
    """'in two weeks', 'in 10 days', 'within 30 days', 'in zwei Wochen', 'dans deux semaines'."""
    return [
        [
            {"LOWER": {"IN": ["in", "within", "innerhalb", "en", "dans"]}},
            {"LOWER": {"IN": ["von", "a"]}, "OP": "?"},
            {"LOWER": {"IN": list(NUMBER_WORDS)}, "OP": "?"},
            {"IS_DIGIT": True, "LENGTH": {"<=": 2}, "OP": "?"},
            {"LOWER": {"IN": ["more", "of"]}, "OP": "?"},
            {"LOWER": {"IN": list(PERIOD_UNITS)}},
        ]
    ]


def date_next_period() -> list[TokenPattern]:
    """'tomorrow', 'next week', 'next month', 'nächsten Monat', 'próximo mes', 'mois prochain'."""
    return [
        [{"LOWER": {"IN": ["tomorrow", "mañana", "demain"]}}],
        [
            {"LOWER": {"IN": ["next", "nächste", "nächsten", "próximo", "proximo"]}},
            {"LOWER": {"IN": ["week", "month", "woche", "monat", "semana", "mes"]}},
        ],
        [{"LOWER": {"IN": ["mois", "semaine"]}}, {"LOWER": "prochain"}],
    ]


# Rule -> the field it finds. Order matters only for the explanation's listing.
RULES: dict[str, tuple[str, Callable[[], list[TokenPattern]]]] = {
    rule.__name__: (field, rule)
    for field, rule in [
        ("invoice_number", invoice_keyword_number),
        ("invoice_number", invoice_parenthesised_id),
        ("invoice_number", invoice_prefixed_id),
        ("account_number", account_keyword_number),
        ("amount", amount_currency_first),
        ("amount", amount_currency_last),
        ("amount", amount_bare_charge),
        ("requested_date", date_month_day),
        ("requested_date", date_day_month),
        ("requested_date", date_numeric),
        ("requested_date", date_weekday),
        ("requested_date", date_end_of_period),
        ("requested_date", date_in_period),
        ("requested_date", date_next_period),
    ]
}
