"""What every storage engine offers: a transaction as one call, rows read by name.

A change is a plain function of a `Tx`, run by the engine in its own thread from start to
commit: the event loop waits once per change, however many statements it takes, and the rules
the function applies (they live in labeling/) are the same code on every engine.

Statements are written once, in SQLite's flavour, with parameters as `?` or `:name`; the
PostgreSQL engine translates them. So that they run alike, flags are INTEGER 0/1 columns on both
engines, timestamps are epoch seconds as floating point, `INDEXED BY` is only a hint (dropped
on PostgreSQL), and a statement that must lock what it reads on PostgreSQL asks `Tx.engine`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

Params = Sequence[Any] | dict[str, Any]
T = TypeVar("T")


class Row(Protocol):
    """A result row: by column name (how the code reads it) or by place."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Any]: ...
    def keys(self) -> list[str]: ...


class Tx(Protocol):
    """One open transaction, used from the engine's thread only."""

    engine: str  # "sqlite" or "postgresql"

    def execute(self, sql: str, params: Params = ()) -> int:
        """Runs a statement; returns the number of rows it changed."""
        ...

    def insert(self, sql: str, params: Params = ()) -> int:
        """Runs an INSERT into a table with an `id` key; returns the new row's id."""
        ...

    def rows(self, sql: str, params: Params = ()) -> list[Row]: ...

    def row(self, sql: str, params: Params = ()) -> Row | None:
        """The first row, or None."""
        ...

    def value(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row, or None."""
        ...


class Engine(Protocol):
    """A database: changes as transactions run in its thread, reports read beside them."""

    engine: str

    async def open(self) -> Engine: ...
    async def close(self) -> None: ...

    async def run(self, change: Callable[[Tx], T]) -> T:
        """Runs `change` in one transaction: it commits when `change` returns and rolls back
        when it raises. On PostgreSQL a change that lost a race with another replica is run
        again from the start, so it must not act outside the database."""
        ...

    async def read(self, sql: str, params: Params = ()) -> list[Row]:
        """A report's rows: what is committed, without holding up the changes."""
        ...

    def pages(
        self, sql: str, params: dict[str, Any], *, key: int = 0, size: int = 5000
    ) -> AsyncIterator[tuple[Any, ...]]: ...

    async def migrate(self, up_to: int | None = None) -> list[int]: ...
    async def schema_version(self) -> int: ...

    async def leads(self, job: str) -> bool:
        """Whether this process runs `job` now (the upkeep: expiry, medians, sweeps). Of
        several replicas on one database, one at a time does; when it dies, another takes
        over at its next try."""
        ...


async def paginate(
    read: Callable[[str, Params], Awaitable[Sequence[Row]]],
    sql: str,
    params: dict[str, Any],
    *,
    key: int = 0,
    size: int = 5000,
) -> AsyncIterator[tuple[Any, ...]]:
    """Streams a large result page by page (keyset pagination), so an export never holds
    the whole result, nor the database, at once.

    `sql` must filter on `> :after`, order by that same key, and end in `LIMIT :limit`;
    `key` is the key's place in each row.
    """
    after: Any = -(2**63)
    while True:
        rows = await read(sql, {**params, "after": after, "limit": size})
        for row in rows:
            yield tuple(row)
        if len(rows) < size:
            return
        after = rows[-1][key]
