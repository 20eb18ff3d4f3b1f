"""With a webhook set, the sandbox posts the bot's updates itself, as Telegram does: to the
endpoints behind the webhook's URL in turn, with the secret, one chat at a time, at most
max_connections at once, again after any failure, twice on purpose. Checked with plain aiohttp
endpoints that record what they were posted."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from telegram import Bot
from telegram.error import Conflict

from bot.local import SANDBOX_TOKEN
from bot.sandbox import Sandbox, SandboxServer
from bot.sandbox.webhook import LOST, SECRET_HEADER
from tests.harness import settle

SECRET = "s3cret-webhook-token_0123456789"
URL = "https://bot.example/telegram"


@dataclass
class Replicas:
    """Bot replicas behind the webhook's URL, as plain endpoints: they record each post as
    (replica, update id) in the order posts arrive, and answer 200 unless told otherwise."""

    urls: dict[str, str] = field(default_factory=dict)
    posts: list[tuple[str, int]] = field(default_factory=list)
    secrets: set[str | None] = field(default_factory=set)
    answers: dict[str, deque[int]] = field(default_factory=dict)  # statuses to give first
    held: Callable[[dict[str, Any]], bool] = lambda update: False  # posts that wait for `gate`
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    peak: int = 0

    def ids(self, name: str | None = None) -> list[int]:
        return [update_id for replica, update_id in self.posts if name in (None, replica)]

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["replica"]
        update = await request.json()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.held(update):
                await self.gate.wait()
            self.posts.append((name, update["update_id"]))
            self.secrets.add(request.headers.get(SECRET_HEADER))
            pending = self.answers.get(name)
            return web.Response(status=pending.popleft() if pending else 200)
        finally:
            self.in_flight -= 1


@contextlib.asynccontextmanager
async def replicas(*names: str) -> AsyncIterator[Replicas]:
    """One local server with an endpoint per replica name."""
    bots = Replicas()
    app = web.Application()
    app.router.add_post("/{replica}/telegram", bots.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    bots.urls = {name: f"http://127.0.0.1:{port}/{name}/telegram" for name in names}
    try:
        yield bots
    finally:
        bots.gate.set()  # a held post ends, so that the server can stop
        await runner.cleanup()


def dead_url() -> str:
    """An endpoint where nothing listens: its connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/telegram"


@dataclass
class Box:
    sandbox: Sandbox
    bot: Bot
    server: SandboxServer


@pytest.fixture
async def box() -> AsyncIterator[Box]:
    sandbox = Sandbox(SANDBOX_TOKEN)
    async with SandboxServer(sandbox) as server:
        bot = Bot(SANDBOX_TOKEN, base_url=server.base_url, base_file_url=server.base_file_url)
        async with bot:
            yield Box(sandbox, bot, server)


def failed(box: Box) -> bool:
    """Whether posting to the webhook has failed yet."""
    webhook = box.sandbox.webhook
    return webhook is not None and webhook.last_error_date is not None


def say(box: Box, user_id: int, *texts: str) -> None:
    user = box.sandbox.user(user_id)
    for text in texts:
        user.send(text)


async def test_updates_go_to_the_replicas_in_turn_with_the_secret(box: Box) -> None:
    await box.bot.set_webhook(URL, secret_token=SECRET)
    say(box, 5, "one", "two", "three", "four")
    waiting = await box.bot.get_webhook_info()
    assert (waiting.url, waiting.pending_update_count, waiting.max_connections) == (URL, 4, 40)
    async with replicas("a", "b") as bots:
        box.sandbox.route_webhook([bots.urls["a"], bots.urls["b"]])
        await settle(lambda: len(bots.posts) == 4)
        assert bots.posts == [("a", 1), ("b", 2), ("a", 3), ("b", 4)]
        assert bots.secrets == {SECRET}
        info = await box.bot.get_webhook_info()
        assert info.pending_update_count == 0
        assert info.last_error_date is None and info.last_error_message is None


async def test_max_connections_is_clamped_into_telegrams_range(box: Box) -> None:
    for asked, kept in ((500, 100), (0, 1), (7, 7)):
        await box.bot.set_webhook(URL, max_connections=asked)
        assert (await box.bot.get_webhook_info()).max_connections == kept
    await box.bot.delete_webhook()
    info = await box.bot.get_webhook_info()
    assert (info.url, info.max_connections) == ("", None)


async def test_one_chat_gets_its_updates_one_at_a_time_in_order(box: Box) -> None:
    await box.bot.set_webhook(URL)
    async with replicas("a", "b") as bots:
        bots.held = lambda update: update["message"]["chat"]["id"] == 5
        box.sandbox.route_webhook(list(bots.urls.values()))
        say(box, 5, "first", "second")
        say(box, 6, "other chat")
        await settle(lambda: bots.ids() == [3] and bots.in_flight == 1)
        bots.gate.set()
        await settle(lambda: len(bots.posts) == 3)
        assert bots.ids() == [3, 1, 2]


async def test_no_more_posts_at_once_than_max_connections(box: Box) -> None:
    await box.bot.set_webhook(URL, max_connections=3)
    async with replicas("a", "b") as bots:
        bots.held = lambda update: True
        box.sandbox.route_webhook(list(bots.urls.values()))
        for user_id in range(10, 20):
            say(box, user_id, "hello")
        await settle(lambda: bots.in_flight == 3)
        await asyncio.sleep(0.2)  # time enough for more posts, were they allowed
        assert bots.peak == 3
        bots.gate.set()
        await settle(lambda: len(bots.posts) == 10)
        assert bots.peak == 3
        assert sorted(bots.ids()) == list(range(1, 11))


async def test_an_error_answer_is_posted_again_to_the_next_replica(box: Box) -> None:
    await box.bot.set_webhook(URL)
    async with replicas("a", "b") as bots:
        bots.answers["a"] = deque([500])
        box.sandbox.route_webhook([bots.urls["a"], bots.urls["b"]])
        say(box, 5, "hello")
        await settle(lambda: len(bots.posts) == 2)
        assert bots.posts == [("a", 1), ("b", 1)]
        info = await box.bot.get_webhook_info()
        assert (
            info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
        )
        assert info.last_error_date is not None and info.pending_update_count == 0


async def test_a_lone_replica_that_keeps_failing_still_gets_the_update(box: Box) -> None:
    await box.bot.set_webhook(URL)
    async with replicas("a") as bots:
        bots.answers["a"] = deque([502, 503, 500])
        box.sandbox.route_webhook([bots.urls["a"]])
        say(box, 5, "hello")
        await settle(lambda: len(bots.posts) == 4)
        assert bots.ids() == [1, 1, 1, 1]
        assert (await box.bot.get_webhook_info()).pending_update_count == 0


async def test_a_dead_replica_is_passed_over(box: Box) -> None:
    await box.bot.set_webhook(URL)
    async with replicas("b") as bots:
        box.sandbox.route_webhook([dead_url(), bots.urls["b"]])
        say(box, 5, "one", "two", "three")
        await settle(lambda: len(bots.posts) == 3)
        assert bots.ids("b") == [1, 2, 3]
        assert (await box.bot.get_webhook_info()).last_error_message == "Connection refused"


async def test_a_replica_too_slow_to_answer_counts_as_failed(box: Box) -> None:
    await box.bot.set_webhook(URL)
    async with replicas("a", "b") as bots:
        first = iter([True])
        bots.held = lambda update: next(first, False)  # the first post hangs
        box.sandbox.route_webhook([bots.urls["a"], bots.urls["b"]], timeout=0.2)
        say(box, 5, "hello")
        await settle(lambda: bots.ids("b") == [1])
        assert (await box.bot.get_webhook_info()).last_error_message == LOST


async def test_a_share_of_updates_is_posted_twice_to_two_replicas(box: Box) -> None:
    await box.bot.set_webhook(URL)
    async with replicas("a", "b") as bots:
        box.sandbox.route_webhook(list(bots.urls.values()), duplicates=1.0)
        say(box, 5, "one", "two")
        await settle(lambda: len(bots.posts) == 4)
        assert bots.posts == [("a", 1), ("b", 1), ("b", 2), ("a", 2)]
        box.sandbox.route_webhook(list(bots.urls.values()), duplicates=0.5)
        say(box, 5, "three", "four", "five", "six")
        await settle(lambda: len(bots.posts) == 10)
        assert Counter(bots.ids()) == {1: 2, 2: 2, 3: 1, 4: 2, 5: 1, 6: 2}
        assert (await box.bot.get_webhook_info()).last_error_message == LOST


async def test_a_lost_answer_brings_the_update_again(box: Box) -> None:
    await box.bot.set_webhook(URL)
    async with replicas("a", "b") as bots:
        delivery = box.sandbox.route_webhook(list(bots.urls.values()))
        delivery.lose()
        say(box, 5, "one", "two")
        await settle(lambda: len(bots.posts) == 3)
        assert bots.posts == [("a", 1), ("b", 1), ("b", 2)]
        box.sandbox.replay(2)  # as a test asks of Telegram when polling
        await settle(lambda: len(bots.posts) == 4)
        assert bots.posts[-1] == ("a", 2)


async def test_getupdates_conflicts_with_a_webhook_and_gets_what_it_left(box: Box) -> None:
    await box.bot.set_webhook(URL)
    box.sandbox.route_webhook([dead_url()])
    say(box, 5, "hello")
    await settle(lambda: failed(box))
    with pytest.raises(Conflict, match="webhook is active"):
        await box.bot.get_updates()
    await box.bot.delete_webhook()
    (update,) = await box.bot.get_updates()
    assert update.message.text == "hello"


async def test_the_delivery_stops_with_the_sandbox(box: Box) -> None:
    running = asyncio.all_tasks()  # the test's own, and the servers' connections
    await box.bot.set_webhook(URL)
    box.sandbox.route_webhook([dead_url()])
    say(box, 5, "hello")  # retried for as long as the sandbox runs
    await settle(lambda: failed(box))
    assert asyncio.all_tasks() - running
    await box.server.stop()
    assert not asyncio.all_tasks() - running
    assert box.sandbox.delivery is None and len(box.sandbox.updates) == 1


@pytest.mark.parametrize(
    ("endpoints", "duplicates", "message"),
    [
        ([], 0.0, "at least one endpoint"),
        (["https://bot.example/telegram"], 0.0, "loopback only"),
        (["http://127.0.0.1:8443/telegram"], 1.5, "share of the updates"),
    ],
)
async def test_routes_are_checked(
    box: Box, endpoints: list[str], duplicates: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        box.sandbox.route_webhook(endpoints, duplicates=duplicates)
