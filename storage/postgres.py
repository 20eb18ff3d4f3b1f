"""PostgreSQL, for several replicas of the bot: the same changes and reads as on SQLite.

psycopg 3 in threads, chosen by measurement (bench/drivers.py, see README): a change is a
plain function run in a pool thread on a pooled connection, exactly as the SQLite engine runs
it, so one body of code serves both engines and the event loop waits once per change.
psycopg is imported only when a PostgreSQL URL is configured.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from storage.engine import Params, Row, Tx, paginate

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)
T = TypeVar("T")

# Connections (and threads) per process: the answer path holds one for a millisecond or two.
POOL_SIZE = 8
# A change that lost a race with another replica (a serialization failure, a deadlock, or the
# same update inserted by both) is run again this many times; the second run sees the first's
# commit and decides accordingly (a duplicate answer is then refused as a duplicate).
ATTEMPTS = 4
# The server probes a lease's connection after 10 s of silence, every 5 s, and gives up after
# 3 unanswered probes (settings each session may set; ignored over a Unix socket).
LEASE_KEEPALIVES = (
    ("tcp_keepalives_idle", 10),
    ("tcp_keepalives_interval", 5),
    ("tcp_keepalives_count", 3),
)
_RETRIED = {"40001", "40P01", "23505"}
# Under this advisory lock one process at a time migrates a schema.
_MIGRATION_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':migrate', 0))"
)

_TOKENS = re.compile(
    r"""'(?:[^']|'')*'      # a string literal, left alone
      | "[^"]*"             # a quoted name
      | --[^\n]*            # a comment
      | ::                  # a cast
      | :(?P<name>\w+)      # a named parameter
      | (?P<qmark>\?)       # a positional parameter
      | (?P<percent>%)      # psycopg's own placeholder sign, escaped
      | \s+INDEXED\s+BY\s+\w+  # SQLite's index hint
    """,
    re.VERBOSE | re.IGNORECASE,
)


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """SQLite-flavoured SQL as psycopg takes it: `?` and `:name` become `%s` and `%(name)s`."""

    def replace(match: re.Match[str]) -> str:
        if match["name"]:
            return f"%({match['name']})s"
        if match["qmark"]:
            return "%s"
        if match["percent"]:
            return "%%"
        text = match[0]
        if text.startswith("'"):  # psycopg reads % as its own sign even in a literal
            return text.replace("%", "%%")
        return "" if text.strip().upper().startswith("INDEXED") else text

    return _TOKENS.sub(replace, sql)


class PgRow:
    """A row read by name or by place, like sqlite3.Row."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: tuple[Any, ...], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def keys(self) -> list[str]:
        return list(self._index)

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._index, self._values, strict=True))})"


def _row_factory(cursor: psycopg.Cursor[Any]) -> Callable[[Any], PgRow]:
    names = [column.name for column in cursor.description or ()]
    index = {name: place for place, name in enumerate(names)}
    return lambda values: PgRow(tuple(values), index)


class PgTx:
    engine = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def _cursor(self, sql: str, params: Params) -> psycopg.Cursor[Any]:
        return self._conn.execute(translate(sql), params or None)

    def execute(self, sql: str, params: Params = ()) -> int:
        return self._cursor(sql, params).rowcount

    def insert(self, sql: str, params: Params = ()) -> int:
        row = self._cursor(f"{sql} RETURNING id", params).fetchone()
        assert row is not None
        return int(row[0])

    def rows(self, sql: str, params: Params = ()) -> list[Row]:
        return self._cursor(sql, params).fetchall()

    def row(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = self._cursor(sql, params).fetchone()
        return row

    def value(self, sql: str, params: Params = ()) -> Any:
        row = self._cursor(sql, params).fetchone()
        return None if row is None else row[0]


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Values go and come back as SQLite takes and gives them, so the code above has one set
    of types: Python's bools are stored as 0/1 (flags are INTEGER columns), booleans read as
    0/1, NUMERIC (what SUM and AVG of integers return) as int or float."""
    from psycopg.adapt import Loader
    from psycopg.types.numeric import IntDumper

    class FlagDumper(IntDumper):
        def dump(self, obj: Any) -> bytes:
            return str(int(obj)).encode()

    class FlagLoader(Loader):
        def load(self, data: Any) -> int:
            return 1 if bytes(data) == b"t" else 0

    class NumberLoader(Loader):
        def load(self, data: Any) -> int | float:
            text = bytes(data)
            return float(text) if b"." in text or b"e" in text.lower() else int(text)

    conn.adapters.register_dumper(bool, FlagDumper)
    conn.adapters.register_loader("bool", FlagLoader)
    conn.adapters.register_loader("numeric", NumberLoader)
    conn.row_factory = _row_factory


class PostgresDatabase:
    """A pool of connections, each used by one thread at a time."""

    engine = "postgresql"

    def __init__(self, url: str, *, size: int = POOL_SIZE) -> None:
        self.url = url
        self.size = size
        self._pool: ConnectionPool[Any] | None = None
        self._threads: ThreadPoolExecutor | None = None
        # Jobs this process leads, each on a connection of its own holding an advisory lock:
        # the lock lives as long as the connection, so a replica that dies lets go of it.
        self._leases: dict[str, psycopg.Connection[Any]] = {}
        # Leases are taken in worker threads while the loop may be closing the engine: one
        # lock orders them, and a lease asked for after close is refused rather than left
        # holding its lock on a connection nobody will close.
        self._leasing = threading.Lock()
        self._closed = False

    async def open(self) -> PostgresDatabase:
        self._closed = False
        if self._pool is None:
            from psycopg_pool import ConnectionPool

            pool: ConnectionPool[Any] = ConnectionPool(
                self.url, min_size=1, max_size=self.size, configure=_configure, open=False
            )
            await asyncio.to_thread(pool.open, wait=True, timeout=10)
            self._pool = pool
            self._threads = ThreadPoolExecutor(self.size, thread_name_prefix="postgres")
        return self

    async def close(self) -> None:
        await asyncio.to_thread(self._release_leases)
        threads, self._threads = self._threads, None
        if threads is not None:
            # In a thread of its own: a transaction still running would otherwise block the
            # event loop, and with it everything else the stop does (and any guard on it).
            await asyncio.to_thread(threads.shutdown, wait=True)
        if self._pool is not None:
            await asyncio.to_thread(self._pool.close)
            self._pool = None

    async def __aenter__(self) -> PostgresDatabase:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def run(self, change: Callable[[Tx], T]) -> T:
        if self._threads is None:
            raise RuntimeError("the database is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._transact, change)

    def _transact(self, change: Callable[[Tx], T]) -> T:
        import psycopg

        assert self._pool is not None
        for attempt in range(1, ATTEMPTS + 1):
            try:
                # The pool's connection block commits when it ends and rolls back on an error.
                with self._pool.connection() as conn:
                    return change(PgTx(conn))
            except psycopg.Error as error:
                if error.sqlstate not in _RETRIED or attempt == ATTEMPTS:
                    raise
                log.debug("retrying a change after %s (attempt %d)", error.sqlstate, attempt)
                time.sleep(0.002 * attempt)
        raise AssertionError("unreachable")

    async def leads(self, job: str) -> bool:
        return await asyncio.to_thread(self._lease, job)

    def _release_leases(self) -> None:
        with self._leasing:
            self._closed = True
            leases = list(self._leases.values())
            self._leases.clear()
        for lease in leases:
            lease.close()

    def _lease(self, job: str) -> bool:
        with self._leasing:
            return not self._closed and self._take_lease(job)

    def _take_lease(self, job: str) -> bool:
        import psycopg

        held = self._leases.get(job)
        if held is not None:
            try:
                held.execute("SELECT 1")
                return True
            except psycopg.Error:  # the connection broke: the lock went with it
                held.close()
                del self._leases[job]
        # The server drops a lease whose replica stops answering (its host died or fell off
        # the network, so no FIN ever comes) within about half a minute, and a peer takes
        # the job over; without keepalives that could take the kernel's two hours.
        conn = psycopg.connect(self.url, autocommit=True)
        for setting, seconds in LEASE_KEEPALIVES:
            conn.execute(f"SET {setting} = {seconds}")
        # Keyed by schema too: labelbots in different schemas of one database are different
        # deployments (the tests run many at once).
        row = conn.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(current_schema() || ':' || %s, 0))",
            (job,),
        )
        taken = row.fetchone()
        if taken is None or not taken[0]:
            conn.close()
            return False
        self._leases[job] = conn
        return True

    async def read(self, sql: str, params: Params = ()) -> list[Row]:
        return await self.run(lambda tx: tx.rows(sql, params))

    def pages(
        self, sql: str, params: dict[str, Any], *, key: int = 0, size: int = 5000
    ) -> AsyncIterator[Row]:
        return paginate(self.read, sql, params, key=key, size=size)

    # -- migrations -----------------------------------------------------------------------

    async def migrate(self, up_to: int | None = None) -> list[int]:
        """Applies the migrations not yet recorded, each in one transaction with its record.
        Replicas starting together take turns on an advisory lock; the later ones find the
        work done."""
        from storage.db import migrations

        applied = []
        await self.run(_create_record_table)
        for version, name, sql in migrations(self.engine):
            if up_to is not None and version > up_to:
                break
            if await self.run(functools.partial(_apply, version, name, sql)):
                log.info("applied migration %04d_%s", version, name)
                applied.append(version)
        return applied

    async def schema_version(self) -> int:
        def version(tx: Tx) -> int:
            if tx.value("SELECT to_regclass('schema_migrations')") is None:
                return 0
            return int(tx.value("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))

        return await self.run(version)


def _create_record_table(tx: Tx) -> None:
    tx.execute(_MIGRATION_LOCK)
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
    )


def _apply(version: int, name: str, sql: str, tx: Tx) -> bool:
    tx.execute(_MIGRATION_LOCK)
    if tx.value("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)):
        return False
    assert isinstance(tx, PgTx)
    # A file is sent whole: PostgreSQL runs several statements in one call without
    # parameters, and a plpgsql body needs no splitting.
    tx._conn.execute(sql.encode())
    tx.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, time.time()))
    return True
