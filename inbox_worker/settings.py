"""One frozen settings object for the worker and the CLI.

Loaded once by `load_settings`: built-in defaults, then an optional TOML file, then
`BILLING_INBOX_<FIELD>` environment variables. Every setting is declared once in
`SETTINGS`, which the README and `config show` are checked against.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

ENV_PREFIX = "BILLING_INBOX_"
CONFIG_ENV = "BILLING_INBOX_CONFIG"

MAILBOX_SCHEMES = ("imap", "imaps", "maildir")
SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps", "maildir")
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")


# The out-of-the-box mailbox: created on first run. One named in the settings must exist.
DEFAULT_MAILBOX_URL = "maildir:mail/inbox"


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{ENV_PREFIX}{setting.upper()}: {problem}")
        self.setting = setting


@dataclass(frozen=True)
class Endpoint:
    """A parsed server or Maildir URL (mailbox, SMTP or database)."""

    scheme: str
    host: str = ""
    port: int | None = None
    username: str = ""
    password: str = ""
    path: str = ""


@dataclass(frozen=True)
class Settings:
    """Effective configuration; see `SETTINGS` for what each field means."""

    database_url: str = "sqlite:///billing-inbox.db"
    mailbox_url: str = DEFAULT_MAILBOX_URL
    smtp_url: str = "maildir:mail/outbox"
    from_address: str = "billing@example.com"
    from_name: str = "Billing Team"
    poll_seconds: float = 30.0
    tracking_prefix: str = "BIL"
    confidence_threshold: float = 0.5
    reopen_days: int = 14
    max_auto_replies_per_hour: int = 10
    batch_size: int = 100
    reading_processes: int = 1
    claim_lease_seconds: float = 120.0
    max_message_bytes: int = 25_000_000
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    model_dir: str = ""
    log_level: str = "INFO"
    mailbox_password_file: str = ""
    smtp_password_file: str = ""
    database_password_file: str = ""

    @property
    def mailbox(self) -> Endpoint:
        return parse_endpoint(self.mailbox_url, "mailbox_url", MAILBOX_SCHEMES)

    @property
    def smtp(self) -> Endpoint:
        return parse_endpoint(self.smtp_url, "smtp_url", SMTP_SCHEMES)

    def resolved_model_dir(self) -> Path:
        """Where the trained classifier lives (a per-user cache unless configured)."""
        if self.model_dir:
            return Path(self.model_dir)
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(cache) / "billing-inbox" / "model"

    def redacted(self) -> dict[str, Any]:
        """Settings as a dict with every password replaced by `***`."""
        values = dataclasses.asdict(self)
        for name in ("database_url", "mailbox_url", "smtp_url"):
            values[name] = redact_url(values[name])
        return values


# (field, help) for every setting; the README documents each of these.
SETTINGS: dict[str, str] = {
    "database_url": "Case database: sqlite:///PATH.db or postgresql://user@host:port/db.",
    "mailbox_url": "Where customer mail is read: imap://user:pass@host:port/FOLDER, "
    "imaps://... (TLS, certificate checked) or maildir:PATH.",
    "smtp_url": "Where replies go: smtp://host:port, smtp+starttls://user:pass@host:port, "
    "smtps://... or maildir:PATH.",
    "from_address": "The billing address replies come from (and that we never answer).",
    "from_name": "Display name on replies.",
    "poll_seconds": "Seconds between mailbox checks when the server has no IDLE.",
    "tracking_prefix": "Prefix of tracking numbers, e.g. BIL gives BIL-000123.",
    "confidence_threshold": "Below this classifier confidence a new case is filed as general.",
    "reopen_days": "A customer reply within this many days of resolution reopens the case.",
    "max_auto_replies_per_hour": "At most this many automatic emails to one sender per hour "
    "(a loop breaker); later cases still open, unacknowledged.",
    "batch_size": "Messages fetched and committed per batch.",
    "reading_processes": "Processes that parse and classify the next batch while the worker "
    "records the one before (forked, sharing the loaded classifier); 0 reads in the "
    "worker's own process.",
    "claim_lease_seconds": "A worker's claim on a batch of emails or replies expires after "
    "this long, so another worker takes over the work of one that died.",
    "max_message_bytes": "Larger messages are moved to Quarantine unread (never lost; no case "
    "opens); only their headers are read, to tell the sender to send it smaller.",
    "processed_folder": "Folder that handled messages are moved to.",
    "quarantine_folder": "Folder for messages that could not be processed.",
    "model_dir": "Where the trained classifier is kept (default: ~/.cache/billing-inbox/model).",
    "log_level": "DEBUG, INFO, WARNING or ERROR.",
    "mailbox_password_file": "File holding the mailbox password (instead of in the URL).",
    "smtp_password_file": "File holding the SMTP password (instead of in the URL).",
    "database_password_file": "File holding the database password (instead of in the URL).",
}

_URL_FOR_PASSWORD_FILE = {
    "mailbox_password_file": "mailbox_url",
    "smtp_password_file": "smtp_url",
    "database_password_file": "database_url",
}


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults, then the TOML file (argument or BILLING_INBOX_CONFIG), then the environment."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_path = config_path or environ.get(CONFIG_ENV)
    if config_path:
        values.update(_read_toml(Path(config_path)))
    for name in SETTINGS:
        env_value = environ.get(ENV_PREFIX + name.upper())
        if env_value is not None:
            values[name] = env_value
    typed = {name: _coerce(name, value) for name, value in values.items()}
    settings = Settings(**typed)
    settings = _apply_password_files(settings)
    _validate(settings)
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise SettingsError("config", f"cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError("config", f"{path} is not valid TOML: {error}") from None
    unknown = sorted(set(data) - set(SETTINGS))
    if unknown:
        example = unknown[0].lower().removeprefix(ENV_PREFIX.lower())
        hint = (f" (keys are lower case, without {ENV_PREFIX}: {example})"
                if example in SETTINGS else "")
        raise SettingsError("config",
                            f"{path}: unknown setting(s) {', '.join(unknown)}{hint}")
    return data


def _coerce(name: str, value: Any) -> Any:
    kind = type(getattr(Settings, name))
    if kind is str:
        return str(value)
    try:
        converted = kind(value)
    except (TypeError, ValueError):
        raise SettingsError(name, f"expected a number, got {value!r}") from None
    if not math.isfinite(converted) or converted < 0:
        raise SettingsError(name, f"must be a finite number, not negative, got {value!r}")
    return converted


def _apply_password_files(settings: Settings) -> Settings:
    changes = {}
    for file_setting, url_setting in _URL_FOR_PASSWORD_FILE.items():
        path = getattr(settings, file_setting)
        if not path:
            continue
        if getattr(settings, url_setting).startswith("maildir:"):
            raise SettingsError(file_setting, f"{url_setting} is a Maildir, which has no "
                                "password; unset this setting")
        try:
            password = Path(path).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise SettingsError(file_setting, f"cannot read {path}: {error.strerror}") from None
        changes[url_setting] = with_password(getattr(settings, url_setting), password)
    return dataclasses.replace(settings, **changes)


def _validate(settings: Settings) -> None:
    parse_endpoint(settings.mailbox_url, "mailbox_url", MAILBOX_SCHEMES)
    parse_endpoint(settings.smtp_url, "smtp_url", SMTP_SCHEMES)
    parse_endpoint(settings.database_url, "database_url", DATABASE_SCHEMES)
    if "@" not in settings.from_address:
        raise SettingsError("from_address", f"not an email address: {settings.from_address!r}")
    if not 0 <= settings.confidence_threshold <= 1:
        raise SettingsError("confidence_threshold", "must be between 0 and 1")
    if not re.fullmatch(r"[A-Z][A-Z0-9]{0,9}", settings.tracking_prefix):
        raise SettingsError("tracking_prefix", "use 1-10 capital letters or digits, e.g. BIL")
    if settings.batch_size < 1:
        raise SettingsError("batch_size", "must be at least 1")
    if settings.poll_seconds < 1:
        # The scheduler never returns from an interval of 0, and shorter ones only spin.
        raise SettingsError("poll_seconds", "must be at least 1 (IDLE answers new mail at "
                            "once; this is only the safety net)")
    if settings.claim_lease_seconds <= 0:
        raise SettingsError("claim_lease_seconds", "must be more than 0")
    _validate_folders(settings)
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError("log_level", f"unknown level {settings.log_level!r}")


def _validate_folders(settings: Settings) -> None:
    """Processed and Quarantine must be two real folders, apart from the inbox: moving a
    handled email into the folder it came from would process it again, forever."""
    mailbox = settings.mailbox
    for name in ("processed_folder", "quarantine_folder"):
        folder = getattr(settings, name)
        if not folder.strip():
            raise SettingsError(name, f"must name a folder, e.g. {getattr(Settings, name)}")
        # (A Maildir's folders are subfolders of the inbox, never the inbox itself.)
        if mailbox.scheme != "maildir" and folder.casefold() == (
                mailbox.path or "INBOX").casefold():
            raise SettingsError(name, f"{folder!r} is the folder mail is read from")
    if settings.processed_folder.casefold() == settings.quarantine_folder.casefold():
        raise SettingsError("quarantine_folder", "must differ from processed_folder")


def parse_endpoint(url: str, setting: str, schemes: tuple[str, ...]) -> Endpoint:
    """Split a mailbox/SMTP/database URL, naming `setting` in any error."""
    scheme, colon, rest = url.partition(":")
    if not colon or scheme not in schemes:
        raise SettingsError(
            setting, f"unknown URL scheme in {redact_url(url)!r} (use {', '.join(schemes)})"
        )
    if scheme == "sqlite" and not rest.startswith("///"):
        # peewee reads sqlite:billing.db as the file "illing.db": refuse it, do not guess.
        raise SettingsError(setting, f"write sqlite:///PATH (three slashes), e.g. "
                            f"sqlite:///billing-inbox.db, not {url!r}")
    if scheme == "maildir":
        path = rest.removeprefix("//")
        if not path:
            raise SettingsError(setting, "maildir: needs a path, e.g. maildir:mail/inbox")
        return Endpoint(scheme=scheme, path=path)
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise SettingsError(setting, f"bad port in {redact_url(url)!r}") from None
    if scheme != "sqlite" and not parts.hostname:
        raise SettingsError(setting, f"no host in {redact_url(url)!r}")
    return Endpoint(
        scheme=scheme,
        host=parts.hostname or "",
        port=port,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        path=unquote(parts.path.lstrip("/")),
    )


def redact_url(url: str) -> str:
    """The URL with its password, if any, replaced by `***`.

    Works on the text, not a parse, so that a password with an unescaped `#`, `/` or `?`
    (which would confuse a URL parser) is still hidden.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, colon, _ = credentials.partition(":")
    return f"{scheme}://{user}:***@{host}" if colon else url


def with_password(url: str, password: str) -> str:
    """The URL with its password set to `password` (for *_PASSWORD_FILE)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))
