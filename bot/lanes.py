"""Handles taps and messages in lanes of their own, so that neither holds the other back.

A message (a command, a typed answer) is mostly answered with a new message, and Telegram lets
a bot send only about 30 of those a second: when a crowd writes at once, their handlers wait
their turn to send (bot.retry). A tap is answered by editing its card, which Telegram does not
limit that way. Were both in one pool of handlers, a queue of messages waiting to be answered
would fill the pool and stall the labeling; in two lanes, taps keep their speed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor


class Lanes(BaseUpdateProcessor):
    """Up to `per_lane` updates at once of each kind: taps, and everything else."""

    def __init__(self, per_lane: int) -> None:
        # PTB's own pool, which every update enters before its lane, never holds one back: an
        # update waiting there would wait behind the other kind. The lanes do the limiting.
        super().__init__(sys.maxsize)
        self._taps = asyncio.BoundedSemaphore(per_lane)
        self._messages = asyncio.BoundedSemaphore(per_lane)

    def lane(self, update: object) -> asyncio.BoundedSemaphore:
        is_tap = isinstance(update, Update) and update.callback_query is not None
        return self._taps if is_tap else self._messages

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        async with self.lane(update):
            await coroutine

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass
