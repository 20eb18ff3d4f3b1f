"""An answer and the next pick, as a batch and a worker's history grow (P4).

For batches of 1k, 100k and 1M items (one in 20 gold), three workers with no history, with 10k
and 50k answers, and with 50k skips (capped at half the batch) each answer 300 tasks in a row
through WorkService: each answer, its bookkeeping and the next pick are one transaction. It
prints p50 and p99 of that call per case (900 answers); the target is p99 <= 2 ms on SQLite
everywhere, the largest p99 at most twice the smallest.

    python -m bench.pick [--sizes 1000,100000,1000000] [--answers 300] [--database-url URL]

With --database-url (PostgreSQL), each size runs in a new schema of that database, dropped
afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labeling.batch import BatchSettings  # noqa: E402
from labeling.batches import BatchService  # noqa: E402
from labeling.models import Submission, Task, WorkerProfile  # noqa: E402
from labeling.work import WorkService  # noqa: E402
from storage import open_engine  # noqa: E402
from storage.batches import BatchStore  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.engine import Engine, Tx  # noqa: E402
from storage.exams import ExamStore  # noqa: E402
from storage.tasks import TaskStore  # noqa: E402
from storage.workers import WorkerStore  # noqa: E402

GOLD_EVERY = 20
HISTORIES = (
    ("none", 0, "answered"),
    ("10k answers", 10_000, "answered"),
    ("50k answers", 50_000, "answered"),
    ("50k skips", 50_000, "skipped"),
)
OPTIONS = ("a", "b")
WARM_UP = 20
# Workers per history, one after the other: a p99 over 900 answers is the 9th slowest, not
# the 3rd, and one hiccup of the machine no longer decides a case.
WORKERS = 3
HISTORY_PART = 2_000


def batch_file(items: int) -> bytes:
    rows = (
        f"i{n},item {n},{OPTIONS[n % 2] if n % GOLD_EVERY == 0 else ''}\n" for n in range(items)
    )
    return ("id,text,gold\n" + "".join(rows)).encode()


def history(batch_id: int, worker_id: int, start: int, count: int, status: str) -> object:
    """Writes part of a worker's past straight to the tables, through the same triggers as
    live answers: `count` of the batch's items from its `start`-th answered (gold rightly) or
    skipped. Set-based, so that PostgreSQL's setup takes seconds, not a round trip per row;
    in parts, since PostgreSQL updating one row (the worker's counters) 50k times in one
    transaction walks an ever longer chain of its versions."""
    skip = 0 if status == "answered" else 1

    def change(tx: Tx) -> None:
        bounds = tx.row(
            "SELECT MIN(id) AS lo, MAX(id) AS hi FROM (SELECT id FROM items WHERE batch_id = :b"
            " ORDER BY id LIMIT :n OFFSET :o) part",
            {"b": batch_id, "n": count, "o": start},
        )
        assert bounds is not None
        part = {"b": batch_id, "w": worker_id, "lo": bounds["lo"], "hi": bounds["hi"]}
        # Closed as they are inserted: a worker holds one open task at a time. Gold given
        # back would be dodging, so gold is answered in both histories.
        tx.execute(
            "INSERT INTO assignments (item_id, batch_id, worker_id, issued_at, expires_at, kind,"
            " status, closed_at)"
            " SELECT id, batch_id, :w, 0, 1e12,"
            "  CASE WHEN gold IS NULL THEN 'task' ELSE 'gold' END,"
            f"  CASE WHEN gold IS NULL AND {skip} = 1 THEN 'skipped' ELSE 'answered' END, 0"
            " FROM items WHERE batch_id = :b AND id BETWEEN :lo AND :hi ORDER BY id",
            part,
        )
        tx.execute(
            "INSERT INTO answers (assignment_id, item_id, batch_id, worker_id, value,"
            " duration_ms, created_at, correct, fast)"
            " SELECT a.id, a.item_id, a.batch_id, a.worker_id, COALESCE(i.gold, 'a'), 5000, 0,"
            "  CASE WHEN i.gold IS NULL THEN NULL ELSE 1 END, 0"
            " FROM assignments a JOIN items i ON i.id = a.item_id"
            " WHERE a.worker_id = :w AND a.status = 'answered' AND a.batch_id = :b"
            " AND a.item_id BETWEEN :lo AND :hi ORDER BY a.id",
            part,
        )
        tx.execute(
            "UPDATE items SET wanted = wanted + 1 WHERE id IN (SELECT item_id FROM assignments"
            " WHERE worker_id = :w AND status = 'skipped' AND batch_id = :b"
            " AND item_id BETWEEN :lo AND :hi)",
            part,
        )

    return change


async def measure(
    work: WorkService, worker_id: int, answers: int, gold: dict[int, str]
) -> list[float]:
    """Times `answers` answers, after WARM_UP unmeasured ones that bring the worker's rows
    and the batch's index pages into the cache."""
    shown = await work.next_task(worker_id)
    timings = []
    for _ in range(answers + WARM_UP):
        assert isinstance(shown, Task), f"no task for worker {worker_id}: {shown}"
        option = OPTIONS.index(gold.get(shown.item_id, "a"))
        started = time.perf_counter()
        outcome = await work.answer(Submission(shown.assignment_id, worker_id, option=option))
        timings.append((time.perf_counter() - started) * 1000)
        shown = outcome.next_task
    return timings[WARM_UP:]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@asynccontextmanager
async def engine(folder: Path, items: int, url: str | None) -> AsyncIterator[Engine]:
    """A new, empty database: a SQLite file in `folder`, or a new schema at `url`."""
    if url is None:
        async with Database(folder / f"pick{items}.db", synchronous="OFF") as db:
            yield db
        return
    import psycopg

    schema = f"pick_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            options = quote(f"-csearch_path={schema}")
            db = open_engine(folder, f"{url}{'&' if '?' in url else '?'}options={options}")
            async with db:
                yield db
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


async def settle(db: Engine) -> None:
    """Brings the setup's bulk writes to where a running bot's would long be: checkpointed
    (SQLite), or vacuumed and analysed (PostgreSQL), before the clock starts; the measured
    answers pay for their own."""
    if isinstance(db, Database):
        with closing(sqlite3.connect(db.path)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    import psycopg

    with psycopg.connect(db.url, autocommit=True) as conn:  # type: ignore[attr-defined]
        conn.execute("VACUUM ANALYZE")


async def case(
    folder: Path, items: int, answers: int, url: str | None
) -> list[tuple[str, int, float, float]]:
    rows = []
    async with engine(folder, items, url) as db:
        await db.migrate()
        batches = BatchService(BatchStore(db))
        settings = BatchSettings(
            name=f"b{items}",
            question="Which?",
            options=",".join(OPTIONS),
            overlap=4 * WORKERS + 1,  # room for every worker on the same first items
            gold_ratio=1 / GOLD_EVERY,
        )
        started = time.perf_counter()
        imported = await batches.import_file(batch_file(items), "b.csv", settings, max_items=items)
        await batches.publish(imported.batch_id)
        print(f"# {items:,} items imported in {time.perf_counter() - started:.1f} s", flush=True)
        gold = {
            row["id"]: row["gold"]
            for row in await db.read("SELECT id, gold FROM items WHERE gold IS NOT NULL")
        }
        work = WorkService(WorkerStore(db), TaskStore(db), ExamStore(db), assignment_ttl=600.0)
        for number, (name, count, status) in enumerate(HISTORIES, start=1):
            count = min(count, items // 2)
            workers = [1000 + 10 * number + n for n in range(WORKERS)]
            for worker_id in workers:
                await work.register(WorkerProfile(worker_id, name))
                for start in range(0, count, HISTORY_PART):
                    part = min(HISTORY_PART, count - start)
                    await db.run(history(imported.batch_id, worker_id, start, part, status))  # type: ignore[arg-type]
            await settle(db)
            timings = []
            for worker_id in workers:
                timings += await measure(work, worker_id, answers, gold)
            rows.append(
                (
                    f"{name} ({count:,})",
                    items,
                    statistics.median(timings),
                    percentile(timings, 0.99),
                )
            )
            print(
                f"{items:>9,} {rows[-1][0]:<22} {rows[-1][2]:>8.2f} {rows[-1][3]:>8.2f}", flush=True
            )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--answers", type=int, default=300)
    parser.add_argument("--database-url", help="PostgreSQL (default: SQLite files)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"{'items':>9} {'history':<22} {'p50 ms':>8} {'p99 ms':>8}")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for items in sizes:
            results += await case(Path(folder), items, args.answers, args.database_url)
    p99s = [p99 for *_, p99 in results]
    worst, flat = max(p99s), max(p99s) / min(p99s)
    name = "postgresql" if args.database_url else "sqlite"
    print(f"pick: max_p99_ms={worst:.2f} flat_ratio={flat:.2f} cases={len(results)} engine={name}")


if __name__ == "__main__":
    asyncio.run(main())
