"""Tells every active worker about a newly opened batch, paced for Telegram's bulk limit."""

from __future__ import annotations

import asyncio
import logging
import time

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import ExtBot

from handlers.callbacks import NextTap, encode
from storage.broadcasts import Broadcast, BroadcastStore

log = logging.getLogger(__name__)

START = "Start labeling ▶"


class Pacer:
    """Spaces sends evenly at `rate` per second (Telegram: about 30 to different users)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        self._next = max(self._next, now)
        delay = self._next - now
        self._next += self.interval
        if delay > 0:
            await asyncio.sleep(delay)


class Notifier:
    def __init__(self, bot: ExtBot[None], store: BroadcastStore, *, rate: float) -> None:
        self.bot = bot
        self.store = store
        self.pacer = Pacer(rate)
        self.claim_size = max(1, int(rate))

    async def run(self, every: float = 2.0) -> None:
        """Sends pending broadcasts forever; a restart resumes where the database says."""
        while True:
            try:
                await self.send_pending()
            except Exception:
                log.exception("broadcast round failed; trying again in %.0fs", every)
            await asyncio.sleep(every)

    async def send_pending(self) -> int:
        sent = 0
        for broadcast in await self.store.unfinished():
            while workers := await self.store.claim(
                broadcast.broadcast_id, time.time(), self.claim_size
            ):
                for worker_id in workers:
                    await self.pacer.wait()
                    sent += await self._send(broadcast, worker_id)
            await self.store.finish(broadcast.broadcast_id, time.time())
            counts = await self.store.counts(broadcast.broadcast_id)
            log.info("broadcast %d finished: %s", broadcast.broadcast_id, counts)
        return sent

    async def _send(self, broadcast: Broadcast, worker_id: int) -> int:
        keyboard = None
        if broadcast.batch_id is not None:
            button = InlineKeyboardButton(START, callback_data=encode(NextTap()))
            keyboard = InlineKeyboardMarkup([[button]])
        try:
            await self.bot.send_message(worker_id, broadcast.text, reply_markup=keyboard)
        except Forbidden as error:
            await self.store.unreachable(worker_id)
            await self.store.delivered(broadcast.broadcast_id, worker_id, time.time(), str(error))
            return 0
        except (BadRequest, TelegramError) as error:
            log.warning("announcement to %d failed: %s", worker_id, error)
            await self.store.delivered(broadcast.broadcast_id, worker_id, time.time(), str(error))
            return 0
        await self.store.delivered(broadcast.broadcast_id, worker_id, time.time())
        return 1
