"""Turning a matched amount into Decimal plus an ISO 4217 currency code.

Separators follow the writer's convention: the last "." or "," followed by one or two
digits is the decimal point, anything else groups thousands.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from classifiers.vocabulary import CURRENCY_SYMBOLS, CURRENCY_WORDS

_GROUPING = str.maketrans("", "", "' \u00a0\u202f")


def parse_amount(text: str) -> Decimal | None:
    """Digits as written -> Decimal, or None when it is not a number.

    "1,250.00" -> 1250.00, "1.250,00" -> 1250.00, "1'200.00" -> 1200.00,
    "2 340,00" -> 2340.00, "300,-" -> 300, "1.250" -> 1250, "45.5" -> 45.5.
    """
    cleaned = text.translate(_GROUPING).removesuffix("-").rstrip(".,")
    last = max(cleaned.rfind(","), cleaned.rfind("."))
    if last == -1:
        whole, fraction = cleaned, ""
    else:
        whole, fraction = cleaned[:last], cleaned[last + 1 :]
        whole = whole.replace(",", "").replace(".", "")
        if len(fraction) == 3:  # "1,250" or "1.250": a thousands group, not cents
            whole, fraction = whole + fraction, ""
    if not whole.isdigit() or (fraction and not fraction.isdigit()):
        return None
    try:
        return Decimal(f"{whole}.{fraction}" if fraction else whole)
    except InvalidOperation:
        return None


def currency_code(mark: str) -> str | None:
    """A currency symbol, code or word -> ISO code: "$" -> "USD", "€" -> "EUR", "bucks" -> "USD"."""
    lowered = mark.lower()
    return CURRENCY_SYMBOLS.get(lowered) or CURRENCY_WORDS.get(lowered)
