"""Moving a whole database between engines (SQLite to PostgreSQL and back), for
`labelbot copy-db`: every row as it is, in one transaction on the target, checked by counts.

The bot must be stopped: the source is read in one snapshot, but answers given meanwhile
would be left behind. The target's bookkeeping triggers are off while the rows go in, since the
counters they keep are copied too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.db import create_private, latest_version

# Every table but schema_migrations, parents before children (foreign keys are checked).
TABLES = (
    "workers",
    "coordinators",
    "audit_log",
    "batches",
    "items",
    "assignments",
    "answers",
    "ledger",
    "worker_batches",
    "exam_attempts",
    "exam_answers",
    "reports",
    "broadcasts",
    "deliveries",
    "notices",
)
CHUNK = 5000


class CopyError(Exception):
    """Why the copy was refused or undone; nothing was written."""


@dataclass(frozen=True, slots=True)
class Copied:
    table: str
    rows: int


def is_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def copy_database(source: str, target: str) -> list[Copied]:
    """Copies the database at `source` into the empty one at `target` (each a postgresql://
    URL or an SQLite file's path), both migrated to this labelbot's schema; refuses a target
    that holds data. It blocks while it copies: run it in a thread."""
    reader, writer = _open(source), _open(target)
    try:
        for side, name in ((reader, "the source"), (writer, "the target")):
            if side.version() != latest_version():
                raise CopyError(
                    f"{name} is at schema version {side.version()}, this labelbot at"
                    f" {latest_version()}: run `labelbot migrate` on it first"
                )
        full = {table: n for table in TABLES if (n := writer.count(table))}
        if full:
            listed = ", ".join(f"{table} ({n} rows)" for table, n in full.items())
            raise CopyError(f"the target is not empty: {listed}; copy-db only fills a new one")
        return _copy(reader, writer)
    finally:
        reader.close()
        writer.close()


def _copy(reader: _Side, writer: _Side) -> list[Copied]:
    reader.snapshot()
    writer.begin()
    try:
        copied = []
        for table in TABLES:
            columns = reader.columns(table)
            for chunk in reader.chunks(table, columns):
                writer.put(table, columns, chunk)
            expected, found = reader.count(table), writer.count(table)
            if expected != found:
                raise CopyError(f"{table}: {expected} rows in the source, {found} copied")
            copied.append(Copied(table, found))
        writer.finish()
    except BaseException:
        writer.rollback()
        raise
    reader.rollback()  # the snapshot only read
    return copied


class _Side:
    """One end of the copy, on a plain DB-API connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def count(self, table: str) -> int:
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def columns(self, table: str) -> list[str]:
        cursor = self.conn.execute(f"SELECT * FROM {table} LIMIT 0")
        return [column[0] for column in cursor.description]

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        self.conn.close()

    # Overridden per engine.
    def version(self) -> int: ...  # type: ignore[empty-body]
    def snapshot(self) -> None: ...
    def begin(self) -> None: ...
    def chunks(self, table: str, columns: Sequence[str]) -> Iterator[list[tuple[Any, ...]]]:
        raise NotImplementedError

    def put(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None: ...
    def finish(self) -> None: ...


class _Sqlite(_Side):
    def __init__(self, path: str) -> None:
        super().__init__(sqlite3.connect(path, isolation_level=None))
        self._triggers: list[str] = []

    def version(self) -> int:
        if not self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'"
        ).fetchone():
            return 0
        return int(self.conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0])

    def snapshot(self) -> None:
        self.conn.execute("BEGIN")  # a read transaction: one moment of a WAL database

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        # SQLite cannot switch triggers off: they are dropped and made again in the same
        # transaction, so a failed copy leaves them as they were.
        self._triggers = [
            row[1]
            for row in self.conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
            )
        ]
        for (name,) in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        ).fetchall():
            self.conn.execute(f"DROP TRIGGER {name}")

    def chunks(self, table: str, columns: Sequence[str]) -> Iterator[list[tuple[Any, ...]]]:
        cursor = self.conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1")
        while rows := cursor.fetchmany(CHUNK):
            yield rows

    def put(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" for _ in columns)
        self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def finish(self) -> None:
        for sql in self._triggers:
            self.conn.execute(sql)
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


class _Postgres(_Side):
    def __init__(self, url: str) -> None:
        import psycopg

        super().__init__(psycopg.connect(url))

    def version(self) -> int:
        if self.conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
            return 0
        value = self.conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
        self.conn.rollback()
        return int(value or 0)

    def snapshot(self) -> None:
        self.conn.rollback()
        self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    def begin(self) -> None:
        self.conn.rollback()
        for table in TABLES:  # the owner of the tables may switch its own triggers off
            self.conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")

    def chunks(self, table: str, columns: Sequence[str]) -> Iterator[list[tuple[Any, ...]]]:
        with self.conn.cursor(name=f"copy_{table}") as cursor:  # server-side: streamed
            cursor.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1")
            while rows := cursor.fetchmany(CHUNK):
                yield [tuple(row) for row in rows]

    def put(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        with self.conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def finish(self) -> None:
        for table in TABLES:
            self.conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            # New rows must be numbered past the copied ones.
            self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" COALESCE(MAX(id), 0) + 1, false) FROM {table}"
                if "id" in self.columns(table)
                else "SELECT 1"
            )
        self.conn.commit()


def _open(where: str) -> _Side:
    if is_url(where):
        side: _Side = _Postgres(where)
    else:
        create_private(Path(where))
        side = _Sqlite(where)
        side.conn.execute("PRAGMA journal_mode = WAL")
    return side
