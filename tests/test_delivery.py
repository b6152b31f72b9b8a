"""SmtpTransport against real SMTP servers, with and without PIPELINING (RFC 2920).

Most mail servers offer PIPELINING and the transport then sends MAIL, RCPT and DATA in
one write; aiosmtpd, which the other tests use, does not offer it unless asked. Each
test here runs against both, so the two paths keep the same outcomes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from db.cases import queue_outbound
from db.database import write_transaction
from db.outbox import pending_messages
from db.records import OutboundDraft
from inbox_worker.delivery import DeliveryError, SmtpTransport
from inbox_worker.outbox import SentMarks, deliver_pending
from inbox_worker.settings import Settings
from tests.servers import LightSmtpCapture, SmtpCapture, free_port

SENDER = "billing@acme-billing.example"
REPLY = (b"From: Acme Billing <billing@acme-billing.example>\r\n"
         b"To: ana@bakery.example\r\nSubject: [BIL-000001] Invoice copy\r\n"
         b"Message-ID: <ack-1@billing-inbox.acme-billing.example>\r\n\r\n"
         b"Your case is BIL-000001.\r\n.a line that starts with a dot\r\n.\r\nThe end.\r\n")


@pytest.fixture(params=[False, True], ids=["plain", "pipelining"])
def server(request: pytest.FixtureRequest) -> Iterator[SmtpCapture]:
    with SmtpCapture(pipelining=request.param) as capture:
        yield capture


def _transport(server: SmtpCapture) -> SmtpTransport:
    return SmtpTransport(Settings(smtp_url=server.url).smtp)


def test_a_reply_arrives_byte_for_byte_and_the_connection_is_kept(server):
    transport = _transport(server)
    try:
        transport.send(REPLY, SENDER, ["ana@bakery.example"])
        connection = transport.connection
        transport.send(REPLY.replace(b"ack-1", b"ack-2"), SENDER, ["ops@clinic.example"])
        assert transport.connection is connection  # one connection for both
    finally:
        transport.close()

    first, second = server.wait_for(2)
    assert (first.mail_from, first.rcpt_tos) == (SENDER, ("ana@bakery.example",))
    assert first.data == REPLY  # the dots the transport doubled are single again
    assert second.rcpt_tos == ("ops@clinic.example",)


@pytest.mark.parametrize(("at", "reply", "permanent"), [
    ("RCPT", "550 5.1.1 no such user here", True),
    ("RCPT", "451 4.3.0 try again later", False),
    ("DATA", "554 5.7.1 message refused", True),
    ("DATA", "451 4.3.0 try again later", False),
])
def test_a_refusal_is_permanent_only_for_a_5xx(server, at, reply, permanent):
    server.refuse(True, at=at, reply=reply)
    transport = _transport(server)
    try:
        with pytest.raises(DeliveryError) as refused:
            transport.send(REPLY, SENDER, ["ana@bakery.example"])
    finally:
        transport.close()

    assert refused.value.permanent is permanent
    assert reply.split()[0] in str(refused.value)
    assert server.messages == []


def test_after_a_refusal_the_next_reply_goes_out(server):
    transport = _transport(server)
    try:
        server.refuse(True, at="RCPT", reply="550 5.1.1 no such user here")
        with pytest.raises(DeliveryError):
            transport.send(REPLY, SENDER, ["gone@bakery.example"])
        server.refuse(False)
        transport.send(REPLY, SENDER, ["ana@bakery.example"])
    finally:
        transport.close()

    [captured] = server.wait_for(1)
    assert captured.rcpt_tos == ("ana@bakery.example",)


def test_with_pipelining_the_envelope_and_data_go_in_one_write():
    with LightSmtpCapture(pipelining=True) as server:
        transport = _transport(server)
        try:
            transport.send(REPLY, SENDER, ["ana@bakery.example"])
        finally:
            transport.close()
        [captured] = server.wait_for(1)

        # MAIL, RCPT and DATA read together: one round trip where there were three.
        assert server._handler.most_commands_in_one_read == 3
    assert captured.data == REPLY


def test_an_unreachable_server_fails_one_reply_and_puts_off_the_rest(database, make_settings):
    # A port nobody listens on. Trying each reply in turn would cost the same failure
    # for every one (30 s apiece where the network drops packets instead of refusing).
    settings = make_settings(database_url=database,
                             smtp_url=f"smtp://127.0.0.1:{free_port()}")
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    with write_transaction():
        for number in range(3):
            queue_outbound(None, OutboundDraft(
                message_id=f"<reply-{number}@billing-inbox.acme-billing.example>",
                recipient="ana@bakery.example", subject="Re: [BIL-000001] Invoice copy",
                text="Your case is BIL-000001.", raw=REPLY, kind="reply"), now)
    marks = SentMarks(lambda: now).start()
    try:
        report = deliver_pending(SmtpTransport(settings.smtp), settings, lambda: now, marks)
    finally:
        marks.stop()

    assert (report.sent, report.failed) == (0, 1)
    first, *rest = pending_messages()
    assert first.attempts == 1 and first.last_error
    assert [(m.attempts, m.claim_token) for m in rest] == [(0, None), (0, None)]
    # Put off until the failed one is tried again, not for a whole claim's lease.
    assert {m.next_attempt_at for m in rest} == {first.next_attempt_at}
    assert first.next_attempt_at > now
