"""A normal (non-editable) install must carry every data file the code reads."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_data_file_of_a_package_is_listed_in_package_data():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    packages = [name.strip() for name in setup["options"]["packages"].split(",")]
    listed = {
        package: [pattern.strip() for pattern in patterns.split(",")]
        for package, patterns in setup["options.package_data"].items()
    }
    missing = []
    for package in packages:
        directory = ROOT / package
        shipped = {path for pattern in listed.get(package, []) for path in directory.glob(pattern)}
        for path in directory.rglob("*"):
            if path.is_file() and path.suffix not in (".py", ".pyc") and path not in shipped:
                missing.append(str(path.relative_to(ROOT)))
    # `pip install .` would leave these behind, and the worker fails on first use.
    assert missing == []


def test_every_package_data_pattern_matches_a_file():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    stale = [
        f"{package}: {pattern.strip()}"
        for package, patterns in setup["options.package_data"].items()
        for pattern in patterns.split(",")
        if not list((ROOT / package).glob(pattern.strip()))
    ]
    assert stale == []
