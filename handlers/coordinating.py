"""What every coordinator command shares: reading its arguments, and replying."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.constants import MessageLimit

from handlers.context import LabelContext

MAX_ID = 2**53

Handler = Callable[[Update, LabelContext], Coroutine[Any, Any, None]]


class Usage(Exception):
    """Wrong or missing arguments: the command's usage line is the answer."""


async def reply(update: Update, text: str) -> None:
    assert update.effective_message is not None
    if len(text) > MessageLimit.MAX_TEXT_LENGTH:
        text = text[: MessageLimit.MAX_TEXT_LENGTH - 20] + "\n… (cut short)"
    await update.effective_message.reply_text(text)


def number(text: str) -> int:
    # isdigit alone admits digits of other scripts, and int() would take them.
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < MAX_ID:
        raise Usage
    return int(text)


def batch_argument(context: LabelContext, *, extra: int = 0) -> tuple[int, list[str]]:
    """The batch number that comes first, and up to `extra` arguments after it."""
    args = context.args or []
    if not args or len(args) > 1 + extra:
        raise Usage
    return number(args[0]), args[1:]
