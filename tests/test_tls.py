"""imaps:// and smtps:// check the server's certificate: a self-signed one is refused."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from inbox_worker.delivery import DeliveryError, SmtpTransport
from inbox_worker.settings import Settings, parse_endpoint
from inbox_worker.sources import ImapSource
from tests.conftest import require_server


@pytest.fixture
def self_signed_tls_port(tmp_path: Path) -> Iterator[int]:
    """A TLS listener on the loopback with a certificate nobody trusts."""
    require_server(shutil.which("openssl") is not None, "openssl not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def accept_one() -> None:
        try:
            connection, _ = listener.accept()
            with context.wrap_socket(connection, server_side=True):
                pass
        except (OSError, ssl.SSLError):
            pass  # the client hangs up during the handshake, as it should

    thread = threading.Thread(target=accept_one, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(timeout=5)


def test_imaps_refuses_a_server_whose_certificate_cannot_be_verified(self_signed_tls_port):
    url = f"imaps://billing:secret@127.0.0.1:{self_signed_tls_port}/INBOX"
    endpoint = parse_endpoint(url, "mailbox_url", ("imaps",))

    with pytest.raises(ssl.SSLCertVerificationError):
        ImapSource(endpoint, Settings(mailbox_url=url))


def test_smtps_refuses_a_server_whose_certificate_cannot_be_verified(self_signed_tls_port):
    endpoint = parse_endpoint(f"smtps://127.0.0.1:{self_signed_tls_port}", "smtp_url",
                              ("smtps",))

    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        SmtpTransport(endpoint).send(b"Subject: x\r\n\r\nbody\r\n", "a@b.example",
                                     ["c@d.example"])
