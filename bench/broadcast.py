"""How well labelbot broadcasts: the rate it holds, and that each worker is told exactly once.

Two runs through the sandbox, the bot in its own process as in production: 5,000 workers at a
configured 500 messages per second, and 1,000 workers at Telegram's default 30 per second.
For each: the achieved rate as a share of the configured one (target at least 0.95),
duplicates and misses (target 0), and the bot's peak memory.

    python bench/broadcast.py [--scale 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.process import (  # noqa: E402
    labelbot_command,
    labelbot_env,
    peak_rss_mb,
    start,
    stop,
)
from bot.local import SANDBOX_TOKEN  # noqa: E402
from bot.sandbox import Sandbox, SandboxServer  # noqa: E402
from bot.sandbox.wire import TELEGRAM_LIMITS  # noqa: E402
from labeling.batch import BatchSettings  # noqa: E402
from labeling.batches import BatchService  # noqa: E402
from storage.batches import BatchStore  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.engine import Tx  # noqa: E402

ANNOUNCEMENT = "New batch"


async def prepare(database: Path, workers: int) -> int:
    def add_workers(tx: Tx) -> None:
        for i in range(workers):
            tx.execute(
                "INSERT INTO workers (id, name, created_at, last_seen_at) VALUES (?, ?, 0, 0)",
                (100_000 + i, f"Worker {i}"),
            )

    async with Database(database) as db:
        await db.migrate()
        await db.run(add_workers)
        settings = BatchSettings(name="Bench", question="Positive?", options="yes,no")
        imported = await BatchService(BatchStore(db)).import_file(
            b"text\nfine\n", "bench.csv", settings
        )
        return imported.batch_id


async def run(workers: int, rate: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "broadcast.db"
        batch_id = await prepare(database, workers)
        # Above Telegram's 30 per second (unpaid), the run measures the bot, not Telegram:
        # the sandbox's flood limits are off. At 30 per second they hold.
        sandbox = Sandbox(SANDBOX_TOKEN, limits=None if rate > 30 else TELEGRAM_LIMITS)
        # The workers wrote to the bot before: it may write to them.
        users = [sandbox.user(100_000 + i, started=True) for i in range(workers)]
        async with SandboxServer(sandbox) as server:
            env = labelbot_env(server, database, broadcast_rate=rate)
            bot = await start(labelbot_command(), env, sandbox)
            try:
                async with Database(database) as db:
                    await BatchService(BatchStore(db)).publish(batch_id)
                deadline = time.monotonic() + workers / rate * 3 + 30
                while sum(1 for u in users if u.bot_messages) < workers:
                    if time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)  # anything sent twice would arrive by now
                peak = peak_rss_mb(bot.pid)
            finally:
                await stop(bot, sandbox)
    told = [sum(ANNOUNCEMENT in m.shown for m in u.bot_messages) for u in users]
    times = sorted(m.sent_at for u in users for m in u.bot_messages if ANNOUNCEMENT in m.shown)
    achieved = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {
        "workers": workers,
        "rate": rate,
        "achieved": achieved,
        "share": achieved / rate,
        "duplicates": sum(count > 1 for count in told),
        "misses": sum(count == 0 for count in told),
        "seconds": times[-1] - times[0] if times else 0.0,
        "peak_mb": peak,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="shrink both runs (0.1: quick)")
    args = parser.parse_args()
    results = [
        await run(max(10, int(5000 * args.scale)), 500.0),
        await run(max(10, int(1000 * args.scale)), 30.0),
    ]
    print(
        f"\n{'workers':>8}{'configured/s':>14}{'achieved/s':>12}{'share':>8}"
        f"{'duplicates':>12}{'misses':>8}{'seconds':>9}{'bot peak MB':>13}"
    )
    for r in results:
        print(
            f"{r['workers']:>8.0f}{r['rate']:>14.0f}{r['achieved']:>12.1f}{r['share']:>8.3f}"
            f"{r['duplicates']:>12.0f}{r['misses']:>8.0f}{r['seconds']:>9.1f}"
            f"{r['peak_mb']:>13.1f}"
        )
    print("targets: share >= 0.95, duplicates 0, misses 0")
    share = min(r["share"] for r in results)
    duplicates = sum(r["duplicates"] for r in results)
    misses = sum(r["misses"] for r in results)
    print(f"broadcast: min_share={share:.3f} duplicates={duplicates:.0f} misses={misses:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
