"""Retries Bot API calls that Telegram asks to retry, without throttling the labeling loop.

PTB's AIORateLimiter throttles every request with a chat_id to a bot-wide 30 per second, which
would cap answers near 30 per second. Answers inside a worker's own chat (a card edited, a tap
answered) are not limited that way by Telegram, so they never wait unless Telegram says so: a
429 waits its retry_after; a 5xx, a timeout or a dropped connection backs off and tries again a
few times. New messages are what Telegram limits (about 30 a second across chats, about one a
second in a chat after a short burst): they start on a bot-wide pace and take turns in their
chat, so a crowd arriving at once, or a burst in one chat, waits in line instead of meeting 429
after 429; and one that may have been delivered already is never sent again. Bulk sends pace
themselves (bot.notifier).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import itertools
import logging
import time
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger(__name__)

Result = bool | dict[str, Any] | list[dict[str, Any]]
# Passed as `rate_limit_args` by bulk senders, which pace themselves and handle a 429 by
# slowing the whole broadcast down instead of retrying the one request.
BULK = {"bulk": True}
# Requests that put a new message in a chat. When the connection breaks after the request was
# written, or the answer is a 5xx, Telegram may have carried it out: sent again, the message
# would show twice. Only a connection that never opened, or Telegram refusing the request
# (a bad request, a 429), proves nothing arrived.
CREATES = frozenset(
    {"sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup", "copyMessage"}
    | {"forwardMessage", "sendAudio", "sendVideo", "sendVoice", "sendAnimation"}
)


def may_have_arrived(endpoint: str, error: NetworkError) -> bool:
    """Whether a failed request may still have been carried out, so that retrying it could
    deliver a message twice. A 5xx proves nothing: a gateway can fail after Telegram acted."""
    if endpoint not in CREATES or isinstance(error, BadRequest):
        return False
    if isinstance(error, TimedOut):
        # Unless the connection never opened, or never left the pool.
        return not isinstance(error.__cause__, httpx.ConnectTimeout | httpx.PoolTimeout)
    return not str(error.message).startswith("httpx.ConnectError")


def retry_after_seconds(error: RetryAfter) -> float:
    """The wait a 429 asks for; PTB 22 is moving it from int seconds to a timedelta."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


class Pacer:
    """Spaces requests evenly at `rate` per second; `pause` holds every later one back."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = time.monotonic()

    @property
    def rate(self) -> float:
        return 1.0 / self.interval

    async def wait(self, until: asyncio.Event | None = None) -> None:
        """Waits for this request's turn, or only until `until` is set."""
        now = time.monotonic()
        self._next = max(self._next, now)
        delay = self._next - now
        self._next += self.interval
        if delay > 0:
            await nap(delay, until)

    def pause(self, seconds: float) -> None:
        self._next = max(self._next, time.monotonic() + seconds)


async def nap(seconds: float, until: asyncio.Event | None) -> None:
    """Sleeps `seconds`, or less if `until` is set meanwhile."""
    if until is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(until.wait(), seconds)


class Turns:
    """One holder at a time per key, the others waiting in order; a key nobody holds or waits
    for is forgotten, so the table stays the size of the chats being written to."""

    def __init__(self) -> None:
        self._locks: dict[object, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: object) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class RetryingLimiter(BaseRateLimiter[dict[str, bool]]):
    """`send_rate` paces new messages bot-wide (None: not at all).

    Once `stop` is called nothing waits any more: PTB's stop waits for every handler under
    way, and a reply waiting out Telegram's retry_after (as long as Telegram likes, up to
    `max_retries` times) would hold the stop up as long. Such a reply fails instead, and its
    handler's error is logged; the worker's answer was stored before it, and they tap again.
    """

    def __init__(
        self, *, max_retries: int = 4, backoff: float = 0.5, send_rate: float | None = 30.0
    ) -> None:
        self.max_retries = max_retries
        self.backoff = backoff
        self.sends = Pacer(send_rate) if send_rate else None
        self.chats = Turns()
        self.stopping = asyncio.Event()

    def stop(self) -> None:
        """From now on, requests wait neither for their pace nor to retry."""
        self.stopping.set()

    async def initialize(self) -> None:
        self.stopping.clear()

    async def shutdown(self) -> None:
        pass

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: dict[str, bool] | None,
    ) -> Result:
        call = functools.partial(callback, *args, **kwargs)
        if (rate_limit_args or {}).get("bulk"):
            return await call()
        if endpoint not in CREATES:
            return await self._attempts(call, endpoint)
        async with self.chats.turn(data.get("chat_id")):
            return await self._attempts(call, endpoint, paced=True)

    async def _attempts(
        self, call: Callable[[], Coroutine[Any, Any, Result]], endpoint: str, *, paced: bool = False
    ) -> Result:
        failed: TelegramError
        for attempt in itertools.count():
            if paced and self.sends is not None and not self.stopping.is_set():
                await self.sends.wait(self.stopping)
            try:
                return await call()
            except RetryAfter as error:
                if attempt >= self.max_retries or self.stopping.is_set():
                    log.error("%s still rate limited after %d retries", endpoint, attempt)
                    raise
                wait, failed = retry_after_seconds(error), error
            except BadRequest:
                raise  # a bad request stays bad
            except NetworkError as error:  # timeouts and 5xx included
                if endpoint == "getUpdates":
                    raise  # the updater has its own retry loop
                if may_have_arrived(endpoint, error):
                    log.warning("%s may have been delivered (%s); not sent again", endpoint, error)
                    raise
                if attempt >= self.max_retries or self.stopping.is_set():
                    log.error("%s failed after %d retries: %s", endpoint, attempt, error)
                    raise
                wait, failed = self.backoff * 2**attempt, error
                log.warning("%s failed (%s); retry %d in %.1fs", endpoint, error, attempt + 1, wait)
            await nap(wait, self.stopping)
            if self.stopping.is_set():
                log.error("%s not tried again: the bot is stopping", endpoint)
                raise failed
        raise AssertionError("unreachable")
