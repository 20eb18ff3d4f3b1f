"""The bot token never shows: not in logs, errors, messages to users, nor exports."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.local import SANDBOX_TOKEN
from bot.logs import RedactTokens, setup_logging
from bot.settings import load_settings
from tests.harness import Harness

SECRET_PART = SANDBOX_TOKEN.split(":", 1)[1]


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    setup_logging("DEBUG", SANDBOX_TOKEN, stream)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


async def test_a_whole_run_with_faults_never_shows_the_token(
    tmp_path: Path, captured_logs: io.StringIO
) -> None:
    seen: list[str] = []
    async with Harness(tmp_path / "s.db", coordinator_ids="500") as h:
        await h.add_batch("text\nfirst\nsecond\n", options="yes,no", overlap=1, gold_ratio=0)
        worker = await h.join(1)
        h.sandbox.inject(500, method="edit_message_text")
        h.sandbox.inject(429, method="answer_callback_query", retry_after=1)
        await h.first_task(worker)
        card = worker.last
        assert card is not None
        worker.press("yes", message_id=card.message_id)
        await worker.wait_for(lambda u: card.edits == 1, 15)
        worker.tap(card, "a:999999:0")  # a forged tap
        h.sandbox.inject(
            400,
            method="send_message",
            times=3,
            description=f"Bad Request: boom for bot{SANDBOX_TOKEN}",
        )
        worker.send("/stats")  # fails: the handler's error goes to the log
        boss = h.user(500)
        boss.send("/export 1 answers")
        await boss.wait_for(lambda u: any(m.document for m in u.bot_messages), 15)
        for user_id, chat in h.sandbox.chats.items():
            for message in chat.messages.values():
                seen.append(f"{user_id}: {message.shown}")
                if message.document is not None:
                    seen.append(message.document.content.decode("utf-8", "replace"))
            seen.extend(notice.text for notice in chat.notices)
    logs = captured_logs.getvalue()
    assert "handler failed" in logs  # the failure was logged...
    assert "<token>" in logs  # ...with the token masked where it appeared
    for text in (logs, *seen):
        assert SANDBOX_TOKEN not in text and SECRET_PART not in text


def test_settings_and_their_errors_hide_the_token() -> None:
    settings = load_settings(telegram_bot_token=SANDBOX_TOKEN)
    assert SECRET_PART not in repr(settings) and SECRET_PART not in str(settings)
    record = logging.LogRecord(
        "x",
        logging.ERROR,
        __file__,
        1,
        "GET https://api.telegram.org/bot%s/getMe",
        (SANDBOX_TOKEN,),
        None,
    )
    RedactTokens().filter(record)
    assert record.getMessage() == "GET https://api.telegram.org/bot<token>/getMe"
