"""Webhook mode: PTB's webhook server refuses any request without Telegram's secret, and the
bot works on the updates the sandbox posts to it, as Telegram would."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest

from bot.app import WEBHOOK_PATH, Webhook
from bot.settings import SettingsError, load_settings
from tests.harness import Harness, press
from tests.test_sandbox_webhook import dead_url

SECRET = "s3cret-webhook-token_0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def update(update_id: int, text: str) -> dict[str, object]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "text": text,
            "chat": {"id": 9, "type": "private", "first_name": "Ann"},
            "from": {"id": 9, "is_bot": False, "first_name": "Ann"},
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}],
        },
    }


async def test_the_webhook_takes_updates_only_with_the_secret(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "hook.db")
    port = free_port()
    await harness.server.start()
    await harness.start_bot(
        webhook=Webhook("127.0.0.1", port, "https://bot.example/telegram", SECRET)
    )
    try:
        webhook = harness.sandbox.webhook
        assert webhook is not None
        assert (webhook.url, webhook.secret) == ("https://bot.example/telegram", SECRET)
        ann = harness.sandbox.user(9, "Ann", started=True)  # her updates come by webhook
        url = f"http://127.0.0.1:{port}/{WEBHOOK_PATH}"
        async with httpx.AsyncClient() as client:
            body = json.dumps(update(1, "/help"))
            headers = {"Content-Type": "application/json"}
            refused = await client.post(url, content=body, headers=headers)
            wrong = await client.post(
                url, content=body, headers={**headers, "X-Telegram-Bot-Api-Secret-Token": "guess"}
            )
            assert (refused.status_code, wrong.status_code) == (403, 403)
            assert not ann.bot_messages
            accepted = await client.post(
                url, content=body, headers={**headers, "X-Telegram-Bot-Api-Secret-Token": SECRET}
            )
            assert accepted.status_code == 200
        await ann.wait_for(lambda u: u.last is not None and "/stats" in u.last.shown)
    finally:
        await harness.stop_bot()
        await harness.server.stop()


async def test_the_bot_works_on_the_updates_the_sandbox_posts(tmp_path: Path) -> None:
    harness = Harness(tmp_path / "posted.db")
    port = free_port()
    await harness.server.start()
    await harness.start_bot(
        webhook=Webhook("127.0.0.1", port, "https://bot.example/telegram", SECRET)
    )
    try:
        await harness.add_batch("text\nGreat phone\n", options="yes,no", overlap=1)
        # Two replicas behind the webhook's URL, one of them down: its turns go to the bot.
        bot = f"http://127.0.0.1:{port}/{WEBHOOK_PATH}"
        harness.sandbox.route_webhook([dead_url(), bot])
        worker = await harness.join(9, "Ann")
        card = await harness.first_task(worker)
        await press(worker, card, "yes")
        assert await harness.query("SELECT value FROM answers") == [("yes",)]
        assert harness.sandbox.calls["get_updates"] == 0
        assert len(harness.sandbox.updates) == 0
    finally:
        await harness.stop_bot()
        await harness.server.stop()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"webhook_url": "https://bot.example/t"}, "WEBHOOK_SECRET must be set"),
        (
            {"webhook_url": "https://bot.example/t", "webhook_secret": "short"},
            "WEBHOOK_SECRET must be set",
        ),
        ({"webhook_url": "http://bot.example/t", "webhook_secret": SECRET}, "https://"),
    ],
)
def test_webhook_settings_are_checked(settings: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(**settings)
