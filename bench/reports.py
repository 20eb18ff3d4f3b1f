"""Coordinator reports on a big batch while workers label: do they stall the labeling?

A database holds one batch of 100,000 items with a million answers from 1,000 workers. The bot
runs against the sandbox (in this process) while 20 workers label a second batch, a tap every
0.2-0.5 s each; meanwhile a coordinator sends /status, /workers and /export (answers, then
labels) on the big batch. It prints how long each command took to answer, and the workers'
taps: p50 and p99 from tap to the next card, overall and while a command was running.

    python bench/reports.py [--answers 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.sandbox import SandboxUser  # noqa: E402
from bot.sandbox.wire import Message  # noqa: E402
from labeling.batch import BatchSettings  # noqa: E402
from labeling.batches import BatchService  # noqa: E402
from storage.batches import BatchStore  # noqa: E402
from storage.db import Database  # noqa: E402
from tests.harness import Harness, first_card  # noqa: E402

BOSS = 500
WORKERS = 20
PER_WORKER = 1000  # answers each simulated past worker gave in the big batch
COMMANDS = ("/status 1", "/workers 1", "/export 1 answers", "/export 1 labels")


async def prepare(path: Path, answers: int) -> None:
    """The big batch through the real import; its answers written straight to the tables."""
    items = max(answers // 10, 1000)
    async with Database(path, synchronous="OFF") as db:
        await db.migrate()
        service = BatchService(BatchStore(db))
        content = "id,text\n" + "".join(f"i{n},item {n}\n" for n in range(items))
        settings = BatchSettings(
            name="big", question="Which?", options="a,b,c", overlap=10, gold_ratio=0
        )
        batch = await service.import_file(content.encode(), "big.csv", settings)
        await service.publish(batch.batch_id)
        live = "text\n" + "".join(f"task {n}\n" for n in range(20_000))
        small = settings.model_copy(update={"name": "live", "overlap": 1})
        await service.publish((await service.import_file(live.encode(), "l.csv", small)).batch_id)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    past = max(answers // PER_WORKER, 1)
    with conn:
        conn.executemany(
            "INSERT INTO workers (id, name, created_at, last_seen_at, notify)"
            " VALUES (?, ?, 0, 0, 0)",
            ((10_000 + w, f"past {w}") for w in range(past)),
        )
        for w in range(past):
            worker = 10_000 + w
            # Consecutive ranges: every item gets exactly `overlap` answers, from distinct workers.
            chosen = [(w * PER_WORKER + k) % items + 1 for k in range(min(PER_WORKER, items))]
            conn.executemany(
                "INSERT INTO assignments (id, item_id, batch_id, worker_id, issued_at,"
                " expires_at, status) VALUES (?, ?, 1, ?, 0, 600, 'answered')",
                ((w * PER_WORKER + k + 1, item, worker) for k, item in enumerate(chosen)),
            )
            conn.executemany(
                "INSERT INTO answers (assignment_id, item_id, batch_id, worker_id, value,"
                " duration_ms, created_at) VALUES (?, ?, 1, ?, ?, 4000, ?)",
                (
                    (w * PER_WORKER + k + 1, item, worker, "abc"[item % 3 if k % 4 else k % 3], k)
                    for k, item in enumerate(chosen)
                ),
            )
    conn.close()


async def tapper(
    worker: SandboxUser, card: Message, waits: list[tuple[float, float]], stop: asyncio.Event
) -> None:
    """Answers the card over and over (it turns into the next task), as a person would."""
    rng = random.Random(worker.user_id)
    while not stop.is_set():
        if card.find_button("a") is None:
            return
        edits, started = card.edits, time.perf_counter()
        worker.press("a", message_id=card.message_id)
        await worker.wait_for(lambda u, c=card, e=edits: c.edits > e, timeout=120)
        waits.append((started, time.perf_counter() - started))
        await asyncio.sleep(rng.uniform(0.2, 0.5))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reports.db"
        began = time.perf_counter()
        await prepare(path, args.answers)
        print(f"{args.answers:,} answers stored in {time.perf_counter() - began:.0f} s")
        async with Harness(path, coordinator_ids=str(BOSS)) as harness:
            workers = [await harness.join(1 + n) for n in range(WORKERS)]
            cards = [await first_card(harness, worker) for worker in workers]
            waits: list[tuple[float, float]] = []
            stop = asyncio.Event()
            taps = [
                asyncio.create_task(tapper(w, c, waits, stop))
                for w, c in zip(workers, cards, strict=True)
            ]
            await asyncio.sleep(3)  # labeling alone first
            boss = harness.user(BOSS)
            spans: list[tuple[str, float, float]] = []
            for command in COMMANDS:
                before = len(boss.bot_messages)
                started = time.perf_counter()
                boss.send(command)
                await boss.wait_for(lambda u, n=before: len(u.bot_messages) > n, timeout=600)
                spans.append((command, started, time.perf_counter()))
                await asyncio.sleep(1)
            stop.set()
            await asyncio.gather(*taps)
    during = [w for s, w in waits if any(a <= s <= b for _, a, b in spans)]
    every = [w for _, w in waits]
    print(f"\n{'what':<20} {'seconds':>8} {'taps':>6} {'tap p50 ms':>10} {'tap p99 ms':>10}")
    for command, start, end in spans:
        inside = [w for s, w in waits if start <= s <= end]
        p50 = statistics.median(inside) * 1000 if inside else float("nan")
        print(
            f"{command:<20} {end - start:>8.2f} {len(inside):>6} {p50:>10.0f}"
            f" {percentile(inside, 0.99) * 1000:>10.0f}"
        )
    print(
        f"{'all taps':<20} {'':>8} {len(every):>6} {statistics.median(every) * 1000:>10.0f}"
        f" {percentile(every, 0.99) * 1000:>10.0f}"
    )
    status = spans[0][2] - spans[0][1]
    slowest = max(end - start for _, start, end in spans)
    during_ms, every_ms = percentile(during, 0.99) * 1000, percentile(every, 0.99) * 1000
    figures = f"tap_p99_during_ms={during_ms:.0f} tap_p99_ms={every_ms:.0f}"
    print(f"reports: status_s={status:.2f} slowest_command_s={slowest:.2f} {figures}")


if __name__ == "__main__":
    asyncio.run(main())
