"""The storage contract on both engines: a change is one transaction, rows read by name,
values of the same Python types, migrations applied once."""

from __future__ import annotations

import pytest

from storage.db import latest_version
from storage.engine import Engine, Tx


def _worker(tx: Tx, worker_id: int) -> None:
    tx.execute(
        "INSERT INTO workers (id, name, created_at, last_seen_at) VALUES (:id, 'w', 0.5, 0.5)",
        {"id": worker_id},
    )


async def test_a_change_commits_whole_or_not_at_all(engine: Engine) -> None:
    await engine.run(lambda tx: _worker(tx, 1))

    def half(tx: Tx) -> None:
        _worker(tx, 2)
        raise RuntimeError("the change fails half way")

    with pytest.raises(RuntimeError):
        await engine.run(half)
    rows = await engine.read("SELECT id FROM workers ORDER BY id")
    assert [row["id"] for row in rows] == [1]


async def test_rows_are_read_by_name_with_sqlite_s_types(engine: Engine) -> None:
    big = 5_000_000_001  # a Telegram id past 2^32

    def change(tx: Tx) -> tuple[int, int]:
        _worker(tx, big)
        changed = tx.execute("UPDATE workers SET notify = ? WHERE id = ?", (False, big))
        report = tx.insert(
            "INSERT INTO audit_log (actor_id, action, subject_id, reason, created_at)"
            " VALUES (?, 'ban', ?, 'spam', 1700000123.456)",
            (None, big),
        )
        return changed, report

    changed, report = await engine.run(change)
    assert (changed, report) == (1, 1)
    row = (
        await engine.read(
            "SELECT id, notify = 0 AS quiet, created_at, (SELECT SUM(subject_id) FROM audit_log)"
            " AS total, (SELECT AVG(subject_id) FROM audit_log) AS mean,"
            " (SELECT created_at FROM audit_log) AS logged FROM workers"
        )
    )[0]
    assert row["id"] == big and row[0] == big
    assert row["quiet"] == 1 and type(row["quiet"]) is int  # a flag, as SQLite gives it
    assert row["total"] == big and type(row["total"]) is int
    assert row["mean"] == float(big)
    assert row["logged"] == 1700000123.456  # full precision: epoch seconds to the millisecond
    assert row.keys()[:2] == ["id", "quiet"]


async def test_values_and_missing_rows(engine: Engine) -> None:
    assert await engine.run(lambda tx: tx.value("SELECT COUNT(*) FROM workers")) == 0
    assert await engine.run(lambda tx: tx.row("SELECT * FROM workers WHERE id = 1")) is None
    assert await engine.run(lambda tx: tx.value("SELECT name FROM workers WHERE id = 1")) is None


async def test_pages_stream_a_large_result_in_key_order(engine: Engine) -> None:
    def many(tx: Tx) -> None:
        for worker_id in range(1, 26):
            _worker(tx, worker_id)

    await engine.run(many)
    ids = [
        row[0]
        async for row in engine.pages(
            "SELECT id FROM workers WHERE id > :after ORDER BY id LIMIT :limit", {}, size=7
        )
    ]
    assert ids == list(range(1, 26))


async def test_migrations_apply_once(engine: Engine) -> None:
    assert await engine.schema_version() == latest_version()
    assert await engine.migrate() == []


async def test_one_process_at_a_time_leads_the_upkeep(engine: Engine) -> None:
    if engine.engine == "sqlite":  # one process serves a SQLite file
        assert await engine.leads("upkeep")
        return
    from storage.postgres import PostgresDatabase

    assert isinstance(engine, PostgresDatabase)
    async with PostgresDatabase(engine.url) as replica:
        assert await engine.leads("upkeep")
        assert await engine.leads("upkeep")  # still, on its next round
        assert not await replica.leads("upkeep")
        assert await replica.leads("another job")
        await engine.close()  # the leader dies: its lock goes with its connection
        assert await replica.leads("upkeep")
