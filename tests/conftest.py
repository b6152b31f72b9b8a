"""Shared fixtures: a real Dovecot for the session, a fresh IMAP user per test, an SMTP capture.

Servers come from tests/servers.py, which bench.py uses as well.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator

import pytest

from tests.servers import DovecotServer, ImapAccount, SmtpCapture, dovecot_binary

_user_numbers = itertools.count(1)


def require_server(available: bool, reason: str) -> None:
    """Skip the test when a server is missing, or fail it under BILLING_INBOX_REQUIRE_SERVERS=1.

    CI sets the variable so that a missing server can never pass as a green run of skips.
    """
    if available:
        return
    if os.environ.get("BILLING_INBOX_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{reason} (BILLING_INBOX_REQUIRE_SERVERS=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def dovecot_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotServer]:
    """One Dovecot for the whole run; tests stay apart by using their own users."""
    installed = dovecot_binary() is not None
    require_server(installed, "Dovecot not installed: apt-get install dovecot-imapd")
    require_server(os.geteuid() == 0, "Dovecot tests must run as root (the master switches uid)")
    with DovecotServer.start(tmp_path_factory.mktemp("dovecot")) as server:
        yield server


@pytest.fixture
def imap_account(dovecot_server: DovecotServer) -> ImapAccount:
    """A new user with an empty INBOX, so no test sees another test's mail."""
    name = f"user{next(_user_numbers)}-{secrets.token_hex(4)}"
    return dovecot_server.add_user(name, secrets.token_urlsafe(12))


@pytest.fixture
def smtp_server() -> Iterator[SmtpCapture]:
    """An SMTP server on the loopback that records every message it accepts."""
    with SmtpCapture() as server:
        yield server


# --- database fixtures ---

POSTGRES_URL = os.environ.get(
    "BILLING_INBOX_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


FIXTURE_APPLICATION_NAME = "billing-inbox-test-fixture"


def _postgres_schema() -> Iterator[str]:
    """A fresh schema in the test database, dropped afterwards; yields its URL."""
    try:
        import psycopg2
    except ImportError:
        require_server(False, "psycopg2 missing: pip install -e '.[postgres]'")
    try:
        # Named, so that a test that ends the workers' sessions can leave this one alone.
        admin = psycopg2.connect(POSTGRES_URL, connect_timeout=3,
                                 application_name=FIXTURE_APPLICATION_NAME)
    except psycopg2.OperationalError as error:
        require_server(False, f"PostgreSQL not reachable at {POSTGRES_URL}: {error}".strip())
    admin.autocommit = True
    schema = f"t_{secrets.token_hex(6)}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database: every test using it runs once on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cases.db'}"
    else:
        yield from _postgres_schema()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL schema, for tests that only make sense there (concurrency)."""
    yield from _postgres_schema()


@pytest.fixture
def database(database_url: str) -> Iterator[str]:
    """The database connected and its schema created; yields the URL."""
    from db.database import connect_database, database

    connect_database(database_url)
    yield database_url
    database.close()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One trained classifier for the whole run (training takes seconds, not per test)."""
    return str(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture
def make_settings(model_dir: str, tmp_path):
    """Settings for a test: our test billing address, the session's trained model."""
    from inbox_worker.settings import Settings

    def build(**overrides: object) -> Settings:
        values = {
            "from_address": "billing@acme-billing.example",
            "database_url": f"sqlite:///{tmp_path / 'cases.db'}",
            "mailbox_url": f"maildir:{tmp_path / 'inbox'}",
            "smtp_url": f"maildir:{tmp_path / 'outbox'}",
            "model_dir": model_dir,
            "poll_seconds": 3600.0,
            **overrides,
        }
        return Settings(**values)

    return build


@pytest.fixture
def clean_directory(tmp_path, monkeypatch, model_dir):
    """An empty working directory with the default settings and the session's model."""
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "MAILBOX_URL", "SMTP_URL", "CONFIG"):
        monkeypatch.delenv(f"BILLING_INBOX_{name}", raising=False)
    monkeypatch.setenv("BILLING_INBOX_MODEL_DIR", model_dir)
    return tmp_path


@pytest.fixture
def imap_settings(make_settings, imap_account, smtp_server, database):
    """A worker's settings against real Dovecot, the SMTP capture and the test database."""
    return make_settings(
        mailbox_url=imap_account.url("INBOX"), smtp_url=smtp_server.url, database_url=database
    )
