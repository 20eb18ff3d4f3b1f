"""Logging that never shows the bot token."""

from __future__ import annotations

import logging
import re
import sys
from types import TracebackType
from typing import TextIO

# Bot API URLs carry the token (…/bot<token>/method); httpx logs every URL at INFO.
_TOKEN = re.compile(r"\d{3,}:[A-Za-z0-9_-]{20,}")


def redact(text: str, token: str | None = None) -> str:
    """The text with anything shaped like a bot token, and `token`, replaced by a mark."""
    cleaned = _TOKEN.sub("<token>", text)
    return cleaned.replace(token, "<token>") if token else cleaned


class RedactTokens(logging.Filter):
    """Replaces anything shaped like a bot token, and the configured token, with a mark."""

    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.token)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = redact(text, self.token), None
        return True


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    """Sends an error nothing caught through the log, and so through the token filter:
    Python would print it raw, and PTB's InvalidToken quotes the refused token whole."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, trace)
        return
    logging.getLogger("labelbot").critical("stopped by an error", exc_info=(kind, error, trace))


class StartupAborts(logging.Filter):
    """Drops PTB's record, with its traceback, of a start-up step it gave up on: the command
    line says in one line what failed and what to check (bot.cli.startup_failure)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name.startswith("telegram.ext")
            and record.levelno >= logging.ERROR
            and "Network Retry Loop (Bootstrap" in record.getMessage()
        )


def setup_logging(
    level: str = "INFO", token: str | None = None, stream: TextIO | None = None
) -> None:
    """Logs to stderr (or `stream`) through the token filter; quiets httpx, whose INFO lines
    carry every request URL, token included."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactTokens(token))
    handler.addFilter(StartupAborts())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sys.excepthook = _log_uncaught
