"""File names for saved attachments: the sender chooses them, so each becomes a plain
name inside the folder the specialist picked."""

from __future__ import annotations

import pytest

from inbox_worker.attachments import safe_file_name


@pytest.mark.parametrize(("name", "saved_as"), [
    ("receipt.pdf", "receipt.pdf"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\eve\\evil.exe", "evil.exe"),
    (".bashrc", "bashrc"),
    ("..", "attachment-3"),
    ("", "attachment-3"),
    ("bill\x1b[31m?.pdf", "bill[31m.pdf"),
    ("Rechnung März.pdf", "Rechnung März.pdf"),
    ("x" * 300 + ".pdf", "x" * 116 + ".pdf"),
])
def test_a_senders_file_name_is_saved_as_a_plain_name(name, saved_as):
    assert safe_file_name(name, 3) == saved_as
