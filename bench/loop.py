"""How fast workers can label: labelbot against a bare PTB bot, through the same sandbox.

N simulated workers (default 32) tap through tasks as fast as the bot lets them. The sandbox
and the workers run in this process; each bot runs in its own process, as it would in
production. For each bot: answers per second, and p50/p99 from a tap to the next task shown.

    python bench/loop.py [--workers 32] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.process import (  # noqa: E402
    cpu_seconds,
    labelbot_command,
    labelbot_env,
    peak_rss_mb,
    start,
    stop,
)
from bot.local import SANDBOX_TOKEN  # noqa: E402
from bot.sandbox import Sandbox, SandboxServer, SandboxUser  # noqa: E402
from labeling.batch import BatchSettings  # noqa: E402
from labeling.batches import BatchService  # noqa: E402
from storage.batches import BatchStore  # noqa: E402
from storage.db import Database  # noqa: E402


@dataclass
class Run:
    name: str
    answers: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    bot_cpu: float = 0.0  # CPU seconds the bot used per wall second of measurement
    sandbox_cpu: float = 0.0  # the same for this process: the sandbox and the workers

    @property
    def rate(self) -> float:
        return self.answers / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def tap_loop(user: SandboxUser, run: Run, window: tuple[float, float]) -> None:
    """Taps the first option on the worker's card, waits for the card to change, repeats."""
    start, end = window
    card = next(m for m in reversed(user.bot_messages) if m.find_button("yes"))
    while time.monotonic() < end:
        edits = card.edits
        tapped = time.monotonic()
        user.press("yes", message_id=card.message_id)
        await user.wait_for(lambda u, e=edits: card.edits > e, timeout=30)
        done = time.monotonic()
        if start <= tapped and done <= end:
            run.answers += 1
            run.latencies.append(done - tapped)


async def measure(
    name: str,
    command: list[str],
    env: dict[str, str],
    workers: int,
    seconds: float,
    warmup: float,
    sandbox: Sandbox,
) -> Run:
    process = await start(command, env, sandbox)
    run = Run(name)
    try:
        users = [sandbox.user(100_000 + index) for index in range(workers)]
        for user in users:
            user.send("/start")
        if name == "labelbot":
            await asyncio.gather(*(u.wait_for(lambda u: u.last is not None, 30) for u in users))
            for user in users:
                user.send("/next")
        await asyncio.gather(
            *(
                u.wait_for(lambda u: any(m.find_button("yes") for m in u.bot_messages), 30)
                for u in users
            )
        )
        begin = time.monotonic() + warmup
        window = (begin, begin + seconds)
        loops = asyncio.gather(*(tap_loop(user, run, window) for user in users))
        await asyncio.sleep(warmup)
        bot_cpu, own_cpu = cpu_seconds(process.pid), time.process_time()
        await asyncio.sleep(seconds)
        run.bot_cpu = (cpu_seconds(process.pid) - bot_cpu) / seconds
        run.sandbox_cpu = (time.process_time() - own_cpu) / seconds
        await loops
        run.seconds = seconds
        run.peak_rss_mb = peak_rss_mb(process.pid)
    finally:
        await stop(process, sandbox)
    return run


async def prepare_database(path: Path, items: int) -> int:
    content = ("text\n" + "".join(f"Review number {i}: fine\n" for i in range(items))).encode()
    settings = BatchSettings(
        name="Bench", question="Is this review positive?", options="yes,no", overlap=1
    )
    async with Database(path) as db:
        await db.migrate()
        service = BatchService(BatchStore(db))
        imported = await service.import_file(content, "bench.csv", settings)
        await service.publish(imported.batch_id)
        return imported.batch_id


async def phase(name: str, workers: int, seconds: float, warmup: float, database: Path) -> Run:
    # This measures the bot, not Telegram: the sandbox's flood limits are off.
    sandbox = Sandbox(SANDBOX_TOKEN, limits=None)
    async with SandboxServer(sandbox) as server:
        # Simulated workers tap as fast as the bot answers: flood control is lifted.
        env = labelbot_env(server, database, user_rate=1000, user_burst=1000)
        command = labelbot_command()
        if name == "bare":
            bare = ROOT / "bench" / "bare_bot.py"
            command = [
                sys.executable,
                str(bare),
                "--token",
                SANDBOX_TOKEN,
                "--base-url",
                server.base_url,
            ]
        run = await measure(name, command, env, workers, seconds, warmup, sandbox)
        calls = sum(v for k, v in sandbox.calls.items() if k != "get_updates")
        print(
            f"  {name}: {run.answers} answers, {calls} Bot API calls besides getUpdates",
            file=sys.stderr,
        )
        return run


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "bench.db"
        await prepare_database(database, items=max(20_000, args.workers * 2_000))
        bare = await phase("bare", args.workers, args.seconds, args.warmup, database)
        labelbot = await phase("labelbot", args.workers, args.seconds, args.warmup, database)
        async with Database(database) as db:
            stored = await db.fetchval("SELECT COUNT(*) FROM answers")
    print(f"\nloop benchmark: {args.workers} workers, {args.seconds:g}s measured per bot")
    print(
        f"{'bot':<10}{'answers/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'peak MB':>9}"
        f"{'bot CPU':>9}{'sandbox CPU':>13}"
    )
    for run in (bare, labelbot):
        print(
            f"{run.name:<10}{run.rate:>11.1f}{run.percentile(0.5):>9.1f}"
            f"{run.percentile(0.99):>9.1f}{run.peak_rss_mb:>9.1f}"
            f"{run.bot_cpu:>9.0%}{run.sandbox_cpu:>13.0%}"
        )
    print(f"labelbot / bare ceiling: {labelbot.rate / bare.rate:.2f} (target >= 0.6)")
    print(f"answers stored by labelbot: {stored} (all taps, warm-up included)")
    print(
        f"mean latency: labelbot {statistics.fmean(labelbot.latencies) * 1000:.1f} ms,"
        f" bare {statistics.fmean(bare.latencies) * 1000:.1f} ms"
    )
    ratio, p99 = labelbot.rate / bare.rate, labelbot.percentile(0.99)
    print(f"loop: ratio={ratio:.2f} labelbot_per_s={labelbot.rate:.1f} p99_ms={p99:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
