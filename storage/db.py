"""The one long-lived SQLite connection, its single write path and its migrations."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import suppress
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from storage.engine import Row, Tx, paginate

log = logging.getLogger(__name__)

Params = Sequence[Any] | dict[str, Any]
T = TypeVar("T")
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# How long a statement waits for another process's lock before it fails.
BUSY_SECONDS = 10
# Left to itself, the writer checkpoints the WAL into the database file every 1000 pages
# (SQLite's default), inside whichever change's commit crosses the mark: one answer in about
# fifty waited for the copy (and its fsync) and set the loop's p99. A checkpointer in a thread
# of its own copies the WAL every CHECKPOINT_SECONDS while the writer goes on; the writer's
# own mark stays, far higher, for a checkpointer that falls behind (a long export holding
# the WAL's frames).
CHECKPOINT_SECONDS = 1.0
WRITER_CHECKPOINT_PAGES = 10_000


async def use_wal(conn: aiosqlite.Connection) -> None:
    """Switches the file to WAL, waiting for a process that opens the same new file at the
    same moment: that switch can fail with "database is locked" at once, without waiting
    on the busy timeout (two fresh processes migrating one file hit it about one time in six).
    """
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            busy = getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.02)


class Database:
    """Serialises every use of one aiosqlite connection.

    SQLite allows one writer; within this process an asyncio lock makes each transaction run
    alone (a migration takes several calls to the connection's thread, and a change must not
    land between them). Other processes (the CLI next to a running bot) wait on SQLite's busy
    timeout.
    """

    engine = "sqlite"

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        self.path = str(path)
        self.synchronous = synchronous
        self._conn: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._checkpointer: asyncio.Task[None] | None = None

    async def open(self) -> Database:
        if self._conn is None:
            if self.path != ":memory:":
                create_private(Path(self.path))
            # No transaction begins behind the code's back: each one starts with its own
            # BEGIN IMMEDIATE (in _transact and in the migrations).
            conn = await aiosqlite.connect(self.path, isolation_level=None)
            try:
                await self._configure(conn)
            except BaseException:
                # An unclosed connection's thread would keep the process from exiting.
                await conn.close()
                raise
            self._conn = conn
        if self._reader is None and self.path != ":memory:":
            # Reports (status, exports) read through a second connection in its own thread:
            # WAL lets it read while the first writes, and sqlite releases the GIL while it
            # scans, so a report over a million answers never holds up a worker's tap.
            reader = await aiosqlite.connect(self.path)
            reader.row_factory = sqlite3.Row
            for pragma in ("query_only = ON", f"busy_timeout = {BUSY_SECONDS * 1000}"):
                await reader.execute(f"PRAGMA {pragma}")
            self._reader = reader
        if self._checkpointer is None and self.path != ":memory:":
            self._checkpointer = asyncio.create_task(checkpoints(self.path))
        return self

    async def _configure(self, conn: aiosqlite.Connection) -> None:
        conn.row_factory = sqlite3.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_SECONDS * 1000}")
        await use_wal(conn)
        pragmas = (
            "foreign_keys = ON",
            f"synchronous = {self.synchronous}",
            f"wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}",
        )
        for pragma in pragmas:
            await conn.execute(f"PRAGMA {pragma}")

    async def close(self) -> None:
        if self._checkpointer is not None:
            checkpointer, self._checkpointer = self._checkpointer, None
            checkpointer.cancel()
            # Waited without being awaited: a checkpointer that had died must not keep the
            # connections below open, and a cancellation of this close must not be swallowed.
            await asyncio.wait([checkpointer])
            if not checkpointer.cancelled() and checkpointer.exception() is not None:
                log.warning("the WAL checkpointer had stopped: %s", checkpointer.exception())
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> Database:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _writer(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("the database is not open")
        return self._conn

    async def leads(self, job: str) -> bool:
        """Always: one process serves a SQLite file (the command line runs no upkeep)."""
        return True

    async def run(self, change: Callable[[Tx], T]) -> T:
        """Runs `change` in one transaction in the database's thread: one wait for the event
        loop, however many statements the change takes (see storage/engine.py).

        aiosqlite runs any function in its thread but has no public name for that, so its two
        private ones are used here and nowhere else."""
        async with self._lock:
            conn = self._writer()
            return await conn._execute(_transact, conn._conn, change)

    async def read(self, sql: str, params: Params = ()) -> list[Row]:
        """A report's rows, read by name through the reading connection: what is committed,
        without waiting for the writer or making it wait."""
        rows: list[Row]
        if self._reader is None:  # an in-memory database has no second connection
            async with self._lock:
                rows = list(await self._writer().execute_fetchall(sql, params))
                return rows
        rows = list(await self._reader.execute_fetchall(sql, params))
        return rows

    def pages(
        self, sql: str, params: dict[str, Any], *, key: int = 0, size: int = 5000
    ) -> AsyncIterator[Row]:
        """Streams a large result page by page through the reading connection, so an export
        never stalls the workers' answers (see storage.engine.paginate)."""
        return paginate(self.read, sql, params, key=key, size=size)

    # -- migrations -----------------------------------------------------------------------

    async def migrate(self, up_to: int | None = None) -> list[int]:
        """Applies the migrations not yet recorded (up to version `up_to`, for tests of the
        upgrade path); returns the versions applied.

        Another process may be migrating the same file: each migration takes the write lock
        first (BEGIN IMMEDIATE) and only then reads whether its version is recorded, so the
        second process waits for the first and finds the work done instead of repeating it.
        """
        async with self._lock:
            conn = self._writer()
            # Under the write lock too: on its own, the statement reads first and then writes,
            # and another process's commit in between fails it at once, with no busy wait.
            await conn.execute("BEGIN IMMEDIATE")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            await conn.commit()
            applied = []
            for version, name, sql in migrations():
                if up_to is not None and version > up_to:
                    break
                if await self._apply(version, name, sql):
                    log.info("applied migration %04d_%s", version, name)
                    applied.append(version)
            return applied

    async def _apply(self, version: int, name: str, sql: str) -> bool:
        """Applies one migration with the record of its version, in one transaction; False
        when it was recorded already. (Not executescript: it commits before it runs, so the
        check and the change could not share a transaction.)"""
        conn = self._writer()
        await conn.execute("BEGIN IMMEDIATE")
        try:
            done = await conn.execute_fetchall(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
            )
            if not done:
                for statement in statements(sql):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, time.time())
                )
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()
        return not done

    async def schema_version(self) -> int:
        """The newest migration applied; 0 for a database never migrated."""
        if not await self.read(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ):
            return 0
        rows = await self.read("SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations")
        return int(rows[0]["version"])


class SqliteTx:
    """A transaction on the SQLite connection, in its thread."""

    engine = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> int:
        return self._conn.execute(sql, params).rowcount

    def insert(self, sql: str, params: Params = ()) -> int:
        row_id = self._conn.execute(sql, params).lastrowid
        assert row_id is not None
        return row_id

    def rows(self, sql: str, params: Params = ()) -> list[Row]:
        rows: list[Row] = self._conn.execute(sql, params).fetchall()
        return rows

    def row(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = self._conn.execute(sql, params).fetchone()
        return row

    def value(self, sql: str, params: Params = ()) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else row[0]


def _transact(conn: sqlite3.Connection, change: Callable[[Tx], T]) -> T:
    """Runs `change` as one transaction, in the connection's thread. BEGIN IMMEDIATE first:
    what the change reads and what it writes belong to one moment, even with another process
    (the command line) writing to the same file."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = change(SqliteTx(conn))
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    return result


async def checkpoints(path: str, every: float = CHECKPOINT_SECONDS) -> None:
    """Copies the WAL into the database file every `every` seconds, in a thread with a
    connection of its own, until cancelled. PASSIVE: it copies what no reader still needs and
    never waits for, or holds up, the writer."""
    conn = await asyncio.to_thread(sqlite3.connect, path, check_same_thread=False)
    # A round cancelled mid-copy goes on in its thread: the connection closes after it.
    using = threading.Lock()

    def checkpoint() -> None:
        with using:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close() -> None:
        with using:
            conn.close()

    try:
        while True:
            await asyncio.sleep(every)
            try:
                await asyncio.to_thread(checkpoint)
            except sqlite3.Error as error:  # the next round tries again
                log.warning("WAL checkpoint failed: %s", error)
    finally:
        await asyncio.to_thread(close)


def create_private(path: Path) -> None:
    """Creates the database file, if it is new, readable by its owner only: it holds people's
    ids and answers. SQLite gives its -wal and -shm files the database file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def statements(script: str) -> Iterable[str]:
    """The statements of an SQL script, one at a time (a trigger's body stays whole)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if _has_code(pending):
                yield pending.strip()
            pending = ""
    if _has_code(pending.removesuffix(";")):
        raise ValueError(f"an SQL statement is not finished: {pending.strip()[:80]!r}")


def _has_code(sql: str) -> bool:
    """Whether `sql` holds more than comments, white space and semicolons."""
    lines = (line.split("--", 1)[0] for line in sql.splitlines())
    return any(line.strip(" \t;") for line in lines)


def latest_version() -> int:
    """The schema version this labelbot needs: its newest migration."""
    return max((version for version, _, _ in migrations()), default=0)


def migrations(engine: str = "sqlite") -> Iterable[tuple[int, str, str]]:
    """The numbered SQL files shipped in storage/migrations/ENGINE, in order. Each engine has
    its own files (the SQL differs) under the same numbers and names."""
    found = []
    for entry in resources.files("storage.migrations").joinpath(engine).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found
