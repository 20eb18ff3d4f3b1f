"""The sandbox answers like Telegram: checked through PTB's own Bot, over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import ExtBot

from bot.local import SANDBOX_TOKEN
from bot.retry import RetryingLimiter, retry_after_seconds
from bot.sandbox import Sandbox, SandboxServer


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[Sandbox, Bot]]:
    box = Sandbox(SANDBOX_TOKEN)
    async with SandboxServer(box) as server:
        bot = Bot(SANDBOX_TOKEN, base_url=server.base_url, base_file_url=server.base_file_url)
        async with bot:
            yield box, bot


def keyboard(data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data=data)]])


async def test_get_me_and_a_message_the_user_reads(sandbox: tuple[Sandbox, Bot]) -> None:
    box, bot = sandbox
    assert bot.username == "labelbot_sandbox_bot"
    user = box.user(5, "Ann", started=True)
    sent = await bot.send_message(
        5, "<b>Hi</b> &amp; welcome", parse_mode="HTML", reply_markup=keyboard("x")
    )
    assert sent.text == "Hi & welcome"
    assert user.last is not None and user.last.shown == "Hi & welcome"
    assert user.last.buttons == [["Go"]]


async def test_updates_are_long_polled_and_confirmed_by_offset(
    sandbox: tuple[Sandbox, Bot],
) -> None:
    box, bot = sandbox
    user = box.user(5)
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    user.send("/start")
    (update,) = await asyncio.wait_for(poll, 2)
    assert update.message.text == "/start"
    assert update.message.entities[0].type == "bot_command"
    assert [u.update_id for u in await bot.get_updates()] == [update.update_id]
    assert await bot.get_updates(offset=update.update_id + 1) == ()


async def test_a_second_poller_ends_the_first_with_a_conflict(
    sandbox: tuple[Sandbox, Bot],
) -> None:
    _, bot = sandbox
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    async with Bot(SANDBOX_TOKEN, base_url=bot.base_url.split(SANDBOX_TOKEN)[0]) as other:
        second = asyncio.create_task(other.get_updates(timeout=1))
        with pytest.raises(Conflict):
            await asyncio.wait_for(first, 2)
        assert await second == ()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda bot: bot.send_message(5, "x", reply_markup=keyboard("d" * 65)),
            "Button_data_invalid",
        ),
        (lambda bot: bot.send_message(5, ""), "Message text is empty"),
        (lambda bot: bot.send_message(5, "x" * 4097), "Message is too long"),
        (lambda bot: bot.send_message(5, "<b>open", parse_mode="HTML"), "Can't parse entities"),
        (
            lambda bot: bot.send_message(5, "<div>x</div>", parse_mode="HTML"),
            "Can't parse entities",
        ),
        (lambda bot: bot.send_message(999, "x"), "Chat not found"),
        (lambda bot: bot.edit_message_text("x", 5, 424242), "Message to edit not found"),
        (lambda bot: bot.answer_callback_query("nope"), "Query is too old"),
        (lambda bot: bot.get_file("nope"), "Invalid file_id"),
    ],
)
async def test_bad_requests_are_refused_like_telegram(
    sandbox: tuple[Sandbox, Bot],
    call,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    box, bot = sandbox
    box.user(5, started=True)
    with pytest.raises(BadRequest, match=message):
        await call(bot)


async def test_an_unchanged_edit_is_refused(sandbox: tuple[Sandbox, Bot]) -> None:
    box, bot = sandbox
    box.user(5, started=True)
    sent = await bot.send_message(5, "same", reply_markup=keyboard("a"))
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("same", 5, sent.message_id, reply_markup=keyboard("a"))
    edited = await bot.edit_message_text("same", 5, sent.message_id, reply_markup=keyboard("b"))
    assert edited.edit_date is not None


async def test_a_wrong_token_is_unauthorized(sandbox: tuple[Sandbox, Bot]) -> None:
    _, bot = sandbox
    other = Bot("1:wrong", base_url=bot.base_url.split(SANDBOX_TOKEN)[0])
    with pytest.raises(InvalidToken):
        await other.get_me()


async def test_injected_faults_reach_ptb_as_its_errors(sandbox: tuple[Sandbox, Bot]) -> None:
    box, bot = sandbox
    box.user(5, started=True)
    box.inject(429, method="send_message", retry_after=3)
    with pytest.raises(RetryAfter) as limited:
        await bot.send_message(5, "x")
    assert retry_after_seconds(limited.value) == 3
    box.inject(502)
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(5, "x")
    box.user(6, started=True).block()
    with pytest.raises(Forbidden, match="blocked"):
        await bot.send_message(6, "x")
    assert (await bot.send_message(5, "fine")).text == "fine"


async def test_the_retrying_limiter_obeys_retry_after_and_backs_off(
    sandbox: tuple[Sandbox, Bot],
) -> None:
    box, plain = sandbox
    box.user(5, started=True)
    bot = ExtBot(
        SANDBOX_TOKEN,
        base_url=plain.base_url.split(SANDBOX_TOKEN)[0],
        rate_limiter=RetryingLimiter(backoff=0.01),
    )
    async with bot:
        box.inject(429, method="send_message", retry_after=1)
        started = asyncio.get_running_loop().time()
        sent = await bot.send_message(5, "eventually")
        assert sent.text == "eventually"
        assert asyncio.get_running_loop().time() - started >= 1.0
        assert box.calls["send_message"] == 2
        # A connection lost mid-request, or a 5xx, may have come after Telegram delivered a
        # new message: it is not sent again (the worker would see it twice); the caller is
        # told instead.
        for code in (0, 500):
            calls = box.calls["send_message"]
            box.inject(code, method="send_message")
            with pytest.raises(NetworkError):
                await bot.send_message(5, "perhaps")
            assert box.calls["send_message"] == calls + 1
        # An edit is the same however often it lands: a lost one is tried again.
        box.inject(0, method="edit_message_text")
        box.inject(500, method="edit_message_text", times=2)
        edited = await bot.edit_message_text("again", 5, sent.message_id)
        assert isinstance(edited, Message) and edited.text == "again"
        assert box.calls["edit_message_text"] == 4
        box.inject(500, method="edit_message_text", times=5)  # one try and four retries
        with pytest.raises(NetworkError):
            await bot.edit_message_text("never", 5, sent.message_id)


async def test_files_go_both_ways(sandbox: tuple[Sandbox, Bot]) -> None:
    box, bot = sandbox
    user = box.user(5)
    user.send_document("batch.csv", b"text\nhello\n", caption="name: x")
    (update,) = await bot.get_updates()
    document = update.message.document
    assert (document.file_name, update.message.caption) == ("batch.csv", "name: x")
    file = await bot.get_file(document.file_id)
    assert bytes(await file.download_as_bytearray()) == b"text\nhello\n"
    sent = await bot.send_document(5, b"a,b\n1,2\n", filename="export.csv")
    assert sent.document.file_name == "export.csv"
    assert user.last is not None and user.last.document is not None
    assert user.last.document.content == b"a,b\n1,2\n"
