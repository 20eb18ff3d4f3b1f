"""Retries Bot API calls that Telegram asks to retry, without throttling the labeling loop.

PTB's AIORateLimiter throttles every request with a chat_id to a bot-wide 30 per second, which
would cap answers near 30 per second. Replies inside a worker's own chat are not bulk sends, so
here nothing waits unless Telegram says so: a 429 waits its retry_after, a 5xx, a timeout or a
dropped connection backs off and tries again a few times, unless it may have delivered a
message already. Bulk sends are paced by bot.notifier.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger(__name__)

Result = bool | dict[str, Any] | list[dict[str, Any]]
# Passed as `rate_limit_args` by bulk senders that handle a 429 themselves (by slowing the
# whole broadcast down) instead of retrying the one request.
NO_RETRY_ON_429 = {"retry_on_429": False}
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


class RetryingLimiter(BaseRateLimiter[dict[str, bool]]):
    def __init__(self, *, max_retries: int = 4, backoff: float = 0.5) -> None:
        self.max_retries = max_retries
        self.backoff = backoff

    async def initialize(self) -> None:
        pass

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
        retry_on_429 = (rate_limit_args or {}).get("retry_on_429", True)
        for attempt in itertools.count():
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                if not retry_on_429 or attempt >= self.max_retries:
                    log.error("%s still rate limited after %d retries", endpoint, attempt)
                    raise
                wait = retry_after_seconds(error)
            except BadRequest:
                raise  # a bad request stays bad
            except NetworkError as error:  # timeouts and 5xx included
                if endpoint == "getUpdates":
                    raise  # the updater has its own retry loop
                if may_have_arrived(endpoint, error):
                    log.warning("%s may have been delivered (%s); not sent again", endpoint, error)
                    raise
                if attempt >= self.max_retries:
                    log.error("%s failed after %d retries: %s", endpoint, attempt, error)
                    raise
                wait = self.backoff * 2**attempt
                log.warning("%s failed (%s); retry %d in %.1fs", endpoint, error, attempt + 1, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")
