"""Real mail servers for tests and bench.py: a throwaway Dovecot (IMAP) and an SMTP capture.

Nothing here imports pytest or product code, so the root-level bench.py can use it too.
Dovecot must be started as root (its master switches to the mail uid).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import email
import email.policy
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

from aiosmtpd.controller import Controller
from imapclient import IMAPClient

HOST = "127.0.0.1"
MAIL_UID = MAIL_GID = 65534  # nobody/nogroup: Dovecot refuses to open mail as root
DOVECOT_GROUP = "dovecot"  # the auth process runs in this group and reads the passwd-file
USER_NAME = re.compile(r"[A-Za-z0-9_+@-][A-Za-z0-9._+@-]*")  # also a file name
MAX_SOCKET_DIR = 60  # unix socket paths under base_dir must stay below ~100 characters


def free_port() -> int:
    """A TCP port on the loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def dovecot_binary() -> str | None:
    """Path of the dovecot master binary, or None when dovecot-imapd is not installed."""
    for candidate in ("/usr/sbin/dovecot", shutil.which("dovecot")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass(frozen=True)
class ImapAccount:
    host: str
    port: int
    user: str
    password: str

    def url(self, folder: str = "INBOX") -> str:
        user, password = quote(self.user, safe=""), quote(self.password, safe="")
        return f"imap://{user}:{password}@{self.host}:{self.port}/{quote(folder, safe='/')}"


def _config(root: Path, port: int) -> str:
    return f"""\
instance_name = test-{root.name}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = {HOST}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %u
mail_uid = {MAIL_UID}
mail_gid = {MAIL_GID}
first_valid_uid = {MAIL_UID}
first_valid_gid = {MAIL_GID}
mail_home = {root}/mail/%u
mail_location = maildir:~/Maildir
# Without inotify Dovecot re-checks an IDLEing mailbox this often (default 30 s).
mailbox_idle_check_interval = 1 secs
namespace inbox {{
  inbox = yes
  separator = /
}}
# One passwd-file per user: Dovecot re-checks a changed file at most once per second, so
# a user appended to a shared file could fail to log in right after add_user().
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users/%u
}}
# Fail logins at once, and no growing per-IP delay after failures (tests share 127.0.0.1).
auth_failure_delay = 0
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
"""


def process_is_running(pid: int) -> bool:
    """True while pid exists and is not a zombie (one that exited, waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _living_group_members(pgid: int) -> list[int]:
    """Pids in process group pgid that are not zombies (those are init's to reap)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # Fields after the parenthesised command: state, ppid, pgrp, ...
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(pgrp) == pgid and state != "Z":
                pids.append(int(stat.parent.name))
    return pids


def _reachable_by_others(path: Path) -> bool:
    """True when every ancestor of path can be traversed by the unprivileged mail uid."""
    return all(p.stat().st_mode & 0o001 for p in path.resolve().parents if p.exists())


class DovecotServer:
    """One Dovecot master with its own config, sockets, passwd-files and Maildirs."""

    def __init__(self, root: Path, port: int, process: subprocess.Popen, owns_root: bool):
        self.root, self.host, self.port = root, HOST, port
        self.users_dir = root / "users"
        self.log_path = root / "dovecot.log"
        self._process, self._owns_root = process, owns_root
        self._lock = threading.Lock()
        self._stopped = False
        atexit.register(self.stop)

    @property
    def pid(self) -> int:
        """The master process (the leader of its own process group)."""
        return self._process.pid

    @classmethod
    def start(cls, workdir: Path, timeout: float = 15.0) -> DovecotServer:
        """Start Dovecot in workdir (or a short /tmp dir when workdir is long or private)."""
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        binary = dovecot_binary()
        if binary is None:
            raise RuntimeError("Dovecot not installed: apt-get install dovecot-imapd")
        for attempt in range(3):
            # Sockets live under root/run, and the mail uid must traverse root.
            owns_root = len(str(workdir)) > MAX_SOCKET_DIR or not _reachable_by_others(workdir)
            root = Path(tempfile.mkdtemp(prefix="dv", dir="/tmp")) if owns_root else workdir
            server = cls._launch(binary, root, free_port(), owns_root)
            try:
                server._wait_for_greeting(timeout)
                return server
            except RuntimeError as error:
                log = server.log_text()
                server.stop()
                if "Address already in use" not in log or attempt == 2:
                    raise error from None
        raise AssertionError("unreachable")

    @classmethod
    def _launch(cls, binary: str, root: Path, port: int, owns_root: bool) -> DovecotServer:
        root.chmod(0o755)
        (root / "dovecot.conf").write_text(_config(root, port))
        users = root / "users"
        users.mkdir(exist_ok=True)
        shutil.chown(users, "root", DOVECOT_GROUP)
        users.chmod(0o750)
        (root / "mail").mkdir(exist_ok=True)
        os.chown(root / "mail", MAIL_UID, MAIL_GID)
        stderr = open(root / "master.stderr", "wb")  # noqa: SIM115 - the child keeps it
        with stderr:
            # -F keeps the master our child so we can reap it; a new session gives its
            # children one process group that stop() can sweep.
            process = subprocess.Popen(
                [binary, "-F", "-c", str(root / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        return cls(root, port, process, owns_root)

    def _wait_for_greeting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as sock:
                    if sock.makefile("rb").readline().startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(
            f"Dovecot did not greet on {self.host}:{self.port} within {timeout} s "
            f"(exit code {self._process.poll()}).\n{self.log_text()}"
        )

    def log_text(self) -> str:
        parts = []
        for name in ("master.stderr", "dovecot.log"):
            path = self.root / name
            if path.exists():
                parts.append(f"--- {path}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def add_user(self, name: str, password: str) -> ImapAccount:
        """Add a login, usable at once (each user has its own passwd-file)."""
        if not USER_NAME.fullmatch(name):
            raise ValueError(f"user name {name!r} must match {USER_NAME.pattern}")
        if any(c in password for c in ":\r\n") or not password:
            raise ValueError("password must be non-empty and contain no ':' or line breaks")
        path = self.users_dir / name
        with self._lock:
            if path.exists():
                raise ValueError(f"user {name!r} already exists")
            path.write_text(f"{name}:{{PLAIN}}{password}::::::\n")
            shutil.chown(path, "root", DOVECOT_GROUP)
            path.chmod(0o640)
        return ImapAccount(self.host, self.port, name, password)

    def kick(self, user: str) -> None:
        """Drop every connection of `user`, as a server restart or network blip would."""
        subprocess.run(["doveadm", "-c", str(self.root / "dovecot.conf"), "kick", user],
                       check=True, capture_output=True)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the master (by base_dir/master.pid) and every process it started."""
        if self._stopped:
            return  # its pids may belong to someone else by now
        self._stopped = True
        atexit.unregister(self.stop)
        pid_file = self.root / "run" / "master.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else self._process.pid
        for target in {pid, self._process.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGTERM)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._sweep_process_group(timeout)
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def _sweep_process_group(self, timeout: float) -> None:
        """Wait for imap/auth/log children to exit after the master, then kill stragglers."""
        deadline = time.monotonic() + timeout
        while pids := _living_group_members(self._process.pid):
            if time.monotonic() > deadline:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    def __enter__(self) -> DovecotServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass(frozen=True)
class CapturedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    # When the server accepted it (time.monotonic), for latency measurements.
    received_at_monotonic: float = 0.0

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class _CaptureHandler:
    messages: list[CapturedMessage] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    refuse_at: str | None = None  # "RCPT" or "DATA" while refusing
    refusal: str = "451 4.3.0 try again later"
    pipelining: bool = False  # offer PIPELINING (RFC 2920) in the EHLO reply
    # The most commands LightSmtpCapture found in one read: over 1 when pipelined.
    most_commands_in_one_read: int = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads commands one by one from its stream, so it serves pipelined
        # clients; it only does not say so.
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_at == "RCPT":
            return self.refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.refuse_at == "DATA":
            return self.refusal
        captured = CapturedMessage(
            envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.original_content),
            time.monotonic(),
        )
        with self.arrived:
            self.messages.append(captured)
            self.arrived.notify_all()
        return "250 OK"


class SmtpCapture:
    """An aiosmtpd server on the loopback that keeps every message it accepts; with
    `pipelining`, it offers PIPELINING as most mail servers do."""

    def __init__(self, pipelining: bool = False) -> None:
        self._handler = _CaptureHandler(pipelining=pipelining)
        self.host, self.port = HOST, free_port()
        self.url = f"smtp://{self.host}:{self.port}"
        self._controller = Controller(
            self._handler, hostname=self.host, port=self.port, enable_SMTPUTF8=True
        )

    def start(self) -> SmtpCapture:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[CapturedMessage]:
        with self._handler.arrived:
            return list(self._handler.messages)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[CapturedMessage]:
        """Block until at least count messages arrived; TimeoutError otherwise."""
        with self._handler.arrived:
            arrived = self._handler.arrived.wait_for(
                lambda: len(self._handler.messages) >= count, timeout
            )
            if not arrived:
                got = len(self._handler.messages)
                raise TimeoutError(f"expected {count} messages within {timeout} s, got {got}")
            return list(self._handler.messages)

    def clear(self) -> None:
        with self._handler.arrived:
            self._handler.messages.clear()

    def refuse(
        self, refusing: bool = True, at: str = "DATA", reply: str = "451 4.3.0 try again later"
    ) -> None:
        """Answer `reply` (by default a temporary 451) at DATA (smtplib: SMTPDataError) or
        RCPT (SMTPRecipientsRefused)."""
        if at not in ("DATA", "RCPT"):
            raise ValueError("at must be 'DATA' or 'RCPT'")
        self._handler.refuse_at = at if refusing else None
        self._handler.refusal = reply

    def __enter__(self) -> SmtpCapture:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()



class LightSmtpCapture(SmtpCapture):
    """The benchmark's SMTP capture: records like SmtpCapture, at a fraction of the CPU.

    bench.py runs its SMTP server on the same two cores as the worker it measures, and
    aiosmtpd spends about 1 ms of CPU per email there (a third of the worker's own), half
    of it parsing MAIL FROM and RCPT TO with the email package. This server speaks just
    the SMTP that smtplib uses (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) on one
    asyncio Protocol and keeps addresses as the client wrote them. Tests use aiosmtpd.
    It offers PIPELINING, as the mail servers a worker sends through do.
    """

    def __init__(self, pipelining: bool = True) -> None:
        self._handler = _CaptureHandler(pipelining=pipelining)
        self.host, self.port = HOST, free_port()
        self.url = f"smtp://{self.host}:{self.port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LightSmtpCapture:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="light-smtp", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the light SMTP capture did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def _serve(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        server = loop.run_until_complete(loop.create_server(
            lambda: _LightSmtpSession(self._handler), self.host, self.port
        ))
        ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            loop.close()


class _LightSmtpSession(asyncio.Protocol):
    """One client connection of LightSmtpCapture."""

    def __init__(self, handler: _CaptureHandler) -> None:
        self.handler = handler
        self.buffer = bytearray()
        self.in_data = False
        self.mail_from = ""
        self.rcpt_tos: list[str] = []
        self.quitting = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(b"220 light-smtp ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies = []
        commands = 0
        while not self.quitting:
            if self.in_data:
                # smtplib ends the content with CRLF, then "." CRLF; dots are doubled.
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    break
                content = bytes(self.buffer[:end + 2]).replace(b"\r\n..", b"\r\n.")
                del self.buffer[:end + 5]
                self.in_data = False
                replies.append(self._accept(content.removeprefix(b".")
                                            if content.startswith(b"..") else content))
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            line = bytes(self.buffer[:end]).decode("utf-8", "replace")
            del self.buffer[:end + 2]
            replies.append(self._command(line))
            commands += 1
        self.handler.most_commands_in_one_read = max(
            self.handler.most_commands_in_one_read, commands)
        if self.transport is not None:
            self.transport.write(b"".join(replies))
            if self.quitting:
                self.transport.close()

    def _command(self, line: str) -> bytes:
        verb = line[:4].upper()
        if verb == "EHLO":
            offers = b"250-PIPELINING\r\n" if self.handler.pipelining else b""
            return b"250-light-smtp\r\n" + offers + b"250-8BITMIME\r\n250 SMTPUTF8\r\n"
        if verb in ("HELO", "NOOP"):
            return b"250 OK\r\n"
        if verb == "RSET":
            self.mail_from, self.rcpt_tos = "", []
            return b"250 OK\r\n"
        if verb == "MAIL":
            self.mail_from, self.rcpt_tos = _angle_address(line), []
            return b"250 OK\r\n"
        if verb == "RCPT":
            if self.handler.refuse_at == "RCPT":
                return self.handler.refusal.encode() + b"\r\n"
            self.rcpt_tos.append(_angle_address(line))
            return b"250 OK\r\n"
        if verb == "DATA":
            self.in_data = True
            return b"354 end data with <CR><LF>.<CR><LF>\r\n"
        if verb == "QUIT":
            self.quitting = True
            return b"221 bye\r\n"
        return b"502 command not implemented\r\n"

    def _accept(self, content: bytes) -> bytes:
        rcpt_tos, self.rcpt_tos = tuple(self.rcpt_tos), []
        if self.handler.refuse_at == "DATA":
            return self.handler.refusal.encode() + b"\r\n"
        captured = CapturedMessage(self.mail_from, rcpt_tos, content, time.monotonic())
        with self.handler.arrived:
            self.handler.messages.append(captured)
            self.handler.arrived.notify_all()
        return b"250 OK\r\n"


def _angle_address(line: str) -> str:
    """ "MAIL FROM:<a@b.example> SIZE=10" -> "a@b.example" (kept as written)."""
    start, end = line.find("<"), line.find(">")
    return line[start + 1:end] if 0 <= start < end else line.partition(":")[2].strip()

def connect(account: ImapAccount) -> IMAPClient:
    """A logged-in IMAPClient for account; the caller logs out."""
    client = IMAPClient(account.host, port=account.port, ssl=False, timeout=30)
    client.login(account.user, account.password)
    return client


def append_messages(
    account: ImapAccount, folder: str, messages: list[bytes], flags: tuple[str, ...] = ()
) -> None:
    """Store messages in folder (created if missing) over one connection.

    Dovecot stores CRLF line ends: append CRLF messages to get the same bytes back.
    """
    client = connect(account)
    try:
        if not client.folder_exists(folder):
            client.create_folder(folder)
        for data in messages:
            client.append(folder, data, flags=flags)
    finally:
        client.logout()


def fetch_all(account: ImapAccount, folder: str = "INBOX") -> list[bytes]:
    """Every message in folder in UID order, read-only and without setting \\Seen."""
    client = connect(account)
    try:
        client.select_folder(folder, readonly=True)
        uids = client.search("ALL")
        fetched = client.fetch(uids, [b"BODY.PEEK[]"]) if uids else {}
        return [fetched[uid][b"BODY[]"] for uid in sorted(fetched)]
    finally:
        client.logout()


def folder_counts(account: ImapAccount) -> dict[str, int]:
    """Message count of every selectable folder of account."""
    client = connect(account)
    try:
        counts = {}
        for flags, _delimiter, name in client.list_folders():
            if b"\\Noselect" not in flags:
                counts[name] = client.folder_status(name, [b"MESSAGES"])[b"MESSAGES"]
        return counts
    finally:
        client.logout()
