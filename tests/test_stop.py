"""A stop ends within seconds whatever the bot was doing, and loses none of its work: a
broadcast cut off mid-send is resumed at the next start, with no one told twice."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from telegram.error import RetryAfter

from bench.process import labelbot_command, labelbot_env, start
from bot.local import SANDBOX_TOKEN
from bot.notifier import Notifier
from bot.sandbox import Sandbox, SandboxServer
from labeling.batch import BatchSettings
from labeling.batches import BatchService
from storage.batches import BatchStore
from storage.broadcasts import BroadcastStore
from storage.db import Database
from storage.engine import Engine, Tx
from tests.harness import ANNOUNCEMENT, Harness, settle

# Seconds a stop may take, however busy the bot was: sends under way get up to
# bot.notifier.STOP_GRACE (2 s) to land; a held send would otherwise wait out PTB's 5 s timeout.
PROMPT = 4.0
BATCH = "text\nGreat phone\nBad phone\n"
WORKERS = (61, 62, 63, 64)
HELD = WORKERS[0]
OWNER = 90


def told(harness: Harness, worker_id: int) -> int:
    return sum(ANNOUNCEMENT in m.shown for m in harness.user(worker_id).bot_messages)


async def test_a_stop_mid_broadcast_is_prompt_and_the_next_start_tells_the_rest_once(
    harness: Harness,
) -> None:
    """The first send waits on Telegram (the sandbox holds it) when the bot is stopped: the
    stop does not wait for it, the workers not yet told are told after the restart, and the
    one whose send was cut off is counted unconfirmed and not sent to again."""
    for worker_id in WORKERS:
        await harness.join(worker_id)
    harness.overrides["broadcast_rate"] = 2  # slow enough that the stop finds workers untold
    await harness.stop_bot()
    await harness.start_bot(notify_every=0.1)
    hold = harness.sandbox.hold("sendMessage", lambda p: p.int("chat_id") == HELD)
    batch = await harness.add_batch(BATCH, options="yes,no", publish=False)
    await harness.services.batches.publish(batch)
    await hold.reached()

    began = time.monotonic()
    await harness.stop_bot()
    assert time.monotonic() - began < PROMPT

    hold.release()  # Telegram carries out what reached it; the stopped bot never hears back
    stopped = dict(await harness.query("SELECT worker_id, status FROM deliveries"))
    assert stopped.get(HELD) == "unknown", "cut off mid-send: perhaps told"
    assert len(stopped) < len(WORKERS), "the stop came before everyone was told"
    await harness.start_bot(notify_every=0.1)
    await harness.delivered()
    statuses = dict(await harness.query("SELECT worker_id, status FROM deliveries"))
    assert statuses == {HELD: "unknown"} | {w: "sent" for w in WORKERS if w != HELD}
    assert {w: told(harness, w) for w in WORKERS} == dict.fromkeys(WORKERS, 1)


async def test_a_stop_while_a_reply_waits_out_a_flood_limit_is_prompt(harness: Harness) -> None:
    """Telegram asks the bot to wait half a minute before it writes to this worker again: the
    stop does not wait that long for the handler whose reply is held back."""
    harness.sandbox.inject(429, method="send_message", chat_id=71, retry_after=30, times=5)
    harness.user(71).send("/start")
    await settle(lambda: harness.sandbox.calls_by_chat[("send_message", 71)] >= 1)
    began = time.monotonic()
    await harness.stop_bot()
    assert time.monotonic() - began < PROMPT
    assert not harness.user(71).bot_messages


class ReportThatWindsDown:
    """A bot whose sends to workers go at once, and whose progress report to the coordinator
    hangs until it is cancelled; the stop lands while the notifier waits for that report to
    wind down after the broadcast ended."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.notifier: asyncio.Task[None] | None = None

    async def send_message(self, chat_id: int, text: str, **kwargs: Any) -> SimpleNamespace:
        if chat_id == OWNER:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                assert self.notifier is not None
                self.notifier.cancel()  # the stop
                raise
        self.sent.append(chat_id)
        return SimpleNamespace(message_id=len(self.sent))

    async def edit_message_text(self, *args: Any, **kwargs: Any) -> None:
        pass


async def test_a_stop_while_the_notifier_winds_a_broadcast_down_is_not_lost(
    engine: Engine,
) -> None:
    def given(tx: Tx) -> None:
        tx.execute("INSERT INTO workers (id, name, created_at, last_seen_at) VALUES (7, 'w', 0, 0)")
        tx.execute(
            "INSERT INTO broadcasts (text, created_at, created_by) VALUES ('Hello', 0, ?)",
            (OWNER,),
        )

    await engine.run(given)
    bot = ReportThatWindsDown()
    notifier = Notifier(bot, BroadcastStore(engine), rate=100)  # type: ignore[arg-type]
    bot.notifier = task = asyncio.create_task(notifier.run(every=0.05))
    done, _ = await asyncio.wait([task], timeout=PROMPT)
    assert task in done and task.cancelled(), "the notifier went on after it was stopped"
    assert bot.sent == [7]
    assert [tuple(row) for row in await engine.read("SELECT status FROM deliveries")] == [("sent",)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_labelbot_run_stops_promptly_on_a_signal_mid_broadcast(
    tmp_path: Path, sig: signal.Signals
) -> None:
    database = tmp_path / "run.db"
    async with Database(database) as db:
        await db.migrate()

        def add_workers(tx: Tx) -> None:
            for worker_id in WORKERS:
                tx.execute(
                    "INSERT INTO workers (id, name, created_at, last_seen_at)"
                    " VALUES (?, 'w', 0, 0)",
                    (worker_id,),
                )

        await db.run(add_workers)
        settings = BatchSettings(name="Stop", question="q?", options="yes,no")
        imported = await BatchService(BatchStore(db)).import_file(b"text\na\n", "s.csv", settings)
    sandbox = Sandbox(SANDBOX_TOKEN)
    for worker_id in WORKERS:
        sandbox.user(worker_id, started=True)
    hold = sandbox.hold("sendMessage", lambda p: p.int("chat_id") == HELD)
    async with SandboxServer(sandbox) as server:
        env = labelbot_env(server, database, broadcast_rate=2)
        bot = await start(labelbot_command(), env, sandbox)
        try:
            async with Database(database) as db:
                await BatchService(BatchStore(db)).publish(imported.batch_id)
            await hold.reached(20)
            began = time.monotonic()
            bot.send_signal(sig)
            await asyncio.wait_for(bot.wait(), 30)
            took = time.monotonic() - began
        finally:
            if bot.returncode is None:
                bot.kill()
                await bot.wait()
            hold.release()
    print(f"labelbot run stopped in {took:.2f}s")
    assert took < PROMPT, f"labelbot run took {took:.1f}s to stop"
    async with Database(database) as db:
        statuses = {
            row["worker_id"]: row["status"]
            for row in await db.read("SELECT worker_id, status FROM deliveries")
        }
    assert statuses.get(HELD) in ("sending", "unknown")
    assert len([s for s in statuses.values() if s == "sent"]) < len(WORKERS) - 1


class Refuses:
    """A bot that Telegram answers with 429 (a stopping limiter does not wait it out)."""

    async def send_message(self, chat_id: int, text: str, **kwargs: Any) -> None:
        raise RetryAfter(30)


async def test_a_notice_refused_with_a_flood_limit_is_queued_again_not_failed(
    engine: Engine,
) -> None:
    await engine.run(
        lambda tx: tx.execute(
            "INSERT INTO notices (coordinator_id, kind, text, created_at)"
            " VALUES (?, 'completed', 'Done', 0)",
            (OWNER,),
        )
    )
    notifier = Notifier(Refuses(), BroadcastStore(engine), rate=100)  # type: ignore[arg-type]
    await notifier.send_pending()
    assert [tuple(row) for row in await engine.read("SELECT status FROM notices")] == [("queued",)]
