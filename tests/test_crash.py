"""Crash safety: the bot killed with SIGKILL while workers label and while it broadcasts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.load import run_load
from bench.process import labelbot_command, labelbot_env, start, stop
from bot.local import SANDBOX_TOKEN
from bot.sandbox import Sandbox, SandboxServer
from labeling.batch import BatchSettings
from labeling.batches import BatchService
from storage.batches import BatchStore
from storage.db import Database
from storage.engine import Tx


async def test_sigkill_while_labeling_loses_no_confirmed_answer_and_stores_none_twice() -> None:
    report = await run_load(workers=30, seconds=6.0, kill_at=2.5)
    assert report.restarts == 1 and report.faults > 0
    # Enough answers to mean something; a machine shared with other work confirms ~70.
    assert len(report.confirmed) > 50
    assert report.lost == 0
    assert report.duplicated == 0
    assert report.stored >= len(report.confirmed)


async def test_sigkill_mid_broadcast_resumes_and_tells_no_one_twice(tmp_path: Path) -> None:
    """Sends from the 61st worker on reach Telegram (the sandbox) but get no answer before the
    bot is killed; Telegram delivers them even so. Every worker is then checked: 'sent' means
    exactly one message in their chat, and 'unknown' (unconfirmed) is only for a send that was
    in flight at the kill."""
    database = tmp_path / "kill.db"
    workers, first = 200, 300_000

    def add_workers(tx: Tx) -> None:
        for worker_id in range(first, first + workers):
            tx.execute(
                "INSERT INTO workers (id, name, created_at, last_seen_at) VALUES (?, 'w', 0, 0)",
                (worker_id,),
            )

    async with Database(database) as db:
        await db.migrate()
        await db.run(add_workers)
        settings = BatchSettings(name="Kill", question="q?", options="yes,no")
        service = BatchService(BatchStore(db))
        imported = await service.import_file(b"text\na\n", "k.csv", settings)
    sandbox = Sandbox(SANDBOX_TOKEN)
    users = {first + i: sandbox.user(first + i, started=True) for i in range(workers)}
    killed = False
    held = sandbox.hold(
        "sendMessage", when=lambda p: not killed and (p.int("chat_id") or 0) >= first + 60
    )
    async with SandboxServer(sandbox) as server:
        env = labelbot_env(server, database, broadcast_rate=100)
        bot = await start(labelbot_command(), env, sandbox)
        async with Database(database) as db:
            await BatchService(BatchStore(db)).publish(imported.batch_id)
        await held.reached(20)
        bot.kill()
        await bot.wait()
        killed = True
        held.release()  # Telegram delivers what reached it; the bot never hears back
        sandbox.release_polls()
        await asyncio.sleep(0.2)  # requests the bot wrote before it died are read
        in_flight = {
            worker_id for worker_id in users if sandbox.calls_by_chat[("send_message", worker_id)]
        }
        bot = await start(labelbot_command(), env, sandbox)
        try:
            async with Database(database) as db:
                for _ in range(300):
                    finished = await db.read("SELECT finished_at FROM broadcasts")
                    if finished[0]["finished_at"] is not None:
                        break
                    await asyncio.sleep(0.1)
                deliveries = await db.read("SELECT worker_id, status FROM deliveries")
                status = {row["worker_id"]: row["status"] for row in deliveries}
        finally:
            await stop(bot, sandbox)
    told = {worker_id: len(user.bot_messages) for worker_id, user in users.items()}
    assert set(status) == set(users), "every worker has an outcome"
    for worker_id, outcome in status.items():
        if outcome == "sent":
            assert told[worker_id] == 1, f"{worker_id} sent, with {told[worker_id]} messages"
        else:
            assert outcome == "unknown", f"{worker_id}: {outcome}"
            assert worker_id in in_flight, f"{worker_id} unconfirmed but never sent"
            assert told[worker_id] <= 1
    # The sends held at the kill are the unconfirmed ones (with any sent whose outcome the bot
    # had not written down yet), and were not sent again.
    held_at_kill = {worker_id for worker_id in in_flight if worker_id >= first + 60}
    unconfirmed = {worker_id for worker_id, outcome in status.items() if outcome == "unknown"}
    assert held_at_kill and held_at_kill <= unconfirmed
