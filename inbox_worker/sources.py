"""Source: where customer mail is read from, an IMAP folder or a local Maildir.

Both give `RawMessage`s still in the inbox and take them out only when told to, after
their case is committed. IMAP messages are addressed by folder + UIDVALIDITY + UID and
fetched with BODY.PEEK[] so the customer's mail stays unread in other clients.
"""

from __future__ import annotations

import contextlib
import logging
import mailbox
import os
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from inbox_worker.message import header_section
from inbox_worker.settings import DEFAULT_MAILBOX_URL, Endpoint, Settings, SettingsError

log = logging.getLogger(__name__)

IMAP_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class RawMessage:
    """The transport envelope: where a message sits and its bytes (None when too large).

    A message too large to read still has its header section in `headers`, so that the
    operator sees who sent it and the sender can be told.
    """

    source_key: str
    data: bytes | None
    size: int
    headers: bytes = b""


# How much of a too-large file is read to find its header section.
HEADER_READ_BYTES = 256 * 1024


class MailSource(Protocol):
    """The small interface the pipeline needs from a mailbox."""

    def list_keys(self) -> list[str]: ...
    def fetch(self, keys: Sequence[str]) -> list[RawMessage]: ...
    def move_to_processed(self, keys: Sequence[str]) -> None: ...
    def quarantine(self, keys: Sequence[str]) -> None: ...
    def wait_for_mail(self, timeout: float) -> bool: ...
    def put_back(self, data: bytes) -> None: ...
    def close(self) -> None: ...


def refuse_missing_maildir(settings: Settings) -> None:
    """Refuse a Maildir named in the settings that does not exist: a mistyped path would
    be created empty and watched forever while the mail arrives elsewhere. Only the
    default one is created, so that the first run works out of the box."""
    endpoint = settings.mailbox
    if endpoint.scheme != "maildir":
        return
    path = Path(endpoint.path)
    if path.resolve() == Path(DEFAULT_MAILBOX_URL.removeprefix("maildir:")).resolve():
        return
    if not (path / "cur").is_dir():
        raise SettingsError("mailbox_url", f"no Maildir at {path} (no cur/ folder there); "
                            f"fix the path, or create one: mkdir -p {path}/cur {path}/new "
                            f"{path}/tmp")


def open_source(settings: Settings) -> MailSource:
    """Connect to the mailbox named by `mailbox_url`."""
    endpoint = settings.mailbox
    if endpoint.scheme == "maildir":
        return MaildirSource(Path(endpoint.path), settings)
    return ImapSource(endpoint, settings)


class ImapSource:
    """An IMAP folder; uses MOVE and IDLE when the server has them."""

    def __init__(self, endpoint: Endpoint, settings: Settings) -> None:
        self.folder = endpoint.path or "INBOX"
        self.settings = settings
        context = ssl.create_default_context() if endpoint.scheme == "imaps" else None
        self.client = IMAPClient(
            endpoint.host,
            port=endpoint.port or (993 if context else 143),
            ssl=context is not None,
            ssl_context=context,
            timeout=IMAP_TIMEOUT_SECONDS,
        )
        try:
            self.client.login(endpoint.username, endpoint.password)
        except LoginError as error:
            self.client.shutdown()
            reason = error.args[0] if error.args else ""
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            # imapclient hands over the server's bytes already repr()ed: b'[...] ...'
            reason = str(reason).removeprefix("b'").removesuffix("'")
            # The server's words, with the setting to fix; never the password.
            raise LoginError(f"BILLING_INBOX_MAILBOX_URL: the IMAP server refused user "
                             f"{endpoint.username!r}: {reason}") from None
        self.capabilities = set(self.client.capabilities())
        for folder in (settings.processed_folder, settings.quarantine_folder):
            self._ensure_folder(folder)
        self.uidvalidity = self.client.select_folder(self.folder)[b"UIDVALIDITY"]
        self.key_prefix = f"imap:{self.folder}:{self.uidvalidity}:"
        self.listed: set[str] = set()
        self.too_large: set[int] = set()
        self.label = f"imap://{endpoint.host}:{endpoint.port}/{self.folder}"

    def _ensure_folder(self, folder: str) -> None:
        if self.client.folder_exists(folder):
            return
        try:
            self.client.create_folder(folder)
        except IMAPClientError:
            # Workers starting together race to create it; only a folder still missing
            # afterwards is a real failure.
            if not self.client.folder_exists(folder):
                raise

    def list_keys(self) -> list[str]:
        """Every message in the folder, oldest first."""
        keys = self._search_keys()
        self.listed = set(keys)
        # The ones too large to read, found by the server in one SEARCH per cycle rather
        # than by a FETCH of every size per batch. Searched after the keys: every message
        # listed above is still there to be found (or moved, and then not fetched).
        self.too_large = set(self.client.search(
            ["UNDELETED", "LARGER", str(self.settings.max_message_bytes)]))
        return keys

    def _search_keys(self) -> list[str]:
        return [self.key_prefix + str(uid) for uid in sorted(self.client.search(["UNDELETED"]))]

    def fetch(self, keys: Sequence[str]) -> list[RawMessage]:
        """Bodies of the messages small enough to read; of the others, their size and
        header section. One round trip (two when the batch has a message too large)."""
        uids = self._uids(keys)
        large = [uid for uid in uids if uid in self.too_large]
        small = [uid for uid in uids if uid not in self.too_large]
        bodies = self.client.fetch(small, ["BODY.PEEK[]"]) if small else {}
        heads = self.client.fetch(large, ["RFC822.SIZE", "BODY.PEEK[HEADER]"]) if large else {}
        batch = []
        for uid in uids:
            key = self.key_prefix + str(uid)
            if uid in heads:
                head = heads[uid]
                batch.append(RawMessage(key, None, head.get(b"RFC822.SIZE", 0),
                                        head.get(b"BODY[HEADER]") or b""))
            elif (data := bodies.get(uid, {}).get(b"BODY[]")) is not None:
                batch.append(RawMessage(key, data, len(data)))
            # Neither: moved by another worker since it was listed.
        return batch

    def _uids(self, keys: Sequence[str]) -> list[int]:
        return [int(key.rpartition(":")[2]) for key in keys if key.startswith(self.key_prefix)]

    def move_to_processed(self, keys: Sequence[str]) -> None:
        self._move(keys, self.settings.processed_folder)

    def quarantine(self, keys: Sequence[str]) -> None:
        self._move(keys, self.settings.quarantine_folder)

    def _move(self, keys: Sequence[str], folder: str) -> None:
        uids = self._uids(keys)
        if not uids:
            return
        if b"MOVE" in self.capabilities:
            self.client.move(uids, folder)
            return
        self.client.copy(uids, folder)
        self.client.add_flags(uids, [b"\\Deleted"], silent=True)
        if b"UIDPLUS" in self.capabilities:
            self.client.uid_expunge(uids)
        else:
            self.client.expunge()

    def wait_for_mail(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True as soon as the server reports new mail."""
        if b"IDLE" not in self.capabilities:
            time.sleep(timeout)
            return False
        # Mail that arrives while a command runs can be announced (EXISTS) to that command
        # yet be missing from its SEARCH result, and IDLE never mentions it again. Looking
        # once more before each IDLE bounds that to one wake-up instead of a poll period.
        if set(self._search_keys()) - self.listed:
            return True
        self.client.idle()
        try:
            responses = self.client.idle_check(timeout=timeout)
        finally:
            # Mail that arrives while IDLE is being ended is reported in DONE's response;
            # dropping it would leave that email waiting for the next poll.
            _, closing_responses = self.client.idle_done()
        return _reports_new_mail([*responses, *closing_responses])

    def put_back(self, data: bytes) -> None:
        """Append an email to the inbox again (releasing it from quarantine)."""
        self.client.append(self.folder, data)

    def close(self) -> None:
        try:
            # A connection left mid-IDLE by an error may never answer LOGOUT: don't wait
            # the full IMAP timeout for it before reconnecting.
            self.client.socket().settimeout(5)
            self.client.logout()
        except Exception:  # closing a broken connection is best effort
            self.client.shutdown()


def _reports_new_mail(responses: Sequence[tuple]) -> bool:
    return any(len(response) > 1 and response[1] == b"EXISTS" for response in responses)


class MaildirSource:
    """A local Maildir; Processed and Quarantine are Maildir++ subfolders (`.Processed`)."""

    def __init__(self, path: Path, settings: Settings) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        inbox = mailbox.Maildir(path, factory=None, create=True)
        for name in (settings.processed_folder, settings.quarantine_folder):
            # Workers starting together may race to create it: whoever wins, it exists.
            with contextlib.suppress(FileExistsError):
                inbox.add_folder(name)
        self.path = path
        self.processed = path / f".{settings.processed_folder}" / "cur"
        self.quarantined = path / f".{settings.quarantine_folder}" / "cur"
        self.max_bytes = settings.max_message_bytes
        self.label = f"maildir:{path}"

    def list_keys(self) -> list[str]:
        """Every message in new/ and cur/, oldest first (Maildir names start with a time)."""
        files = sorted(
            (entry.name, entry.path)
            for folder in ("new", "cur")
            for entry in os.scandir(self.path / folder)
            if entry.is_file() and not entry.name.startswith(".")
        )
        return [f"maildir:{path}" for _, path in files]

    def fetch(self, keys: Sequence[str]) -> list[RawMessage]:
        batch = []
        for key in keys:
            path = Path(key.removeprefix("maildir:"))
            try:
                size = path.stat().st_size
                data = path.read_bytes() if size <= self.max_bytes else None
                headers = b"" if data is not None else _header_section(path)
            except FileNotFoundError:
                continue  # taken by another worker
            batch.append(RawMessage(key, data, size, headers))
        return batch

    def move_to_processed(self, keys: Sequence[str]) -> None:
        self._move(keys, self.processed)

    def quarantine(self, keys: Sequence[str]) -> None:
        self._move(keys, self.quarantined)

    def _move(self, keys: Sequence[str], folder: Path) -> None:
        for key in keys:
            source = Path(key.removeprefix("maildir:"))
            # A rename within one file system is atomic: the message is never in both
            # folders or in neither. The ":2," suffix marks it as a seen-state Maildir file.
            name = source.name if ":2," in source.name else f"{source.name}:2,"
            with contextlib.suppress(FileNotFoundError):
                os.replace(source, folder / name)

    def wait_for_mail(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        new_dir = self.path / "new"
        while True:
            if any(os.scandir(new_dir)):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(0.2, remaining))

    def put_back(self, data: bytes) -> None:
        """Deliver an email to the inbox again (releasing it from quarantine)."""
        mailbox.Maildir(self.path, factory=None, create=False).add(data)

    def close(self) -> None:
        pass


def _header_section(path: Path) -> bytes:
    """The header section of a message file, read no further than `HEADER_READ_BYTES`."""
    with path.open("rb") as file:
        return header_section(file.read(HEADER_READ_BYTES))
