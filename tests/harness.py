"""End-to-end helpers: a LocalBot with shortcuts for tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.local import LocalBot
from bot.sandbox import SandboxUser
from bot.sandbox.wire import Message
from labeling.batch import BatchSettings

BOSS = 500  # the coordinator of the `office` fixture
ANNOUNCEMENT = "New batch: "
TABLES = ("workers", "batches", "items", "assignments", "answers", "broadcasts", "deliveries")
# What the upkeep writes whenever its round comes (sweeps of finished items, digests of
# suspensions, typical answer times): a snapshot meant to show that an update wrote nothing
# leaves these out, or it would catch the upkeep's own work.
UPKEEP = {
    ("items", "compared"),
    ("batches", "median_ms"),
    ("worker_batches", "reported_at"),
    ("worker_batches", "peer_below"),
    ("worker_batches", "peer_guessing"),
    ("worker_batches", "peer_checks"),
    ("worker_batches", "peer_agreed"),
}


class Harness(LocalBot):
    """Tests act faster than people: flood control is lifted unless a test sets it."""

    def __init__(self, database: Path, **settings: Any) -> None:
        settings.setdefault("user_rate", 1000.0)
        settings.setdefault("user_burst", 1000)
        super().__init__(database, **settings)

    async def add_batch(
        self,
        content: str | bytes,
        filename: str = "batch.csv",
        *,
        publish: bool = True,
        **settings: Any,
    ) -> int:
        settings.setdefault("name", "Reviews")
        settings.setdefault("question", "Is this review positive?")
        raw = content.encode() if isinstance(content, str) else content
        batches = self.services.batches
        imported = await batches.import_file(raw, filename, BatchSettings(**settings))
        if publish:
            await batches.publish(imported.batch_id)
            # The announcement goes out on the notifier's clock: done before the test's
            # workers act, it can never land as their last message in place of a card.
            await self.delivered()
        return imported.batch_id

    async def snapshot(self, tables: tuple[str, ...] = TABLES) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, to show that something changed nothing; without the
        columns the upkeep writes on its own clock (UPKEEP). Taken once the bot handles no
        update: a handler still running (recording the card it just sent as the worker's live
        one) would change rows between two snapshots that should match."""
        if self.app is not None:
            await self.idle()
        taken = {}
        async with self.opened() as db:
            for table in tables:
                rows = await db.read(f"SELECT * FROM {table} ORDER BY 1")
                kept = [c for c in (rows[0].keys() if rows else []) if (table, c) not in UPKEEP]
                taken[table] = [tuple(row[column] for column in kept) for row in rows]
        return taken

    async def delivered(self, timeout: float = 10.0) -> None:
        """Waits until every announcement is sent: a snapshot taken while one is going out
        would see its deliveries change under the test."""
        deadline = asyncio.get_running_loop().time() + timeout
        while await self.query(
            "SELECT 1 FROM broadcasts WHERE finished_at IS NULL"
            " UNION ALL SELECT 1 FROM deliveries WHERE status = 'sending' LIMIT 1"
        ):
            assert asyncio.get_running_loop().time() < deadline, "a broadcast never finished"
            await asyncio.sleep(0.05)

    async def idle(self) -> None:
        """Waits until the bot handles no update: every one it took in is done."""
        assert self.app is not None
        processor = self.app.update_processor
        await settle(lambda: processor.current_concurrent_updates == 0)

    async def join(self, user_id: int, name: str | None = None) -> SandboxUser:
        """A worker who has sent /start and read the welcome."""
        worker = self.user(user_id, name)
        worker.send("/start")
        await worker.wait_for(lambda u: u.last is not None and "Welcome" in u.last.shown)
        return worker

    async def first_task(self, worker: SandboxUser) -> Message:
        """Sends /next and returns its reply, a card with buttons."""
        before = len(worker.bot_messages)
        worker.send("/next")
        await worker.wait_for(lambda u: bool(replies(u, before)))
        return replies(worker, before)[0]


def replies(user: SandboxUser, before: int) -> list[Message]:
    """The bot's messages since the user had `before` of them, announcements left out: one can
    land at any moment (Telegram's limits may have held it back), and it answers nothing."""
    return [m for m in user.bot_messages[before:] if not m.shown.startswith(ANNOUNCEMENT)]


async def settle(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Waits until a condition on shared state holds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the state lives in another component
            await asyncio.sleep(0.01)


async def say(user: SandboxUser, text: str, expect: str) -> str:
    """Sends a message and returns the bot's reply that contains `expect`."""
    before = len(user.bot_messages)
    user.send(text)
    await user.wait_for(lambda u: any(expect in m.shown for m in u.bot_messages[before:]))
    return next(m.shown for m in user.bot_messages[before:] if expect in m.shown)


async def first_card(harness: Harness, worker: SandboxUser) -> Message:
    """Sends /next and returns the card it brings."""
    return await harness.first_task(worker)


async def press(worker: SandboxUser, card: Message, label: str) -> None:
    """Taps a button under the card and waits until the bot has changed the card."""
    edits = card.edits
    worker.press(label, message_id=card.message_id)
    await worker.wait_for(lambda u: card.edits > edits)
