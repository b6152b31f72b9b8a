"""Readable plain text from an HTML-only email, with the standard library's parser.

Block elements become line breaks, `<blockquote>` (quoted history) is rendered with `>`
so the quote stripper removes it, and scripts and styles are dropped.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table", "hr"}
_SKIPPED = {"script", "style", "head", "title"}


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self.skip_depth = 0
        self.quote_depth = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _SKIPPED:
            self.skip_depth += 1
        elif tag == "blockquote":
            self.quote_depth += 1
            self._newline()
        elif tag in _BLOCKS:
            self._newline()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag == "blockquote":
            self.quote_depth = max(0, self.quote_depth - 1)
            self._newline()
        elif tag in _BLOCKS:
            self._newline()

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        text = re.sub(r"\s+", " ", data)
        if not self.lines[-1]:
            text = text.lstrip()
            if text and self.quote_depth:
                text = "> " * self.quote_depth + text
        self.lines[-1] += text

    def _newline(self) -> None:
        self.lines[-1] = self.lines[-1].rstrip()
        self.lines.append("")


def html_to_text(html: str) -> str:
    """Plain text of an HTML body, one paragraph per line."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    text = "\n".join(collector.lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
