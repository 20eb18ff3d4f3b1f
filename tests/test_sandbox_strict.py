"""The sandbox is at least as strict as Telegram: lost answers with effects, slow answers,
flood limits, image URLs, old callback queries, per-chat message ids, chats the bot may not
open, and edits that change nothing. Checked over HTTP with PTB's own Bot, and through the bot
as workers act."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import ExtBot

from bot.local import SANDBOX_TOKEN
from bot.notifier import Notifier
from bot.retry import RetryingLimiter, retry_after_seconds
from bot.sandbox import Limits, Sandbox, SandboxServer
from labeling.batch import BatchSettings
from labeling.batches import BatchService
from storage.batches import BatchStore
from storage.broadcasts import BroadcastStore
from storage.db import Database
from tests.conftest import JPEG
from tests.harness import ANNOUNCEMENT, Harness, first_card, press, settle


@dataclass
class Clock:
    """Time that moves only when a test says so."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Box:
    sandbox: Sandbox
    bot: Bot
    server: SandboxServer
    clock: Clock


@contextlib.asynccontextmanager
async def open_box(**options: object) -> AsyncIterator[Box]:
    clock = Clock()
    sandbox = Sandbox(SANDBOX_TOKEN, clock=clock, **options)  # type: ignore[arg-type]
    async with SandboxServer(sandbox) as server:
        bot = Bot(SANDBOX_TOKEN, base_url=server.base_url, base_file_url=server.base_file_url)
        async with bot:
            yield Box(sandbox, bot, server, clock)


@pytest.fixture
async def box() -> AsyncIterator[Box]:
    async with open_box() as opened:
        yield opened


def keyboard(data: str = "x") -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data=data)]])


def started(sandbox: Sandbox, *user_ids: int) -> None:
    for user_id in user_ids:
        sandbox.user(user_id).send("/start")


# -- faults after the method ran, and answers held past the client's timeout -------------


async def test_a_response_lost_after_the_method_ran_keeps_its_effect(box: Box) -> None:
    started(box.sandbox, 5)
    user = box.sandbox.user(5)
    box.sandbox.inject(0, method="send_message", when="after")
    with pytest.raises(NetworkError):
        await box.bot.send_message(5, "dropped on the way back")
    box.sandbox.inject(502, method="send_message", when="after")
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await box.bot.send_message(5, "a gateway failed on the way back")
    assert [m.shown for m in user.bot_messages] == [
        "dropped on the way back",
        "a gateway failed on the way back",
    ]
    box.sandbox.inject(502, method="send_message")  # before: nothing happens
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await box.bot.send_message(5, "never sent")
    assert len(user.bot_messages) == 2


async def test_an_answer_held_past_the_clients_timeout_still_lands(box: Box) -> None:
    started(box.sandbox, 5)
    user = box.sandbox.user(5)
    for when in ("after", "before"):
        box.sandbox.inject(method="send_message", delay=0.5, when=when)
        with pytest.raises(TimedOut):
            await box.bot.send_message(5, f"slow {when}", read_timeout=0.1)
        await user.wait_for(lambda u, w=when: u.last is not None and u.last.shown == f"slow {w}")
    assert len(user.bot_messages) == 2


async def test_faults_are_injected_over_http_with_when_and_delay(box: Box) -> None:
    started(box.sandbox, 5)
    root = box.server.base_url.removesuffix("/bot")
    async with httpx.AsyncClient(base_url=root) as client:
        fault = {"code": 500, "method": "send_message", "when": "after"}
        assert (await client.post("/sandbox/faults", json=fault)).status_code == 200
        wrong = {"code": 500, "when": "later"}
        assert (await client.post("/sandbox/faults", json=wrong)).status_code == 400
        slow = {"method": "send_message", "delay": 0.3}  # no code: only slow
        assert (await client.post("/sandbox/faults", json=slow)).status_code == 200
    with pytest.raises(NetworkError):
        await box.bot.send_message(5, "landed, answer lost")
    with pytest.raises(TimedOut):
        await box.bot.send_message(5, "landed late", read_timeout=0.1)
    user = box.sandbox.user(5)
    await user.wait_for(lambda u: len(u.bot_messages) == 2)


# -- Telegram's flood limits ----------------------------------------------------------------


async def test_a_private_chat_takes_a_short_burst_then_one_a_second(box: Box) -> None:
    started(box.sandbox, 5)
    sent = [await box.bot.send_message(5, f"burst {i}") for i in range(3)]
    with pytest.raises(RetryAfter) as limited:
        await box.bot.send_message(5, "one too many")
    assert retry_after_seconds(limited.value) == 1
    for message in sent:  # edits are not limited this way
        await box.bot.edit_message_text("edited", 5, message.message_id)
    box.clock.advance(1.0)
    await box.bot.send_message(5, "after a second")
    with pytest.raises(RetryAfter):
        await box.bot.send_message(5, "again too soon")
    assert box.sandbox.limited[5] == 2


async def test_sends_across_chats_are_held_near_thirty_a_second(box: Box) -> None:
    users = range(100, 160)
    started(box.sandbox, *users)
    for user_id in list(users)[:30]:
        await box.bot.send_message(user_id, "news")
    with pytest.raises(RetryAfter) as limited:
        await box.bot.send_message(130, "news")
    assert retry_after_seconds(limited.value) == 1
    # A paid broadcast has its own, higher limit.
    await box.bot.send_message(131, "paid news", allow_paid_broadcast=True)
    box.clock.advance(0.5)
    sent = 0
    for user_id in list(users)[30:]:
        try:
            await box.bot.send_message(user_id, "news")
            sent += 1
        except RetryAfter:
            break
    assert sent == 15


async def test_a_group_gets_twenty_a_minute(box: Box) -> None:
    group = box.sandbox.group(-100, "Labelers")
    for _ in range(3):
        await box.bot.send_message(-100, "hello group")
    with pytest.raises(RetryAfter) as limited:
        await box.bot.send_message(-100, "one too many")
    assert retry_after_seconds(limited.value) == 3  # one message every three seconds
    landed = 0
    for _ in range(60):  # a minute of trying every second
        box.clock.advance(1.0)
        try:
            await box.bot.send_message(-100, "hello group")
            landed += 1
        except RetryAfter:
            pass
    assert landed == 20
    assert len(group.bot_messages) == 23


async def test_limits_can_be_switched_off_for_benchmarks() -> None:
    async with open_box(limits=None) as box:
        started(box.sandbox, 5)
        for i in range(50):
            await box.bot.send_message(5, f"fast {i}")
        assert len(box.sandbox.user(5).bot_messages) == 50


async def test_limits_can_be_set() -> None:
    async with open_box(limits=Limits(private=(1.0, 1))) as box:
        started(box.sandbox, 5)
        await box.bot.send_message(5, "one")
        with pytest.raises(RetryAfter):
            await box.bot.send_message(5, "two")


# -- photos by URL ------------------------------------------------------------------------


async def test_a_photo_url_must_answer_with_an_image(box: Box, images: str) -> None:
    started(box.sandbox, 5)
    sent = await box.bot.send_photo(5, f"{images}/duck.jpg", caption="a duck")
    user = box.sandbox.user(5)
    assert user.last is not None and user.last.photo is not None
    assert user.last.photo.content == JPEG and sent.caption == "a duck"
    refusals = {
        f"{images}/page.html": "wrong type of the web page content",
        f"{images}/missing.png": "failed to get http url content",
        "https://example.org/duck.jpg": "failed to get http url content",  # not served here
    }
    for url, reason in refusals.items():
        with pytest.raises(BadRequest, match=f"(?i){reason}"):
            await box.bot.send_photo(5, url)
    assert len(user.bot_messages) == 1


# -- callback queries, message ids, chats the bot may not open, unchanged edits ------------


async def test_a_callback_query_expires_after_about_fifteen_seconds(box: Box) -> None:
    started(box.sandbox, 5)
    user = box.sandbox.user(5)
    await box.bot.send_message(5, "tap me", reply_markup=keyboard())
    user.press("Go", times=2)  # two queries, both made now
    updates = await box.bot.get_updates()
    first, second = (u.callback_query for u in updates if u.callback_query is not None)
    box.clock.advance(14.0)
    assert await first.answer("in time")
    box.clock.advance(2.0)
    with pytest.raises(BadRequest, match="Query is too old"):
        await second.answer("too late")
    assert [n.text for n in user.notices] == ["in time"]


async def test_message_ids_count_per_chat(box: Box) -> None:
    started(box.sandbox, 5, 6)  # each chat holds the user's /start as message 1
    first = await box.bot.send_message(5, "to five")
    second = await box.bot.send_message(6, "to six")
    assert (first.message_id, second.message_id) == (2, 2)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await box.bot.edit_message_text("x", 6, 3)


async def test_the_bot_cannot_write_first(box: Box) -> None:
    box.sandbox.user(7)  # known to Telegram, never wrote to the bot
    with pytest.raises(Forbidden, match="bot can't initiate conversation with a user"):
        await box.bot.send_message(7, "hello?")
    box.sandbox.user(7).send("hi")
    assert (await box.bot.send_message(7, "hello!")).text == "hello!"
    box.sandbox.user(8, started=True)  # wrote to the bot before the sandbox started
    assert (await box.bot.send_message(8, "welcome back")).text == "welcome back"


async def test_an_edit_that_changes_only_markup_syntax_is_not_a_change(box: Box) -> None:
    started(box.sandbox, 5)
    sent = await box.bot.send_message(5, "<b>same</b> text", parse_mode="HTML")
    not_modified = pytest.raises(BadRequest, match="Message is not modified")
    with not_modified:
        await box.bot.edit_message_text("same text", 5, sent.message_id)
    with not_modified:
        await box.bot.edit_message_text("<i>same</i> text", 5, sent.message_id, parse_mode="HTML")
    with not_modified:
        await box.bot.edit_message_reply_markup(5, sent.message_id)
    edited = await box.bot.edit_message_text(
        "same text", 5, sent.message_id, reply_markup=keyboard()
    )
    assert edited.text == "same text"


# -- the bot under the stricter sandbox ---------------------------------------------------


async def test_replies_over_a_chats_limit_wait_their_turn(harness: Harness) -> None:
    worker = await harness.join(51)
    for _ in range(8):  # faster than Telegram lets a bot answer in one chat
        worker.send("/help")
    await worker.wait_for(lambda u: sum("/stats" in m.shown for m in u.bot_messages) == 8, 30)
    assert harness.sandbox.limited[51] > 0


async def test_a_crowd_starting_at_once_is_welcomed_one_and_all(harness: Harness) -> None:
    crowd = [harness.user(uid) for uid in range(1000, 1200)]
    for worker in crowd:  # more than Telegram lets a bot send in five seconds
        worker.send("/start")
    for worker in crowd:
        await worker.wait_for(lambda u: any("Welcome" in m.shown for m in u.bot_messages), 30)


async def test_a_late_tap_is_saved_though_its_query_expired(harness: Harness) -> None:
    harness.sandbox.callback_ttl = -1.0  # every query is too old by the time it is answered
    await harness.add_batch("text\nGreat phone\nBad phone\n", options="yes,no", overlap=1)
    worker = await harness.join(93)
    card = await first_card(harness, worker)
    await press(worker, card, "yes")
    await settle(lambda: harness.sandbox.calls["answer_callback_query"] >= 1)
    assert await harness.query("SELECT value FROM answers") == [("yes",)]
    assert worker.notices == []


class ClaimsAfterTheAnswers(BroadcastStore):
    """Finds no more workers only once Telegram has answered the sends under way: the moment
    a 429 lands while the broadcast looks for more work."""

    def __init__(self, db: Database, sandbox: Sandbox) -> None:
        super().__init__(db)
        self.sandbox = sandbox

    async def claim(self, broadcast_id: int, now: float, limit: int) -> list[int]:
        claimed = await super().claim(broadcast_id, now, limit)
        if not claimed:
            await settle(lambda: self.sandbox.limited.total() > 0)
            await asyncio.sleep(0.05)  # the send's task takes in its 429
        return claimed


async def test_a_429_that_lands_while_the_broadcast_claims_is_retried(db: Database) -> None:
    await db.run(
        lambda tx: tx.execute(
            "INSERT INTO workers (id, name, created_at, last_seen_at) VALUES (61, 'w', 0, 0)"
        )
    )
    batches = BatchService(BatchStore(db))
    imported = await batches.import_file(
        b"text\na\n", "b.csv", BatchSettings(name="B", question="q?", options="yes,no")
    )
    await batches.publish(imported.batch_id)
    async with open_box(limits=Limits(private=(1.0, 1))) as box:
        worker = box.sandbox.user(61, started=True)
        await box.bot.send_message(61, "the chat's burst, used up")
        bot = ExtBot(SANDBOX_TOKEN, base_url=box.server.base_url, rate_limiter=RetryingLimiter())
        async with bot:
            store = ClaimsAfterTheAnswers(db, box.sandbox)
            notifier = Notifier(bot, store, rate=30.0)
            sending = asyncio.create_task(notifier.send_pending())
            await settle(lambda: store.sandbox.limited[61] == 1)
            box.clock.advance(1.0)  # Telegram's wait is over
            await asyncio.wait_for(sending, 10)
        assert sum(ANNOUNCEMENT in m.shown for m in worker.bot_messages) == 1
        assert await store.counts(1) == {"sent": 1}


async def test_taps_are_answered_while_a_crowd_waits_its_turn(tmp_path: Path) -> None:
    async with Harness(tmp_path / "lanes.db", concurrent_updates=8) as harness:
        await harness.add_batch("text\nGreat phone\nBad phone\n", options="yes,no", overlap=1)
        worker = await harness.join(50)
        card = await first_card(harness, worker)
        crowd = [harness.user(uid) for uid in range(2000, 2060)]
        for member in crowd:  # two seconds of new messages at Telegram's pace
            member.send("/start")
        await press(worker, card, "yes")
        welcomed = sum(bool(member.bot_messages) for member in crowd)
        assert welcomed < len(crowd) / 2, "the tap waited behind the crowd"
        for member in crowd:
            await member.wait_for(lambda u: bool(u.bot_messages))
