"""The storage contract on both engines: a change is one transaction, rows read by name,
values of the same Python types, migrations applied once."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

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


async def test_a_percent_sign_in_a_literal_is_text_not_a_parameter(engine: Engine) -> None:
    await engine.run(lambda tx: _worker(tx, 1))
    rows = await engine.read(
        "SELECT COUNT(*) AS n FROM workers WHERE name LIKE '%w%' AND id > ? AND name != '50%'",
        (0,),
    )
    assert rows[0]["n"] == 1


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


async def test_a_lease_taken_while_the_engine_closes_is_not_left_holding_its_lock(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upkeep asks for its lease in a thread; the engine closing meanwhile (a replica
    shutting down) must neither fail on the lease arriving nor leave it open: its lock would
    keep every other replica from the job until this process exits."""
    if engine.engine == "sqlite":
        return
    import psycopg

    from storage.postgres import PostgresDatabase

    assert isinstance(engine, PostgresDatabase)
    connect = psycopg.connect
    connecting, go_on = threading.Event(), threading.Event()

    def slow_connect(*args: Any, **kwargs: Any) -> Any:
        connecting.set()
        go_on.wait(5)
        return connect(*args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", slow_connect)
    leading = asyncio.create_task(engine.leads("upkeep"))
    await asyncio.to_thread(connecting.wait, 5)
    closing = asyncio.create_task(engine.close())
    await asyncio.sleep(0.1)
    go_on.set()
    await asyncio.gather(leading, closing)
    monkeypatch.setattr(psycopg, "connect", connect)
    assert not await engine.leads("upkeep")  # closed: no lease for anyone in this process
    async with PostgresDatabase(engine.url) as replica:
        assert await replica.leads("upkeep")


async def test_the_server_drops_a_silent_replica_s_lease_within_half_a_minute(
    engine: Engine,
) -> None:
    if engine.engine == "sqlite":
        return
    from storage.postgres import PostgresDatabase

    assert isinstance(engine, PostgresDatabase)
    assert await engine.leads("upkeep")
    lease = engine._leases["upkeep"]
    shown = {
        name: lease.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
        for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
    }
    assert shown == {
        "tcp_keepalives_idle": "10",
        "tcp_keepalives_interval": "5",
        "tcp_keepalives_count": "3",
    }
