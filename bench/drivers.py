"""Which PostgreSQL driver for labelbot: asyncpg, psycopg 3 async, or psycopg 3 in threads.

Each runs the same answer-shaped transaction (read the assignment, insert the answer, three
counter updates, pick the next item, insert the next assignment: 7 statements), from 16
concurrent tasks on one event loop for a few seconds, in alternating rounds. Reported: changes
per second and the process's CPU per change; the event loop also has Telegram's traffic to
serve, so CPU per change matters as much as the rate.

    python -m bench.drivers [--url postgresql://...] [--seconds 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

URL = os.environ.get("LABELBOT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TASKS = 16
ITEMS = 20_000

SCHEMA = """
DROP SCHEMA IF EXISTS bench_drivers CASCADE;
CREATE SCHEMA bench_drivers;
SET search_path TO bench_drivers;
CREATE TABLE items (id BIGINT PRIMARY KEY, wanted INTEGER NOT NULL, answers INTEGER NOT NULL);
CREATE INDEX items_pool ON items (id) WHERE wanted > 0;
CREATE TABLE workers (id BIGINT PRIMARY KEY, answers INTEGER NOT NULL);
CREATE TABLE assignments (id BIGSERIAL PRIMARY KEY, item_id BIGINT, worker_id BIGINT,
    status TEXT NOT NULL);
CREATE TABLE answers (id BIGSERIAL PRIMARY KEY, assignment_id BIGINT, value TEXT);
INSERT INTO items SELECT g, 1000000, 0 FROM generate_series(1, 20000) g;
INSERT INTO workers SELECT g, 0 FROM generate_series(1, 16) g;
INSERT INTO assignments (item_id, worker_id, status) SELECT g, g, 'open'
    FROM generate_series(1, 16) g;
"""

# The transaction, in psycopg's placeholders; asyncpg's are derived from it.
STEPS = [
    "SELECT id, item_id, status FROM assignments WHERE id = %s",
    "INSERT INTO answers (assignment_id, value) VALUES (%s, 'yes')",
    "UPDATE assignments SET status = 'done' WHERE id = %s",
    "UPDATE items SET answers = answers + 1 WHERE id = %s",
    "UPDATE workers SET answers = answers + 1 WHERE id = %s",
    "SELECT id FROM items WHERE wanted > 0 AND id > %s ORDER BY id LIMIT 1",
    "INSERT INTO assignments (item_id, worker_id, status) VALUES (%s, %s, 'open') RETURNING id",
]


def asyncpg_sql(sql: str) -> str:
    count = 0
    while "%s" in sql:
        count += 1
        sql = sql.replace("%s", f"${count}", 1)
    return sql


def params(step: int, assignment: int, worker: int, item: int) -> tuple[Any, ...]:
    return {
        0: (assignment,),
        1: (assignment,),
        2: (assignment,),
        3: (item,),
        4: (worker,),
        5: (item,),
        6: (item % ITEMS + 1, worker),
    }[step]


async def psycopg_threads(seconds: float) -> int:
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(
        URL,
        min_size=TASKS,
        max_size=TASKS,
        open=True,
        kwargs={"options": "-c search_path=bench_drivers"},
    )
    pool.wait()

    def change(worker: int, assignment: int) -> int:
        with pool.connection() as conn:
            item = 0
            for step, sql in enumerate(STEPS):
                row = (
                    conn.execute(sql, params(step, assignment, worker, item)).fetchone()
                    if sql.startswith("SELECT") or "RETURNING" in sql
                    else conn.execute(sql, params(step, assignment, worker, item))
                )
                if step == 0:
                    item = row[1]  # type: ignore[index]
                if step == 6:
                    return int(row[0])  # type: ignore[index]
        raise AssertionError

    from concurrent.futures import ThreadPoolExecutor

    threads = ThreadPoolExecutor(TASKS)
    loop = asyncio.get_running_loop()

    async def one(worker: int, assignment: int) -> int:
        return await loop.run_in_executor(threads, change, worker, assignment)

    try:
        return await drive(one, seconds)
    finally:
        threads.shutdown()
        pool.close()


async def psycopg_async(seconds: float) -> int:
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(
        URL,
        min_size=TASKS,
        max_size=TASKS,
        open=False,
        kwargs={"options": "-c search_path=bench_drivers"},
    )
    await pool.open(wait=True)

    async def one(worker: int, assignment: int) -> int:
        async with pool.connection() as conn:
            item = 0
            for step, sql in enumerate(STEPS):
                cursor = await conn.execute(sql, params(step, assignment, worker, item))
                if step == 0:
                    item = (await cursor.fetchone())[1]  # type: ignore[index]
                if step == 6:
                    return int((await cursor.fetchone())[0])  # type: ignore[index]
        raise AssertionError

    try:
        return await drive(one, seconds)
    finally:
        await pool.close()


async def asyncpg_driver(seconds: float) -> int:
    import asyncpg

    pool = await asyncpg.create_pool(
        URL, min_size=TASKS, max_size=TASKS, server_settings={"search_path": "bench_drivers"}
    )
    steps = [asyncpg_sql(sql) for sql in STEPS]

    async def one(worker: int, assignment: int) -> int:
        async with pool.acquire() as conn, conn.transaction():
            item = 0
            for step, sql in enumerate(steps):
                args = params(step, assignment, worker, item)
                if step == 0:
                    item = (await conn.fetchrow(sql, *args))["item_id"]
                elif step in (5, 6):
                    value = await conn.fetchval(sql, *args)
                    if step == 6:
                        return int(value)
                else:
                    await conn.execute(sql, *args)
        raise AssertionError

    try:
        return await drive(one, seconds)
    finally:
        await pool.close()


async def drive(one: Callable[[int, int], Awaitable[int]], seconds: float) -> int:
    deadline = time.perf_counter() + seconds
    done = 0

    async def worker(number: int) -> None:
        nonlocal done
        assignment = number
        while time.perf_counter() < deadline:
            assignment = await one(number, assignment)
            done += 1

    await asyncio.gather(*(worker(n) for n in range(1, TASKS + 1)))
    return done


DRIVERS: dict[str, Callable[[float], Awaitable[int]]] = {
    "asyncpg": asyncpg_driver,
    "psycopg async": psycopg_async,
    "psycopg threads": psycopg_threads,
}


async def main(seconds: float, rounds: int) -> None:
    import psycopg

    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(SCHEMA.encode())
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in DRIVERS}
    print(f"{'round':>5} {'driver':<16} {'changes/s':>10} {'cpu ms/change':>14}")
    for round_ in range(1, rounds + 1):
        for name, run in DRIVERS.items():
            wall, cpu = time.perf_counter(), time.process_time()
            done = await run(seconds)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            results[name].append((done / wall, cpu / done * 1000))
            print(f"{round_:>5} {name:<16} {done / wall:>10.0f} {cpu / done * 1000:>14.3f}")
    print()
    medians = {
        name: (statistics.median(r for r, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in results.items()
    }
    for name, (rate, cpu) in medians.items():
        print(f"median {name:<16} {rate:>10.0f} {cpu:>14.3f}")
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute("DROP SCHEMA bench_drivers CASCADE")
    line = " ".join(
        f"{name.replace(' ', '_')}_per_s={rate:.0f} {name.replace(' ', '_')}_cpu_ms={cpu:.3f}"
        for name, (rate, cpu) in medians.items()
    )
    print(f"drivers: {line}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=URL)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    URL = args.url
    asyncio.run(main(args.seconds, args.rounds))
