"""The database: migrations, transactions, and the rules of handing out tasks."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from pathlib import Path

import psycopg
import pytest

from labeling.answering import Verdict
from labeling.batch import BatchSettings
from labeling.batchfile import parse_batch_file
from labeling.models import BatchStatus, Submission
from storage.batches import BatchStore
from storage.db import Database, migrations
from storage.engine import Engine, Tx
from tests.factories import open_batch, registered

TTL = 60.0
SETTINGS = BatchSettings(name="b", question="q?", options="yes,no", overlap=2)


async def make_batch(db: Engine, rows: int = 3, settings: BatchSettings = SETTINGS) -> int:
    content = ("text\n" + "".join(f"item {i}\n" for i in range(rows))).encode()
    return await open_batch(db, content, settings)


async def test_migrations_are_recorded_and_applied_once(tmp_path: Path) -> None:
    async with Database(tmp_path / "m.db") as db:
        assert await db.migrate() == [version for version, _, _ in migrations()]
        assert await db.migrate() == []
        assert await db.schema_version() == len(list(migrations()))
        # Asked of the writing connection: foreign_keys is a setting of each connection.
        assert await db.run(lambda tx: tx.value("PRAGMA journal_mode")) == "wal"
        assert await db.run(lambda tx: tx.value("PRAGMA foreign_keys")) == 1


async def test_a_change_rolls_back_everything_on_error(db: Database) -> None:
    def change(tx: Tx) -> None:
        tx.execute("INSERT INTO workers (id, name, created_at, last_seen_at) VALUES (1, 'a', 0, 0)")
        tx.execute("INSERT INTO workers (id, name, created_at, last_seen_at) VALUES (2, 'b', 0, 0)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await db.run(change)
    assert (await db.read("SELECT COUNT(*) AS n FROM workers"))[0]["n"] == 0


async def test_concurrent_transactions_do_not_interleave(db: Database) -> None:
    def add(worker_id: int, tx: Tx) -> None:
        tx.execute(
            "INSERT INTO workers (id, name, created_at, last_seen_at) VALUES (?, 'w', 0, 0)",
            (worker_id,),
        )
        if worker_id % 2:
            raise ValueError("odd ones roll back")

    changes = (db.run(functools.partial(add, i)) for i in range(20))
    await asyncio.gather(*changes, return_exceptions=True)
    rows = await db.read("SELECT id FROM workers ORDER BY id")
    assert [row["id"] for row in rows] == list(range(0, 20, 2))


async def test_an_answer_cannot_be_stored_twice_even_by_sql(db: Database) -> None:
    await make_batch(db)
    tasks = await registered(db, 1)
    task = (await tasks.current_or_next(1, 1.0, TTL)).task
    assert task is not None
    verdict = (await tasks.submit(Submission(task.assignment_id, 1, option=0), 2.0, TTL)).verdict
    assert verdict is Verdict.ACCEPTED
    with pytest.raises(sqlite3.IntegrityError):
        await db.run(
            lambda tx: tx.execute(
                "INSERT INTO answers (assignment_id, item_id, batch_id, worker_id, value,"
                " duration_ms, created_at) VALUES (?, ?, ?, 1, 'no', 0, 3)",
                (task.assignment_id, task.item_id, task.batch_id),
            )
        )


async def test_each_item_collects_overlap_answers_from_distinct_workers(db: Database) -> None:
    await make_batch(db, rows=3)
    tasks = await registered(db, 1, 2, 3)
    answered: dict[int, list[int]] = {}
    for worker_id in (1, 2, 3):
        task = (await tasks.current_or_next(worker_id, 1.0, TTL)).task
        while task is not None:
            answered.setdefault(task.item_id, []).append(worker_id)
            outcome = await tasks.submit(
                Submission(task.assignment_id, worker_id, option=1), 2.0, TTL
            )
            task = outcome.next_task
    assert sorted(answered.values()) == [[1, 2], [1, 2], [1, 2]]
    assert (await tasks.current_or_next(3, 3.0, TTL)).task is None
    counts = await db.read("SELECT answers, wanted FROM items")
    assert [tuple(row) for row in counts] == [(2, 0)] * 3


async def test_a_worker_holds_one_open_task_and_gets_it_again(db: Database) -> None:
    await make_batch(db)
    tasks = await registered(db, 1)
    first = (await tasks.current_or_next(1, 1.0, TTL)).task
    again = (await tasks.current_or_next(1, 2.0, TTL)).task
    assert first is not None and again is not None
    assert again.assignment_id == first.assignment_id
    with pytest.raises(sqlite3.IntegrityError):  # the schema itself forbids a second one
        await db.run(
            lambda tx: tx.execute(
                "INSERT INTO assignments (item_id, batch_id, worker_id, issued_at, expires_at)"
                " VALUES (2, 1, 1, 0, 100)"
            )
        )


async def test_expired_tasks_return_to_the_pool_and_count_right(db: Database) -> None:
    await make_batch(db, rows=1, settings=SETTINGS.model_copy(update={"overlap": 3}))
    tasks = await registered(db, 1, 2, 3)
    for worker_id in (1, 2):
        assert (await tasks.current_or_next(worker_id, 0.0, 10.0)).task is not None
    assert (await db.read("SELECT wanted FROM items"))[0]["wanted"] == 1
    assert await tasks.expire(now=5.0) == 0
    assert await tasks.expire(now=10.0) == 2
    assert (await db.read("SELECT wanted FROM items"))[0]["wanted"] == 3
    # The workers whose tasks expired never get that item again; a third worker does.
    assert (await tasks.current_or_next(1, 11.0, 10.0)).task is None
    assert (await tasks.current_or_next(3, 11.0, 10.0)).task is not None


async def test_a_stale_open_task_is_replaced_on_next(db: Database) -> None:
    await make_batch(db, rows=2)
    tasks = await registered(db, 1)
    first = (await tasks.current_or_next(1, 0.0, 10.0)).task
    second = (await tasks.current_or_next(1, 20.0, 10.0)).task
    assert first is not None and second is not None
    assert second.item_id != first.item_id
    verdict = (await tasks.submit(Submission(first.assignment_id, 1, option=0), 21.0, 10.0)).verdict
    assert verdict is Verdict.EXPIRED


async def test_paused_batches_hand_out_nothing_and_take_no_answers(engine: Engine) -> None:
    batch_id = await make_batch(engine)
    tasks = await registered(engine, 1, 2)
    task = (await tasks.current_or_next(1, 1.0, TTL)).task
    assert task is not None
    await BatchStore(engine).set_status(batch_id, BatchStatus.PAUSED, 2.0)
    assert (await tasks.current_or_next(2, 3.0, TTL)).task is None
    verdict = (await tasks.submit(Submission(task.assignment_id, 1, option=0), 3.0, TTL)).verdict
    assert verdict is Verdict.BATCH_NOT_OPEN
    assert (await engine.read("SELECT COUNT(*) AS n FROM answers"))[0]["n"] == 0


async def test_picking_a_task_uses_the_pool_and_gold_indexes(db: Database) -> None:
    from storage.tasks import _PICK_GOLD, _PICK_TASK

    task = {"w": 1, "batch": 1, "after": 0, "upto": 10}
    gold = {"w": 1, "batch": 1, "low": 0, "high": 10}
    for sql, params, index in (
        (_PICK_TASK, task, "items_pool (batch_id=? AND id>? AND id<?)"),
        (_PICK_GOLD, gold, "items_gold_rank (batch_id=? AND gold_rank>? AND gold_rank<?)"),
    ):
        plan = await db.read("EXPLAIN QUERY PLAN " + sql, params)
        details = " ".join(row["detail"] for row in plan)
        assert f"SEARCH i USING INDEX {index}" in details
        assert "TEMP B-TREE" not in details  # LIMIT 1 stops at the first fit


async def test_creating_a_batch_is_all_or_nothing(engine: Engine) -> None:
    items = parse_batch_file(b"id,text\n1,a\n2,b\n", "b.csv", SETTINGS)
    duplicate = [items[0], items[1].model_copy(update={"external_id": "1"})]
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        await BatchStore(engine).create(SETTINGS, duplicate, now=0.0)
    counts = await engine.read(
        "SELECT (SELECT COUNT(*) FROM batches) AS batches, (SELECT COUNT(*) FROM items) AS items"
    )
    assert (counts[0]["batches"], counts[0]["items"]) == (0, 0)


async def test_pages_stream_every_row_once_across_page_boundaries(db: Database) -> None:
    def change(tx: Tx) -> None:
        for i in range(1, 26):
            tx.execute(
                "INSERT INTO workers (id, name, created_at, last_seen_at) VALUES (?, 'w', 0, 0)",
                (i,),
            )

    await db.run(change)
    sql = "SELECT id FROM workers WHERE id > :after ORDER BY id LIMIT :limit"
    for size in (1, 5, 7, 25, 100):
        assert [row[0] async for row in db.pages(sql, {}, size=size)] == list(range(1, 26))


async def test_an_old_database_is_upgraded_with_its_data(tmp_path: Path) -> None:
    def old_batch(tx: Tx) -> None:
        tx.execute(
            "INSERT INTO batches (name, question, options, overlap, created_at, status)"
            " VALUES ('b', 'q?', '[\"yes\", \"no\"]', 2, 0, 'open')"
        )
        for position, text, gold in ((1, "a", None), (2, "b", "yes")):
            tx.execute(
                "INSERT INTO items (batch_id, position, text, gold, wanted) VALUES (1, ?, ?, ?, 2)",
                (position, text, gold),
            )

    async with Database(tmp_path / "old.db") as db:
        assert await db.migrate(up_to=1) == [1]
        await db.run(old_batch)
        await registered(db, 1)
        assert await db.migrate() == [version for version, _, _ in migrations()][1:]
        stored = await BatchStore(db).get(1)
        assert stored.settings.options == ("yes", "no") and stored.settings.overlap == 2
        items = await db.read("SELECT target, wanted FROM items ORDER BY id")
        assert [tuple(row) for row in items] == [
            (2, 2),
            (2, 0),  # the gold item leaves the pool
        ]
        assert (await db.read("SELECT gold_items FROM batches"))[0]["gold_items"] == 1


async def test_the_wal_is_checkpointed_beside_the_writer_not_in_its_commits(
    tmp_path: Path,
) -> None:
    """A commit that takes the WAL past SQLite's default mark (1000 pages) returns without
    copying it into the database file (that copy once cost one answer in fifty its p99); the
    checkpointer copies it within a few seconds."""
    path = tmp_path / "wal.db"
    async with Database(path) as db:
        await db.migrate()
        size = path.stat().st_size

        def bulk(tx: Tx) -> None:  # about 2,000 pages of 4 KiB
            for n in range(2000):
                tx.execute(
                    "INSERT INTO workers (id, name, created_at, last_seen_at) VALUES (?, ?, 0, 0)",
                    (n, "x" * 4000),
                )

        await db.run(bulk)
        assert path.stat().st_size == size  # the commit left the copy to the checkpointer
        for _ in range(60):
            if path.stat().st_size > size + 2000 * 4000:
                break
            await asyncio.sleep(0.1)
        assert path.stat().st_size > size + 2000 * 4000


async def test_a_worker_s_exam_attempts_are_found_by_index(db: Database) -> None:
    for sql in (
        "SELECT correct, answered FROM exam_attempts WHERE worker_id = 1 AND batch_id = 2"
        " AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1",
        "SELECT COUNT(*) FROM exam_attempts t WHERE t.batch_id = 2 AND t.worker_id = 1"
        " AND t.id < 9",
        "SELECT MAX(id) FROM exam_attempts WHERE batch_id = 2 AND worker_id = 1 AND id < 9",
    ):
        plan = await db.read("EXPLAIN QUERY PLAN " + sql)
        details = " ".join(row["detail"] for row in plan)
        assert "USING COVERING INDEX exam_attempts_worker" in details or (
            "USING INDEX exam_attempts_worker" in details
        ), details


async def test_a_checkpointer_that_died_does_not_keep_the_database_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storage.db

    async def dies(path: str) -> None:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(storage.db, "checkpoints", dies)
    db = Database(tmp_path / "dead.db")
    await db.open()
    await asyncio.sleep(0)  # the checkpointer runs, and dies
    await db.close()  # logged, not raised
    assert (db._conn, db._reader) == (None, None)
