"""Logging that never shows the bot token."""

from __future__ import annotations

import logging
import re
from typing import TextIO

# Bot API URLs carry the token (…/bot<token>/method); httpx logs every URL at INFO.
_TOKEN = re.compile(r"\d{3,}:[A-Za-z0-9_-]{20,}")


class RedactTokens(logging.Filter):
    """Replaces anything shaped like a bot token, and the configured token, with a mark."""

    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _TOKEN.sub("<token>", message)
        if self.token:
            cleaned = cleaned.replace(self.token, "<token>")
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            cleaned_text = _TOKEN.sub("<token>", text)
            if self.token:
                cleaned_text = cleaned_text.replace(self.token, "<token>")
            record.exc_text, record.exc_info = cleaned_text, None
        return True


def setup_logging(
    level: str = "INFO", token: str | None = None, stream: TextIO | None = None
) -> None:
    """Logs to stderr (or `stream`) through the token filter; quiets httpx, whose INFO lines
    carry every request URL, token included."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactTokens(token))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
