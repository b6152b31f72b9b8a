"""Reading the dates customers write, absolute or relative, as calendar dates.

Relative phrases are resolved against the day the email was received (the caller's clock):
- "next Friday" is the Friday of the following calendar week (Monday-based), "this Friday",
  "on Friday" and "by Friday" the first Friday after the received day;
- "end of the month" is the last day of the received month, "end of next month" the last
  day of the month after, "end of the week" the coming Friday;
- "in two weeks" / "within 10 days" add to the received day, "next month" is its first day;
- a date without a year is in the received year, unless that is more than 60 days back, in
  which case it is next year ("5 January" written in December means the coming January).
Numeric dates: a four-digit first part is year-month-day; otherwise, when one part is over
12 the order is clear; else "." means day-month, and "/" or "-" means month-day only when
the email is in US dollars (the caller passes `day_first`), day-month everywhere else.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

from classifiers.vocabulary import MONTHS, NUMBER_WORDS, PERIOD_UNITS, WEEKDAYS

_PAST_WINDOW = timedelta(days=60)
_NUMERIC_PARTS = re.compile(r"\d+")


def interpret_date(
    rule: str, words: list[str], received: date, day_first: bool
) -> tuple[date | None, bool]:
    """(date, complete) for a matched phrase; complete is False for a bare "15/03", which
    only counts after a cue word such as "by" or "until"."""
    lowered = [word.lower() for word in words]
    if rule in ("date_month_day", "date_day_month"):
        return calendar_date(lowered, received), True
    if rule == "date_numeric":
        return numeric_date(words[0], received, day_first)
    if rule == "date_weekday":
        return weekday_date(lowered, received), True
    if rule == "date_end_of_period":
        return end_of_period(lowered, received), True
    if rule == "date_in_period":
        return after_period(lowered, received), True
    if rule == "date_next_period":
        return next_period(lowered, received), True
    return None, False


def calendar_date(words: list[str], received: date) -> date | None:
    """["march", "15th"] or ["15", ".", "märz", "2026"] -> date; None if not a real day."""
    month = next((MONTHS[word.rstrip(".")] for word in words if word.rstrip(".") in MONTHS), 0)
    numbers = [int(match) for word in words for match in _NUMERIC_PARTS.findall(word)]
    day = next((number for number in numbers if number <= 31), 0)
    year = next((number for number in numbers if number >= 1900), None)
    return _safe_date(year, month, day, received)


def numeric_date(text: str, received: date, day_first: bool) -> tuple[date | None, bool]:
    """ "15/03/2026", "03/15/2026", "2026-03-15", "15.03.2026", "15/03" -> (date, complete)."""
    parts = [int(part) for part in _NUMERIC_PARTS.findall(text)]
    separator = "." if "." in text else text[len(_NUMERIC_PARTS.match(text)[0])]
    if len(parts) == 3 and len(_NUMERIC_PARTS.match(text)[0]) == 4:
        year, month, day = parts
        return _safe_date(year, month, day, received), True
    first, second = parts[0], parts[1]
    if first > 12 or (second <= 12 and (separator == "." or day_first)):
        day, month = first, second
    else:
        month, day = first, second
    if len(parts) == 2:
        return _safe_date(None, month, day, received), False
    year = parts[2] + 2000 if parts[2] < 100 else parts[2]
    return _safe_date(year, month, day, received), True


def is_numeric_date(text: str) -> bool:
    """True for "15/03/2026", "2026-03-15", "3.4.26": three numbers that form a real date in
    some order. "4420-18-7731" or "10-4432" are not."""
    parts = _NUMERIC_PARTS.findall(text)
    if len(parts) != 3 or not re.fullmatch(r"\d+[-/.]\d+[-/.]\d+", text):
        return False
    received = date(2000, 1, 1)  # any day: the year of a full date is written out
    return any(numeric_date(text, received, day_first)[0] for day_first in (True, False))


def weekday_date(words: list[str], received: date) -> date | None:
    """ "next friday" -> Friday of next week; "this/on/by friday" -> the first Friday after."""
    weekday = next((WEEKDAYS[word] for word in words if word in WEEKDAYS), None)
    if weekday is None:
        return None
    if words[0] in ("next", "nächsten", "nächster", "kommenden") or words[-1] in (
        "prochain",
        "próximo",
        "proximo",
    ):
        monday_next_week = received + timedelta(days=7 - received.weekday())
        return monday_next_week + timedelta(days=weekday)
    return received + timedelta(days=(weekday - received.weekday() - 1) % 7 + 1)


def end_of_period(words: list[str], received: date) -> date | None:
    """ "end of the month" -> last day of this month; "end of next month", "end of the week",
    "end of the quarter", "end of the year"."""
    step = 1 if "next" in words else 0
    if any(word in ("week",) for word in words):
        friday = received + timedelta(days=(4 - received.weekday()) % 7)
        return friday + timedelta(days=7 * step)
    if "year" in words:
        return date(received.year + step, 12, 31)
    if "quarter" in words:
        quarter_end_month = ((received.month - 1) // 3 + 1) * 3 + 3 * step
        return _last_day(*_add_months(received.year, quarter_end_month, 0))
    return _last_day(*_add_months(received.year, received.month, step))


def after_period(words: list[str], received: date) -> date | None:
    """ "in two weeks" -> received + 14 days; "within 10 days", "in a couple of weeks"."""
    unit = next((PERIOD_UNITS[word] for word in words if word in PERIOD_UNITS), 0)
    count = next((int(word) for word in words if word.isdigit()), None)
    if count is None:
        count = next((NUMBER_WORDS[word] for word in words if word in NUMBER_WORDS), None)
    if not unit or not count:
        return None
    return received + timedelta(days=unit * count)


def next_period(words: list[str], received: date) -> date | None:
    """ "tomorrow" -> +1 day; "next week" -> its Monday; "next month" -> its first day."""
    if words[0] in ("tomorrow", "mañana", "demain"):
        return received + timedelta(days=1)
    if any(word in ("week", "woche", "semana", "semaine") for word in words):
        return received + timedelta(days=7 - received.weekday())
    year, month = _add_months(received.year, received.month, 1)
    return date(year, month, 1)


def _safe_date(year: int | None, month: int, day: int, received: date) -> date | None:
    """A valid date or None; a missing year is inferred as described in the module doc."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    try:
        if year is not None:
            return date(year, month, day)
        candidate = date(received.year, month, day)
        if candidate < received - _PAST_WINDOW:
            candidate = date(received.year + 1, month, day)
        return candidate
    except ValueError:
        return None


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    """(year, month) moved by `months`, carrying into the year."""
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def _last_day(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])
