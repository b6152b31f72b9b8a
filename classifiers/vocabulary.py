"""The billing words the extraction rules are built from, in English, German, Spanish and
French: invoice and account words, currency marks, month and weekday names, number words.

Plain data. patterns.py turns it into Matcher patterns, money.py and dates.py read values
with it. Adding a language is adding its words here (and to lexicon.toml for the classifier).
"""

from __future__ import annotations

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
