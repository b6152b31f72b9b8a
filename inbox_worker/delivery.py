"""Transports that hand a finished email to the outside world: SMTP or a local Maildir.

One SMTP connection is kept open across sends and reopened when the server drops it;
TLS (smtps, smtp+starttls) always verifies the server's certificate. When the server
offers PIPELINING (RFC 2920; every common MTA does), the envelope and DATA go in one
write: two round trips per reply instead of four.
"""

from __future__ import annotations

import contextlib
import mailbox
import re
import smtplib
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from inbox_worker.settings import Endpoint, Settings

SMTP_TIMEOUT_SECONDS = 30


class DeliveryError(Exception):
    """The email was not accepted. It stays pending and is retried, unless `permanent`:
    the server refused this email itself (a 5xx to its recipient or its content), so
    trying again cannot help until someone changes something. `unreachable`: the server
    (or the outbox folder) could not be reached at all, so the emails after this one
    would fail the same way."""

    def __init__(
        self, description: str, permanent: bool = False, unreachable: bool = False
    ) -> None:
        super().__init__(description)
        self.permanent = permanent
        self.unreachable = unreachable


class Transport(Protocol):
    def send(self, raw: bytes, sender: str, recipients: Sequence[str]) -> None: ...
    def close(self) -> None: ...


def open_transport(settings: Settings) -> Transport:
    """The transport named by `smtp_url` (connects lazily, on the first send)."""
    endpoint = settings.smtp
    if endpoint.scheme == "maildir":
        return MaildirTransport(Path(endpoint.path))
    return SmtpTransport(endpoint)


class SmtpTransport:
    """SMTP submission over one long-lived connection."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.connection: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        endpoint = self.endpoint
        context = ssl.create_default_context()
        if endpoint.scheme == "smtps":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                endpoint.host, endpoint.port or 465, timeout=SMTP_TIMEOUT_SECONDS,
                context=context,
            )
        else:
            connection = smtplib.SMTP(
                endpoint.host, endpoint.port or 25, timeout=SMTP_TIMEOUT_SECONDS
            )
            if endpoint.scheme == "smtp+starttls":
                connection.starttls(context=context)
        if endpoint.username:
            connection.login(endpoint.username, endpoint.password)
        return connection

    def send(self, raw: bytes, sender: str, recipients: Sequence[str]) -> None:
        try:
            if self.connection is None:
                self.connection = self._connect()
            try:
                refused = _submit(self.connection, sender, list(recipients), raw)
            except smtplib.SMTPServerDisconnected:
                # The server closed an idle connection: one fresh attempt.
                self.connection = self._connect()
                refused = _submit(self.connection, sender, list(recipients), raw)
        except (smtplib.SMTPException, OSError) as error:
            self.close()
            raise DeliveryError(_describe(error), _is_permanent(error),
                                _is_unreachable(error)) from error
        if refused:
            raise DeliveryError(f"recipients refused: {', '.join(refused)}")

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (smtplib.SMTPException, OSError):
                self.connection.close()
            self.connection = None


def _submit(
    connection: smtplib.SMTP, sender: str, recipients: list[str], raw: bytes
) -> dict[str, tuple[int, bytes]]:
    """One email over `connection`; the recipients refused, or an smtplib exception."""
    connection.ehlo_or_helo_if_needed()
    if connection.has_extn("pipelining"):
        return _submit_pipelined(connection, sender, recipients, raw)
    return connection.sendmail(sender, recipients, raw)


def _submit_pipelined(
    connection: smtplib.SMTP, sender: str, recipients: list[str], raw: bytes
) -> dict[str, tuple[int, bytes]]:
    """`SMTP.sendmail` with MAIL, RCPT and DATA sent together (RFC 2920): the same
    replies read in the same order, and the same exceptions for the same refusals."""
    size = f" SIZE={len(raw)}" if connection.has_extn("size") else ""
    envelope = [f"MAIL FROM:{smtplib.quoteaddr(sender)}{size}\r\n"]
    envelope += [f"RCPT TO:{smtplib.quoteaddr(recipient)}\r\n" for recipient in recipients]
    connection.send("".join(envelope) + "DATA\r\n")
    mail = connection.getreply()
    refused = {}
    for recipient in recipients:
        reply = connection.getreply()
        if reply[0] not in (250, 251):
            refused[recipient] = reply
    data = connection.getreply()
    if mail[0] != 250 or len(refused) == len(recipients) or data[0] != 354:
        if data[0] == 354:
            # DATA accepted after the envelope was refused (RFC 2920 4): an empty
            # message ends it, and the server drops it for want of recipients.
            connection.send(".\r\n")
            connection.getreply()
        _abandon(connection, (mail, *refused.values(), data))
        if mail[0] != 250:
            raise smtplib.SMTPSenderRefused(mail[0], mail[1], sender)
        if len(refused) == len(recipients):
            raise smtplib.SMTPRecipientsRefused(refused)
        raise smtplib.SMTPDataError(*data)
    content = _LINE_STARTING_WITH_A_DOT.sub(b"..", raw)
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    connection.send(content + b".\r\n")
    done = connection.getreply()
    if done[0] != 250:
        _abandon(connection, (done,))
        raise smtplib.SMTPDataError(*done)
    return refused


_LINE_STARTING_WITH_A_DOT = re.compile(rb"(?m)^\.")  # doubled: RFC 5321 4.5.2


def _abandon(connection: smtplib.SMTP, replies: Sequence[tuple[int, bytes]]) -> None:
    """After a refusal: RSET for the next email, or close when the server is leaving."""
    if any(code == 421 for code, _ in replies):
        connection.close()
        return
    with contextlib.suppress(smtplib.SMTPServerDisconnected):  # the next send reconnects
        connection.rset()


class MaildirTransport:
    """Writes each email into a Maildir: the out-of-the-box outbox, no server needed."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.maildir = mailbox.Maildir(path, factory=None, create=True)

    def send(self, raw: bytes, sender: str, recipients: Sequence[str]) -> None:
        try:
            self.maildir.add(raw)
        except OSError as error:
            raise DeliveryError(str(error), unreachable=True) from error

    def close(self) -> None:
        self.maildir.close()


def _is_permanent(error: Exception) -> bool:
    """A 5xx to RCPT (no such mailbox) or to DATA (content refused) is about this email.
    A 5xx to MAIL FROM or at login is about our settings and would refuse every reply:
    those are retried, so that fixing the settings sends them."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    return isinstance(error, smtplib.SMTPDataError) and error.smtp_code >= 500


def _is_unreachable(error: Exception) -> bool:
    """No answer about this email: the connection failed, or the server greeted us with
    a refusal or went away. Every email after it would wait for the same timeout."""
    if isinstance(error, smtplib.SMTPConnectError | smtplib.SMTPServerDisconnected):
        return True
    if isinstance(error, smtplib.SMTPException):  # an OSError too, but the server answered
        return False
    return isinstance(error, OSError)


def _describe(error: Exception) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        message = error.smtp_error
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        return f"{error.smtp_code} {text}"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "recipients refused: " + "; ".join(
            f"{address} {code}" for address, (code, _) in error.recipients.items()
        )
    return f"{error.__class__.__name__}: {error}"
