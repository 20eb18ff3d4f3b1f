"""A new message whose answer from Telegram was lost is never sent again: the worker would see
it twice. Edits and callback answers land the same however often they are tried, so they are
tried again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from telegram.error import NetworkError
from telegram.ext import ExtBot

from bot.local import SANDBOX_TOKEN
from bot.retry import RetryingLimiter
from bot.sandbox import Sandbox, SandboxServer
from tests.harness import ANNOUNCEMENT, Harness, settle

BATCH = "text\nGreat phone\nBad phone\n"
NOT_SENT_AGAIN = "not sent again"
# Each loses the answer after Telegram showed the message: a dropped connection, a server
# error, a gateway error.
LOST = [(0, "after"), (500, "after"), (502, "after")]


@pytest.fixture
async def sandbox_and_bot() -> AsyncIterator[tuple[Sandbox, ExtBot[None]]]:
    sandbox = Sandbox(SANDBOX_TOKEN)
    sandbox.user(5, started=True)
    async with SandboxServer(sandbox) as server:
        bot = ExtBot(
            SANDBOX_TOKEN,
            base_url=server.base_url,
            rate_limiter=RetryingLimiter(backoff=0.01),
        )
        async with bot:
            yield sandbox, bot


@pytest.mark.parametrize(("code", "when"), LOST)
async def test_a_card_whose_answer_was_lost_is_shown_once(
    harness: Harness, caplog: pytest.LogCaptureFixture, code: int, when: str
) -> None:
    await harness.add_batch(BATCH, options="yes,no", overlap=1, gold_ratio=0)
    worker = await harness.join(41)
    before = len(worker.bot_messages)
    harness.sandbox.inject(code, method="send_message", chat_id=41, when=when)
    worker.send("/next")

    def cards() -> int:
        return sum("Great phone" in m.shown for m in worker.bot_messages[before:])

    await settle(lambda: cards() > 1 or NOT_SENT_AGAIN in caplog.text)
    assert cards() == 1
    assert harness.sandbox.calls_by_chat[("send_message", 41)] == 2  # the welcome, the card


async def test_an_announcement_whose_answer_was_lost_is_counted_unconfirmed(
    harness: Harness,
) -> None:
    lost, told = await harness.join(42), await harness.join(43)
    harness.sandbox.inject(502, method="send_message", chat_id=42, when="after")
    await harness.add_batch(BATCH, options="yes,no")
    for _ in range(500):
        if await harness.query("SELECT 1 FROM broadcasts WHERE finished_at IS NOT NULL"):
            break
        await asyncio.sleep(0.02)
    statuses = await harness.query("SELECT worker_id, status FROM deliveries ORDER BY 1")
    assert statuses == [(42, "unknown"), (43, "sent")]
    for worker in (lost, told):
        assert sum(ANNOUNCEMENT in m.shown for m in worker.bot_messages) == 1


async def test_a_send_whose_answer_came_too_late_is_not_sent_again(
    sandbox_and_bot: tuple[Sandbox, ExtBot[None]],
) -> None:
    sandbox, bot = sandbox_and_bot
    sandbox.inject(method="send_message", delay=0.5, when="after")
    with pytest.raises(NetworkError):
        await bot.send_message(5, "late", read_timeout=0.1)
    await sandbox.user(5).wait_for(lambda u: len(u.bot_messages) == 1)
    assert sandbox.calls["send_message"] == 1


async def test_an_edit_that_timed_out_is_tried_again(
    sandbox_and_bot: tuple[Sandbox, ExtBot[None]],
) -> None:
    sandbox, bot = sandbox_and_bot
    sent = await bot.send_message(5, "card")
    sandbox.inject(method="edit_message_text", delay=0.5)  # slower than the client waits
    edited = await bot.edit_message_text("next card", 5, sent.message_id, read_timeout=0.1)
    assert not isinstance(edited, bool) and edited.text == "next card"
    assert sandbox.calls["edit_message_text"] == 2


async def test_edits_and_callback_answers_whose_answers_were_lost_are_tried_again(
    harness: Harness,
) -> None:
    await harness.add_batch(BATCH, options="yes,no", overlap=1, gold_ratio=0)
    worker = await harness.join(44)
    card = await harness.first_task(worker)
    harness.sandbox.inject(502, method="edit_message_text", chat_id=44, when="after")
    harness.sandbox.inject(0, method="answer_callback_query", when="after")
    worker.press("yes", message_id=card.message_id)
    await worker.wait_for(lambda u: "Bad phone" in card.shown)
    await settle(lambda: harness.sandbox.calls["answer_callback_query"] == 2)
    # The first edit landed; the second found nothing to change, and that is fine.
    assert card.edits == 1 and len(worker.notices) == 1
    assert await harness.query("SELECT value FROM answers") == [("yes",)]
