"""The time the worker goes by: one function, so tests and the CLI can move it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Now, timezone-aware in UTC, as every timestamp in the database is."""
    return datetime.now(UTC)
