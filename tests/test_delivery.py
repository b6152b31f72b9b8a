"""SmtpTransport against real SMTP servers, with and without PIPELINING (RFC 2920).

Most mail servers offer PIPELINING and the transport then sends MAIL, RCPT and DATA in
one write; aiosmtpd, which the other tests use, does not offer it unless asked. Each
test here runs against both, so the two paths keep the same outcomes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from db.cases import queue_outbound
from db.database import write_transaction
from db.outbox import FIRST_RETRY, claimed_messages, pending_messages, reserve_due
from db.records import OutboundDraft
from inbox_worker.delivery import DeliveryError, SmtpTransport
from inbox_worker.outbox import DeliveryReport, SentMarks, deliver_pending
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
    assert refused.value.unreachable is False  # the server answered, about this email
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


NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _queue_replies(count: int) -> None:
    with write_transaction():
        for number in range(count):
            queue_outbound(None, OutboundDraft(
                message_id=f"<reply-{number}@billing-inbox.acme-billing.example>",
                recipient=f"customer{number}@bakery.example",
                subject="Re: [BIL-000001] Invoice copy", text="Your case is BIL-000001.",
                raw=REPLY, kind="reply"), NOW)


def _deliver(settings, **options) -> DeliveryReport:
    marks = SentMarks(lambda: NOW).start()
    try:
        return deliver_pending(SmtpTransport(settings.smtp), settings, lambda: NOW, marks,
                               **options)
    finally:
        marks.stop()


def test_an_unreachable_server_fails_one_reply_and_puts_off_the_rest(database, make_settings):
    # A port nobody listens on. Trying each reply in turn would cost the same failure
    # for every one (30 s apiece where the network drops packets instead of refusing).
    settings = make_settings(database_url=database,
                             smtp_url=f"smtp://127.0.0.1:{free_port()}")
    _queue_replies(3)

    report = _deliver(settings)

    assert (report.sent, report.failed, report.unreachable) == (0, 1, True)
    first, *rest = pending_messages()
    assert first.attempts == 1 and first.last_error
    assert [(m.attempts, m.claim_token) for m in rest] == [(0, None), (0, None)]
    assert {m.next_attempt_at for m in rest} == {NOW + FIRST_RETRY}


def test_a_reply_the_server_refuses_does_not_hold_back_the_others(
    database, make_settings, server
):
    settings = make_settings(database_url=database, smtp_url=server.url)
    _queue_replies(3)
    server.refuse(True, at="RCPT", reply="451 4.7.1 greylisted, try again later")

    report = _deliver(settings)

    assert (report.failed, report.unreachable) == (3, False)
    assert [m.attempts for m in pending_messages()] == [1, 1, 1]  # each one tried


def test_a_claim_handed_over_half_a_lease_ago_is_not_sent_under(database, make_settings, server):
    # Its lease may run out mid-send and another worker take its replies over: they would
    # go out twice. They go to whoever claims them once the lease has run out.
    settings = make_settings(database_url=database, smtp_url=server.url)
    _queue_replies(2)
    lease = timedelta(seconds=settings.claim_lease_seconds)
    stale = reserve_due(NOW, limit=10, lease=lease)
    handed_over = time.monotonic() - settings.claim_lease_seconds / 2

    report = _deliver(settings, reserved=[(stale, handed_over)], claim=False)

    assert report.sent == 0 and server.messages == []
    assert len(claimed_messages(stale)) == 2  # still claimed, until the lease runs out
    fresh = reserve_due(NOW + lease, limit=10, lease=lease)
    assert _deliver(settings, reserved=[(fresh, time.monotonic())], claim=False).sent == 2
