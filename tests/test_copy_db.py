"""`labelbot copy-db`: a database moved from SQLite to PostgreSQL and back, row for row, its
counters still kept by the target's triggers afterwards; a non-empty target refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from labeling.batch import BatchSettings
from labeling.models import Problem, Submission
from storage.copy import TABLES, CopyError, copy_database
from storage.db import Database
from storage.engine import Engine, Tx
from storage.postgres import PostgresDatabase
from tests.factories import Desk, open_batch, registered
from tests.pg import schema_url

TTL = 600.0
ROWS = "id,text,gold\n" + "".join(
    f"r{i},item {i},\n" if i % 5 else f"g{i},gold {i},yes\n" for i in range(40)
)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with schema_url() as url:
        yield url


async def labeled(path: Path) -> None:
    """A database with a row in every table: a batch labeled by three workers (answers, a
    skip, a report, pay), and the rows of training, coordination and announcements."""
    async with Database(path) as db:
        await db.migrate()
        settings = BatchSettings(name="b", question="q?", options="yes,no", overlap=2)
        batch = await open_batch(db, ROWS.encode(), settings)
        tasks = await registered(db, 1, 2, 3)
        for worker in (1, 2, 3):
            task = (await tasks.current_or_next(worker, 1.0, TTL)).task
            for _ in range(8):  # "yes": right on every gold item
                assert task is not None
                answer = Submission(task.assignment_id, worker, option=0)
                task = (await tasks.submit(answer, 2.0 + worker, TTL)).next_task
        assert task is not None  # worker 3 reports one and gives back the next
        task = (await tasks.report(task.assignment_id, 3, Problem.BROKEN, 6.0, TTL)).next_task
        assert task is not None
        await tasks.skip(task.assignment_id, 3, 7.0, TTL)
        await db.run(lambda tx: _the_rest(tx, batch))


def _the_rest(tx: Tx, batch: int) -> None:
    tx.execute("INSERT INTO coordinators (user_id, promoted_by, created_at) VALUES (501, 500, 1.5)")
    tx.execute(
        "INSERT INTO audit_log (actor_id, action, subject_id, reason, created_at)"
        " VALUES (500, 'ban', 3, 'spam', 1700000123.456)"
    )
    attempt = tx.insert(
        "INSERT INTO exam_attempts (worker_id, batch_id, started_at) VALUES (1, ?, 1.0)",
        (batch,),
    )
    item = tx.value("SELECT id FROM items WHERE gold IS NOT NULL")
    tx.execute(
        "INSERT INTO exam_answers (attempt_id, item_id, value, correct, created_at)"
        " VALUES (?, ?, 'yes', 1, 1.1)",
        (attempt, item),
    )
    broadcast = tx.insert(
        "INSERT INTO broadcasts (batch_id, text, created_at, finished_at) VALUES (?, 'hi', 1, 2)",
        (batch,),
    )
    tx.execute(
        "INSERT INTO deliveries (broadcast_id, worker_id, status, updated_at)"
        " VALUES (?, 1, 'sent', 1)",
        (broadcast,),
    )
    tx.execute(
        "INSERT INTO notices (worker_id, batch_id, kind, created_at) VALUES (2, ?, 'let_back', 1)",
        (batch,),
    )


async def rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows in key order, floats to the microsecond."""

    def norm(value: Any) -> Any:
        return round(value, 6) if isinstance(value, float) else value

    return {
        table: [
            tuple(norm(v) for v in row)
            for row in await engine.read(f"SELECT * FROM {table} ORDER BY 1, 2")
        ]
        for table in TABLES
    }


async def test_a_database_goes_to_postgresql_and_back_row_for_row(
    tmp_path: Path, pg_url: str
) -> None:
    source, back = tmp_path / "source.db", tmp_path / "back.db"
    await labeled(source)
    async with Database(source) as db:
        original = await rows(db)
    assert all(original.values()), [table for table, found in original.items() if not found]

    async with PostgresDatabase(pg_url) as pg:
        await pg.migrate()
    copied = copy_database(str(source), pg_url)
    assert {done.table: done.rows for done in copied} == {t: len(r) for t, r in original.items()}
    async with PostgresDatabase(pg_url) as pg:
        assert await rows(pg) == original
        # The target's own bookkeeping works on: a new answer is paid and counted, with ids
        # numbered past the copied ones.
        tasks = Desk(pg)  # type: ignore[arg-type]
        task = (await tasks.current_or_next(2, 50.0, TTL)).task
        assert task is not None
        await tasks.submit(Submission(task.assignment_id, 2, option=0), 51.0, TTL)
        paid = await pg.read("SELECT id, answer_id FROM ledger ORDER BY id DESC LIMIT 1")
        assert paid[0]["id"] == len(original["ledger"]) + 1
        answers = await pg.read("SELECT answers FROM worker_batches WHERE worker_id = 2")
        assert answers[0]["answers"] == 9

    async with Database(back) as db:
        await db.migrate()
    copy_database(pg_url, str(back))
    async with Database(back) as db, PostgresDatabase(pg_url) as pg:
        assert await rows(db) == await rows(pg)


async def test_a_target_that_holds_data_is_refused_and_left_alone(
    tmp_path: Path, pg_url: str
) -> None:
    source = tmp_path / "source.db"
    await labeled(source)
    async with PostgresDatabase(pg_url) as pg:
        await pg.migrate()
        await registered(pg, 77)  # type: ignore[arg-type]
        before = await rows(pg)
    with pytest.raises(CopyError, match=r"not empty: workers \(1 rows\)"):
        copy_database(str(source), pg_url)
    async with PostgresDatabase(pg_url) as pg:
        assert await rows(pg) == before


def test_the_command_prints_each_table_and_never_the_password(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    source = tmp_path / "source.db"
    asyncio.run(labeled(source))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_PATH", str(source))
    target = pg_url.replace("postgres@", "postgres:s3cret-pass@")  # trust auth ignores it
    assert main(["copy-db", "--to", target]) == 0
    out, err = capsys.readouterr()
    assert "answers" in out and "every count checked" in out
    assert "s3cret" not in out + err
    assert main(["copy-db", "--to", target]) == 2  # now it holds data
    out, err = capsys.readouterr()
    assert "the target is not empty" in err and "s3cret" not in out + err
