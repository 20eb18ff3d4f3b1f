"""How long `labelbot backup` takes while the bot writes, against SQLite's stepped backup.

A database of about 50 MB in WAL mode, and another process writing one row every 10 ms and
every 30 ms (a busy bot). For each: the seconds until the copy is done with `storage.backup`
(VACUUM INTO, one read) and with the stepped online backup labelbot used before (2048 pages a
step, which starts again after a write between two steps), given up after `--cap` seconds.

    python bench/backup.py [--megabytes 48] [--cap 30] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage.backup import backup  # noqa: E402

WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
conn.execute("PRAGMA synchronous = NORMAL")
every = float(sys.argv[2])
while True:
    time.sleep(every)
    conn.execute("INSERT INTO filler (data) VALUES (randomblob(100))")
"""


class GaveUp(Exception):
    pass


def fill(path: Path, megabytes: int) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, data BLOB)")
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO filler (data) SELECT randomblob(1000) FROM n",
            (megabytes * 1000,),
        )
        conn.commit()


def stepped(source: Path, target: Path, cap: float) -> None:
    """The stepped online backup, as labelbot made it before, given up after `cap` s."""
    deadline = time.monotonic() + cap

    def progress(status: int, remaining: int, total: int) -> None:
        if time.monotonic() > deadline:
            raise GaveUp

    target.unlink(missing_ok=True)
    with (
        contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as live,
        contextlib.closing(sqlite3.connect(target)) as copy,
    ):
        live.backup(copy, pages=2048, progress=progress)


def timed(copy: str, source: Path, folder: Path, every: float, cap: float) -> float | None:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(source), str(every)])
    try:
        time.sleep(0.5)  # the writes are under way
        started = time.monotonic()
        try:
            if copy == "vacuum into":
                backup(source, folder / "copy.db")
            else:
                stepped(source, folder / "stepped.db", cap)
        except GaveUp:
            return None
        return time.monotonic() - started
    finally:
        writer.kill()
        writer.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=48)
    parser.add_argument("--cap", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "live.db"
        fill(source, args.megabytes)
        size = source.stat().st_size / 1e6
        print(f"database {size:.0f} MB; seconds to finish (over {args.cap:.0f} s: gave up)")
        print(f"{'write every':<13}{'copy':<14}runs")
        worst: dict[str, float] = {}
        for every in (0.010, 0.030):
            for copy in ("vacuum into", "stepped"):
                times = [timed(copy, source, folder, every, args.cap) for _ in range(args.runs)]
                shown = " ".join("gave up" if t is None else f"{t:.2f}" for t in times)
                print(f"{every * 1000:>5.0f} ms     {copy:<14}{shown}")
                slowest = max(args.cap if t is None else t for t in times)
                worst[copy] = max(worst.get(copy, 0.0), slowest)
        print(
            f"under writes every 10-30 ms the slowest copy of {size:.0f} MB took"
            f" {worst['vacuum into']:.2f} s by VACUUM INTO, {worst['stepped']:.1f} s stepped"
            f" (given up at {args.cap:.0f} s)"
        )
        vacuum, stepped = worst["vacuum into"], worst["stepped"]
        print(f"backup: megabytes={size:.0f} vacuum_into_s={vacuum:.2f} stepped_s={stepped:.1f}")


if __name__ == "__main__":
    main()
