"""Replicas (P5): one bot on SQLite, one and two on PostgreSQL behind one webhook, in one run.

The same simulated workers label for the same time against each setup (Telegram's faults
injected, no kill). Printed per setup: answers confirmed per second, CPU seconds per answer
(every bot process), p99 from tap to the next card, answers lost and counted twice. Two cores
cannot show two replicas going faster; what they can show is the price of sharing a
database: the target is CPU per answer with two replicas at most 1.2 times that of one.

    python -m bench.replicas [--workers 40] [--seconds 20] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import Report, run_load  # noqa: E402

URL = os.environ.get("LABELBOT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = "bench_replicas"


def fresh(url: str) -> str:
    """`url` with an empty schema of its own as the search path."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{SCHEMA}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--url", default=URL)
    args = parser.parse_args()
    setups = (
        ("SQLite, 1 bot", 1, None),
        ("PostgreSQL, 1 bot", 1, args.url),
        ("PostgreSQL, 2 bots", 2, args.url),
    )
    print(
        f"{'setup':<20} {'answers/s':>9} {'cpu ms/answer':>13} {'p99 ms':>7} "
        f"{'lost':>4} {'doubled':>7}"
    )
    results: dict[str, Report] = {}
    for name, replicas, url in setups:
        report = await run_load(
            args.workers,
            args.seconds,
            kill_at=None,
            replicas=replicas,
            database_url=fresh(url) if url else None,
            duplicates=0.05 if replicas > 1 else 0.0,
        )
        results[name] = report
        answers = max(len(report.confirmed), 1)
        print(
            f"{name:<20} {answers / args.seconds:>9.1f} "
            f"{report.cpu_seconds / answers * 1000:>13.2f} {report.p99_ms():>7.0f} "
            f"{report.lost:>4} {report.duplicated:>7}",
            flush=True,
        )

    def cpu(name: str) -> float:
        report = results[name]
        return report.cpu_seconds / max(len(report.confirmed), 1)

    ratio = cpu("PostgreSQL, 2 bots") / cpu("PostgreSQL, 1 bot")
    lost = sum(report.lost for report in results.values())
    doubled = sum(report.duplicated for report in results.values())
    per_answer = (
        f"sqlite_cpu_ms={cpu('SQLite, 1 bot') * 1000:.2f}"
        f" pg_cpu_ms={cpu('PostgreSQL, 1 bot') * 1000:.2f}"
    )
    print(f"replicas: cpu_ratio={ratio:.2f} lost={lost} doubled={doubled} {per_answer}")


if __name__ == "__main__":
    asyncio.run(main())
