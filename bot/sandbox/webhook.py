"""Telegram's side of a webhook: what setWebhook set, and the bot's updates posted to it.

Behind the webhook's public URL stand local endpoints, the bot's replicas behind a load
balancer. Telegram posts each update as JSON with the webhook's secret in a header; it sends
one chat's updates one at a time and in order, with at most `max_connections` posts in flight,
and posts an update again until some endpoint answers it with a 2xx: an error, a timeout, a
refused connection or an answer lost on the way back all mean the update was not delivered.
The sandbox posts only to loopback, as it fetches images only from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.sandbox.fetch import is_loopback
from bot.sandbox.updates import Update, Updates

DEFAULT_CONNECTIONS = 40  # setWebhook's max_connections when not given,
MAX_CONNECTIONS = 100  # and the most it allows
POST_TIMEOUT = 10.0  # seconds an endpoint may take to answer a post
BACKOFF = 0.05  # seconds before an update that failed is posted again; doubles on each failure,
MAX_BACKOFF = 1.0  # up to this: the sandbox retries sooner than Telegram, tests run in seconds
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
LOST = "Read timeout expired"  # what Telegram reports when no answer came back in time


@dataclass(slots=True)
class Webhook:
    """What setWebhook set, and the last error in posting to it, as getWebhookInfo shows."""

    url: str
    secret: str | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None
    connections: asyncio.Semaphore = field(init=False)  # one per post in flight

    def __post_init__(self) -> None:
        self.connections = asyncio.Semaphore(self.max_connections)

    def failed(self, error: str) -> None:
        self.last_error_date = int(time.time())
        self.last_error_message = error

    def info(self) -> dict[str, Any]:
        """getWebhookInfo's fields for this webhook, beside those every bot has."""
        info: dict[str, Any] = {"url": self.url, "max_connections": self.max_connections}
        if self.last_error_date is not None:
            info["last_error_date"] = self.last_error_date
            info["last_error_message"] = self.last_error_message
        return info


def chat_of(update: Update) -> int:
    """The chat an update comes from: the sandbox's updates are messages and callback queries
    on messages."""
    message = update.get("message") or update["callback_query"]["message"]
    return int(message["chat"]["id"])


class Delivery:
    """Posts the bot's pending updates to the endpoints behind its webhook while one is set,
    as Telegram does. `webhook` says which one is set now: the bot may set another or delete
    it at any time."""

    def __init__(self, updates: Updates, webhook: Callable[[], Webhook | None]) -> None:
        self.updates = updates
        self.webhook = webhook
        self.endpoints: list[str] = []
        self.duplicates = 0.0
        self.timeout = POST_TIMEOUT
        self._turns = itertools.count()  # the load balancer's round robin
        self._posted = 0  # updates posted, to pick the `duplicates` share evenly
        self._lose = 0  # answers still to lose on purpose
        self._busy: set[int] = set()  # chats with an update on its way: theirs wait for it
        self._replays: deque[Update] = deque()
        self._task: asyncio.Task[None] | None = None

    def route(self, endpoints: Sequence[str], *, duplicates: float, timeout: float) -> None:
        """Puts `endpoints` behind the webhook's URL; see Sandbox.route_webhook."""
        if not endpoints:
            raise ValueError("a webhook needs at least one endpoint behind it")
        for endpoint in endpoints:
            if not is_loopback(urlsplit(endpoint).hostname):
                raise ValueError(f"the sandbox posts to loopback only, not to {endpoint}")
        if not 0.0 <= duplicates <= 1.0:
            raise ValueError("duplicates is a share of the updates, from 0 to 1")
        self.endpoints = list(endpoints)
        self.duplicates = duplicates
        self.timeout = timeout
        self.updates.wake()

    def lose(self, times: int = 1) -> None:
        """Loses the answers to the next `times` posts an endpoint takes, as when a response
        goes missing on its way back: the bot has the update, and it is posted again."""
        self._lose += times

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sandbox webhook delivery")

    async def stop(self) -> None:
        """Ends the delivery and every post on its way; an update not yet taken stays pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as posts:
            while True:
                changed = self.updates.changed
                for update, replay in self._ready():
                    posts.create_task(self._deliver(session, update, replay=replay))
                await changed.wait()

    def _ready(self) -> list[tuple[Update, bool]]:
        """The updates to post now, marked True when they are replays: the oldest waiting one
        of each chat that has none on its way."""
        if self.webhook() is None or not self.endpoints:
            return []
        self._replays.extend(self.updates.take_replays())
        waiting = [(update, True) for update in self._replays]
        waiting += [(update, False) for update in self.updates.pending()]
        ready = []
        for update, replay in waiting:
            chat = chat_of(update)
            if chat in self._busy:
                continue
            self._busy.add(chat)
            if replay:
                self._replays.remove(update)
            ready.append((update, replay))
        return ready

    async def _deliver(
        self, session: aiohttp.ClientSession, update: Update, *, replay: bool
    ) -> None:
        try:
            taken = await self._post_until_taken(session, update)
            if taken and not replay:
                self.updates.confirm(update["update_id"])
        finally:
            self._busy.discard(chat_of(update))
            self.updates.wake()  # the chat's next update may go now

    async def _post_until_taken(self, session: aiohttp.ClientSession, update: Update) -> bool:
        """Posts `update` until an endpoint takes it, each time to the endpoint after the one
        that failed; False when the webhook is deleted first."""
        self._posted += 1
        twice = int(self._posted * self.duplicates) > int((self._posted - 1) * self.duplicates)
        endpoint: str | None = None
        backoff = BACKOFF
        while (webhook := self.webhook()) is not None:
            endpoint = self._next(endpoint)
            error = await self._post(session, webhook, endpoint, update)
            if error is None and (self._lose or twice):
                if self._lose:
                    self._lose -= 1
                else:
                    twice = False
                error = LOST
            if error is None:
                return True
            webhook.failed(error)
            await asyncio.sleep(backoff)
            backoff = min(2 * backoff, MAX_BACKOFF)
        return False

    def _next(self, failed: str | None) -> str:
        """The next endpoint in turn; after a failure, the one after the endpoint that failed,
        so that a second try never lands on the same replica when there are several."""
        if failed is not None and failed in self.endpoints:
            return self.endpoints[(self.endpoints.index(failed) + 1) % len(self.endpoints)]
        return self.endpoints[next(self._turns) % len(self.endpoints)]

    async def _post(
        self, session: aiohttp.ClientSession, webhook: Webhook, endpoint: str, update: Update
    ) -> str | None:
        """Posts one update; None when the endpoint took it, else the error as Telegram words
        it in getWebhookInfo."""
        headers = {SECRET_HEADER: webhook.secret} if webhook.secret else {}
        limit = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with (
                webhook.connections,
                session.post(endpoint, json=update, headers=headers, timeout=limit) as response,
            ):
                if 200 <= response.status < 300:
                    return None
                return f"Wrong response from the webhook: {response.status} {response.reason}"
        except TimeoutError:
            return LOST
        except aiohttp.ClientConnectorError:
            return "Connection refused"
        except aiohttp.ClientError:
            return "Webhook connection closed"
