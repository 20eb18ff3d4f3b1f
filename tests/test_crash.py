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
from tests.harness import settle


async def test_sigkill_while_labeling_loses_no_confirmed_answer_and_stores_none_twice() -> None:
    report = await run_load(workers=30, seconds=6.0, kill_at=2.5)
    assert report.restarts == 1 and report.faults > 0
    assert len(report.confirmed) > 100
    assert report.lost == 0
    assert report.duplicated == 0
    assert report.stored >= len(report.confirmed)


async def test_sigkill_mid_broadcast_resumes_and_tells_no_one_twice(tmp_path: Path) -> None:
    database = tmp_path / "kill.db"
    workers = 200
    async with Database(database) as db:
        await db.migrate()
        async with db.atomic() as conn:
            await conn.executemany(
                "INSERT INTO workers (id, name, created_at, last_seen_at) VALUES (?, 'w', 0, 0)",
                [(300_000 + i,) for i in range(workers)],
            )
        settings = BatchSettings(name="Kill", question="q?", options="yes,no")
        service = BatchService(BatchStore(db))
        imported = await service.import_file(b"text\na\n", "k.csv", settings)
    sandbox = Sandbox(SANDBOX_TOKEN)
    users = [sandbox.user(300_000 + i, started=True) for i in range(workers)]
    async with SandboxServer(sandbox) as server:
        env = labelbot_env(server, database, broadcast_rate=100)
        bot = await start(labelbot_command(), env, sandbox)
        async with Database(database) as db:
            await BatchService(BatchStore(db)).publish(imported.batch_id)
        await settle(lambda: sum(bool(u.bot_messages) for u in users) >= 60, 20)
        bot.kill()
        await bot.wait()
        sandbox.release_polls()
        told_at_kill = sum(bool(u.bot_messages) for u in users)
        assert told_at_kill < workers
        bot = await start(labelbot_command(), env, sandbox)
        try:
            async with Database(database) as db:
                for _ in range(300):
                    if await db.fetchval("SELECT finished_at FROM broadcasts") is not None:
                        break
                    await asyncio.sleep(0.1)
                counts = dict(
                    await db.fetchall("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
                )
        finally:
            await stop(bot, sandbox)
    told = [len(u.bot_messages) for u in users]
    assert max(told) == 1, "nobody is told twice"
    # In flight at the kill: marked 'unknown' and not sent again; everyone else was told.
    assert told.count(0) <= counts.get("unknown", 0)
    assert counts.get("sent", 0) + counts.get("unknown", 0) == workers
