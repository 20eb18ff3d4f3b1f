"""How long a coordinator's batch file takes to import, by format and size.

For CSV, JSON Lines and a JSON array it builds files of valid rows (a review of about 190
characters each, every twentieth row gold) at growing sizes up to Telegram's 20 MB download
limit, and times parsing alone and the whole import into a fresh database (parse, then store
in short transactions). Time per row should stay flat as files grow: parsing is linear.

    python bench/upload.py [--mb 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labeling.batch import BatchSettings  # noqa: E402
from labeling.batches import BatchService  # noqa: E402
from labeling.batchfile import parse_batch_file  # noqa: E402
from storage.batches import BatchStore  # noqa: E402
from storage.db import Database  # noqa: E402

SETTINGS = BatchSettings(name="upload", question="Is it positive?", options="yes,no")
REVIEW = "the product was fine and it arrived on time and well packed " * 3


def content(kind: str, size: int) -> tuple[bytes, int]:
    """A file of `kind` just under `size` bytes, and its number of rows."""
    rows: list[str] = []
    total, n = 16, 0
    while True:
        row = {"id": f"r{n}", "text": f"{REVIEW}{n}", "gold": "yes" if n % 20 == 0 else ""}
        line = (
            f"{row['id']},{row['text']},{row['gold']}"
            if kind == "csv"
            else json.dumps(row, ensure_ascii=False)
        )
        if total + len(line) + 2 > size:
            break
        rows.append(line)
        total += len(line) + 2
        n += 1
    if kind == "csv":
        text = "id,text,gold\n" + "\n".join(rows) + "\n"
    elif kind == "jsonl":
        text = "\n".join(rows) + "\n"
    else:
        text = "[\n" + ",\n".join(rows) + "\n]\n"
    return text.encode(), n


async def run(kind: str, size: int) -> tuple[int, float, float]:
    data, rows = content(kind, size)
    started = time.perf_counter()
    parse_batch_file(data, f"b.{kind}", SETTINGS)
    parsed = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        async with Database(Path(folder) / "upload.db") as db:
            await db.migrate()
            started = time.perf_counter()
            await BatchService(BatchStore(db)).import_file(data, f"b.{kind}", SETTINGS)
            imported = time.perf_counter() - started
    return rows, parsed, imported


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0)
    args = parser.parse_args()
    limit = int(args.mb * 1024 * 1024)
    sizes = [limit // 8, limit // 4, limit // 2, limit]
    print(f"{'format':<7} {'MB':>6} {'rows':>8} {'parse s':>8} {'import s':>9} {'µs/row':>7}")
    full: dict[str, float] = {}
    per_row: dict[str, list[float]] = {}
    for kind in ("csv", "jsonl", "json"):
        for size in sizes:
            rows, parsed, imported = await run(kind, size)
            micros = imported / rows * 1e6
            per_row.setdefault(kind, []).append(micros)
            print(
                f"{kind:<7} {size / 2**20:>6.1f} {rows:>8} {parsed:>8.2f} {imported:>9.2f}"
                f" {micros:>7.1f}"
            )
        full[kind] = imported
    # Linear parsing keeps the time per row flat: the largest file's over the smallest's.
    growth = max(rows[-1] / rows[0] for rows in per_row.values())
    jsonl, json_array = f"jsonl_s={full['jsonl']:.2f}", f"json_s={full['json']:.2f}"
    print(f"upload: csv_s={full['csv']:.2f} {jsonl} {json_array} per_row_growth={growth:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
