"""Trouble a test orders on purpose: errors and lost answers, slow answers, held calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.sandbox.wire import ApiError, Params


class Disconnect(Exception):
    """Drop the connection without an answer, as a network failure would."""


@dataclass(slots=True)
class Fault:
    """Trouble with the next `times` matching calls. Before the method runs, an error
    answered instead of running it; after it runs (`when="after"`), the effect stays but the
    answer is lost, as when a response goes missing on its way back. Code 0 drops the
    connection without any answer; no code answers normally. `delay` holds the answer back
    first: past the client's timeout, the call still completes here."""

    code: int | None = None
    method: str | None = None
    chat_id: int | None = None
    times: int = 1
    retry_after: int = 1
    description: str | None = None
    when: Literal["before", "after"] = "before"
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.when not in ("before", "after"):
            raise ValueError(f"when must be 'before' or 'after', not {self.when!r}")
        if self.delay < 0:
            raise ValueError("delay must not be negative")

    def matches(self, method: str, chat_id: int | None) -> bool:
        return (self.method in (None, method)) and (self.chat_id in (None, chat_id))

    async def strike(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.code is not None:
            raise self.error(self.code)

    def error(self, code: int) -> Exception:
        if code == 0:
            return Disconnect()
        if code == 429:
            return ApiError(
                429, f"Too Many Requests: retry after {self.retry_after}", self.retry_after
            )
        default = {
            403: "Forbidden: bot was blocked by the user",
            500: "Internal Server Error",
            502: "Bad Gateway",
        }.get(code, "Error")
        return ApiError(code, self.description or default)


class Hold:
    """Calls of one Bot API method that wait until the test releases them (they then run) or
    drops them (they then fail as a lost connection would: the bot that made them is gone).
    `when` narrows which calls wait, by their parameters."""

    def __init__(self, method: str, when: Callable[[Params], bool] | None = None) -> None:
        self.method = method
        self.when = when
        self.held = 0  # calls that have reached the hold
        self._reached = asyncio.Event()
        self._gate = asyncio.Event()
        self._dropped = False

    def matches(self, method: str, params: Params) -> bool:
        if self._gate.is_set() or method != self.method:
            return False
        return self.when is None or self.when(params)

    async def wait(self) -> None:
        self.held += 1
        self._reached.set()
        await self._gate.wait()
        if self._dropped:
            raise Disconnect()

    async def reached(self, timeout: float = 10.0) -> None:
        """Waits until a call is waiting here (or has been)."""
        async with asyncio.timeout(timeout):
            await self._reached.wait()

    def release(self) -> None:
        self._gate.set()

    def drop(self) -> None:
        self._dropped = True
        self._gate.set()
