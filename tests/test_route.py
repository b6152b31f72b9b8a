"""Route's reading of a reply: which short replies only thank us."""

from __future__ import annotations

import pytest

from inbox_worker.clock import utc_now
from inbox_worker.message import parse_email
from inbox_worker.route import is_thanks_only
from tests.mailfactory import customer_email


def _reply(text: str):
    return parse_email(customer_email("Re: [BIL-000012] Your case", text),
                       "billing@acme-billing.example", utc_now())


@pytest.mark.parametrize("text", [
    "Thanks, all good now!",
    "Thank you so much",
    "Merci beaucoup, thank you!",
    "Great, thanks again.",
    "Vielen Dank",
    "ok thanks",
])
def test_a_reply_that_only_thanks_us(text: str) -> None:
    assert is_thanks_only(_reply(text))


@pytest.mark.parametrize("text", [
    "Thanks, but the charge is still on my statement.",
    "Thank you. Can you also send the invoice copy?",
    "Thanks?",
    "Please suspend billing, thanks",
    "",
])
def test_a_reply_that_asks_for_something_is_not_just_thanks(text: str) -> None:
    assert not is_thanks_only(_reply(text))
