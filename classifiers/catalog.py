"""The catalog of service processes, read from catalog.toml.

The classifier's labels, the acknowledgement wording and whether a dispute is opened all
come from here, so adding a process is a catalog entry, examples and a template.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from classifiers.fields import FIELD_NAMES

GENERAL = "general"
CATALOG_PATH = Path(__file__).with_name("catalog.toml")

_TEXT_KEYS = ("display_name", "description", "handling_time", "summary")


class CatalogError(ValueError):
    """catalog.toml is missing a key, has a wrong type or names an unknown field."""


@dataclass(frozen=True)
class ServiceProcess:
    """One kind of billing request and how we handle it."""

    name: str
    display_name: str
    description: str
    handling_time: str
    opens_dispute: bool
    wanted_fields: tuple[str, ...]
    summary: str


@functools.cache
def load_catalog() -> Mapping[str, ServiceProcess]:
    """The packaged catalog by process name, in file order; read once per process."""
    return read_catalog(CATALOG_PATH)


def read_catalog(path: Path) -> Mapping[str, ServiceProcess]:
    """Parse and check a catalog file; raises CatalogError naming the entry at fault."""
    with path.open("rb") as handle:
        entries = tomllib.load(handle).get("processes", {})
    catalog = {name: _parse_process(name, entry) for name, entry in entries.items()}
    if GENERAL not in catalog:
        raise CatalogError(f"{path}: the fallback process {GENERAL!r} is missing")
    return MappingProxyType(catalog)


def _parse_process(name: str, entry: Mapping[str, object]) -> ServiceProcess:
    """One [processes.NAME] table -> ServiceProcess."""
    for key in _TEXT_KEYS:
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise CatalogError(f"process {name!r}: {key} must be a non-empty string")
    if not isinstance(entry.get("opens_dispute"), bool):
        raise CatalogError(f"process {name!r}: opens_dispute must be true or false")
    wanted = entry.get("wanted_fields", [])
    if not isinstance(wanted, list) or any(field not in FIELD_NAMES for field in wanted):
        raise CatalogError(f"process {name!r}: wanted_fields must be a list from {FIELD_NAMES}")
    return ServiceProcess(
        name=name,
        display_name=str(entry["display_name"]),
        description=str(entry["description"]),
        handling_time=str(entry["handling_time"]),
        opens_dispute=bool(entry["opens_dispute"]),
        wanted_fields=tuple(wanted),
        summary=str(entry["summary"]),
    )
