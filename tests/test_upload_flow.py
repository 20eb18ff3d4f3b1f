"""A coordinator's big upload, through the sandbox: the workers keep labeling meanwhile, and an
import cut off half way leaves no batch behind."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg
import pytest

from labeling.batch import BatchSettings, ItemRow
from storage.batches import BatchStore
from storage.engine import Engine
from tests.harness import BOSS, Harness, first_card

CAPTION = "question: Is it positive?\noptions: yes, no\noverlap: 1\ngold_ratio: 0"
TWENTY_MB = 20 * 1024 * 1024


def big_csv(size: int) -> bytes:
    row = "the product was fine and it arrived on time and well packed " * 3
    rows, total, n = ["id,text\n"], 8, 0
    while True:
        line = f"r{n},{row}{n}\n"
        if total + len(line) > size:
            return "".join(rows).encode()
        rows.append(line)
        total += len(line)
        n += 1


async def test_taps_are_answered_while_a_20_mb_file_is_imported(tmp_path: Path) -> None:
    async with Harness(tmp_path / "u.db", coordinator_ids=str(BOSS)) as harness:
        tasks = "text\n" + "".join(f"item {n}\n" for n in range(3000))
        # The worker taps at a machine's speed, slowed down while the import runs: a median
        # taken then makes the quick taps after it "far faster than usual", and five of them
        # in a row would (rightly) suspend the worker in the middle of the measurement.
        await harness.add_batch(tasks, options="yes,no", overlap=1, gold_ratio=0, fast_suspend=None)
        worker = await harness.join(1)
        card = await first_card(harness, worker)
        boss = harness.user(BOSS)
        content = big_csv(TWENTY_MB - 1024)
        boss.send_document("big.csv", content, CAPTION)
        waits: list[float] = []
        while not any("Batch 2" in m.shown for m in boss.bot_messages):
            edits, started = card.edits, time.perf_counter()
            worker.press("yes", message_id=card.message_id)
            await worker.wait_for(lambda u, e=edits: card.edits > e, timeout=30)
            waits.append(time.perf_counter() - started)
        reply = next(m.shown for m in boss.bot_messages if "Batch 2" in m.shown)
        items = content.count(b"\n") - 1
        assert f"{items} items" in reply
        assert await harness.query("SELECT COUNT(*) FROM items WHERE batch_id = 2") == [(items,)]
        # Enough taps to see the whole import, and the slowest of them (the p99) under a second:
        # with the import on the event loop one tap waited for all of it.
        assert len(waits) >= 20
        assert sorted(waits)[int(0.99 * len(waits))] < 1.0


# A row that breaks the batch's unique ids, in the third chunk: two chunks are committed
# before it fails, on either engine.
CLASH = 4500
FAILS = (sqlite3.IntegrityError, psycopg.IntegrityError)


async def count(engine: Engine, table: str) -> int:
    return int((await engine.read(f"SELECT COUNT(*) AS n FROM {table}"))[0]["n"])


async def test_an_import_that_fails_half_way_leaves_nothing(engine: Engine) -> None:
    store = BatchStore(engine)
    settings = BatchSettings(name="b", question="q?", options="yes,no")
    with pytest.raises(FAILS):
        await store.create(settings, rows(5000), now=0.0)
    assert await count(engine, "items") == 0
    assert await count(engine, "batches") == 0


async def test_a_batch_cut_off_by_a_crash_is_invisible_then_removed(engine: Engine) -> None:
    store = BatchStore(engine)
    settings = BatchSettings(name="b", question="q?", options="yes,no")
    # A crash: the clean-up after the failure never runs.
    store._remove = _never  # type: ignore[method-assign]
    with pytest.raises(FAILS):
        await store.create(settings, rows(5000), now=100.0)
    assert await count(engine, "items") == 4000
    assert await store.summaries() == []
    del store._remove
    assert await store.discard_unfinished(before=50.0) == []  # it might still be going
    assert await store.discard_unfinished(before=200.0) == [1]
    assert await count(engine, "items") == 0
    assert await count(engine, "batches") == 0


async def _never(batch_id: int) -> None:
    return None


def rows(count: int) -> list[ItemRow]:
    """Items with the same id in the first row and at `CLASH`."""
    return [
        ItemRow(line=n + 2, text=f"item {n}", external_id="same" if n in (0, CLASH) else None)
        for n in range(count)
    ]
