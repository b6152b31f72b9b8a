"""The outbox sender in a process of its own, beside the intake.

The intake (parse, classify, record) keeps one core busy, and a sender thread in the same
process had to wait for the interpreter lock after every SMTP round trip: replies went
out at half speed and queued up behind the intake. In its own process the sender uses the
second core. The two share nothing but the database, which is what the outbox is for: the
intake commits replies as pending, the sender sends them and marks them sent.

Forked, before the worker starts any thread or opens its mailbox: a spawned sender took
a third of a second to import what it needs, while the replies of the first batches
waited, and that CPU came out of the intake's share of a two-core machine.

The intake drives it over a pipe with three words: "nudge" (replies were committed, with
the token they were claimed under), "drain" (send what is due and report) and "stop".
The sender also ends when that pipe closes, so it never outlives a worker that was
killed.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from multiprocessing.connection import Connection

from inbox_worker.settings import Settings

log = logging.getLogger(__name__)


class SenderDied(RuntimeError):
    """The sender process ended unexpectedly; the worker restarts (replies stay pending)."""


class OutboxProcess:
    """Same interface as `OutboxSender` (start, nudge, drain, stop, sent, failed)."""

    def __init__(self, settings: Settings, retry_seconds: float) -> None:
        self.sent = self.failed = 0
        context = multiprocessing.get_context("fork")
        self._pipe, child_end = context.Pipe()
        self._process = context.Process(
            target=_serve_sender, args=(settings, retry_seconds, child_end, self._pipe),
            name="billing-inbox-sender", daemon=True,
        )
        self._child_end = child_end

    def start(self) -> OutboxProcess:
        self._process.start()
        self._child_end.close()  # the child holds it now; EOF on ours means it died
        return self

    def check_alive(self) -> None:
        """Raise `SenderDied` if the sender process has ended (the worker then restarts)."""
        if not self._process.is_alive():
            raise self._died()

    def nudge(self, reserved: str | None = None) -> None:
        """New replies were committed (claimed for us under `reserved`): deliver them now."""
        self._send(("nudge", reserved))

    def drain(self, timeout: float | None = None) -> None:
        """Wait until everything due when this was called has been tried and recorded."""
        self._send(("drain", None))
        self._receive_counts(timeout)

    def stop(self) -> None:
        """Let the sender finish the reply in hand and record it, then end it."""
        if self._process.is_alive():
            try:
                self._send(("stop", None))
                self._receive_counts(timeout=60)
            except SenderDied:
                pass  # already reported where it happened
        self._process.join(timeout=60)
        self._pipe.close()

    def _send(self, command: tuple[str, str | None]) -> None:
        try:
            self._pipe.send(command)
        except (BrokenPipeError, EOFError, OSError):
            raise self._died() from None

    def _receive_counts(self, timeout: float | None) -> None:
        if not self._pipe.poll(timeout):
            raise SenderDied("the sender process did not answer")
        try:
            self.sent, self.failed = self._pipe.recv()
        except EOFError:
            raise self._died() from None

    def _died(self) -> SenderDied:
        return SenderDied(f"the sender process ended (exit code {self._process.exitcode})")


def _serve_sender(
    settings: Settings, retry_seconds: float, pipe: Connection, intake_end: Connection
) -> None:
    # Ctrl-C and SIGTERM go to the intake, which finishes its batch and then says "stop";
    # the sender must not die mid-reply before that.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Forked with both ends of the pipe: without closing the intake's, the end of the
    # file would never come when the intake is killed.
    intake_end.close()
    from db.database import connect_database, database, forget_inherited_connection
    from inbox_worker.clock import utc_now
    from inbox_worker.delivery import open_transport
    from inbox_worker.outbox import OutboxSender

    forget_inherited_connection()
    connect_database(settings.database_url, role="sender")
    database.close()  # this thread only waits on the pipe; the sender's threads connect
    sender = OutboxSender(lambda: open_transport(settings), settings, utc_now,
                          retry_seconds=retry_seconds).start()
    try:
        while True:
            try:
                command, reserved = pipe.recv()
            except (EOFError, OSError):  # the intake is gone: finish the reply in hand, end
                return
            if command == "nudge":
                sender.nudge(reserved)
            elif command == "drain":
                sender.drain()
                if not _answer(pipe, (sender.sent, sender.failed)):
                    return
            elif command == "stop":
                break
    finally:
        sender.stop()
    _answer(pipe, (sender.sent, sender.failed))


def _answer(pipe: Connection, counts: tuple[int, int]) -> bool:
    """Send the counts to the intake; False when it is gone (stopped by a signal, say),
    which is no error of ours: the replies are recorded in the database either way."""
    try:
        pipe.send(counts)
    except OSError:  # BrokenPipeError, ConnectionResetError
        return False
    return True
