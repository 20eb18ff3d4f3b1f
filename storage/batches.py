"""Batches and their items: creation, state changes, progress and the rows behind exports."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from itertools import islice
from typing import TypeVar

from labeling.batch import BatchSettings, ItemRow
from labeling.gold import new_seed
from labeling.importing import AlreadyImported, NewItem, hidden_gold, new_items
from labeling.models import (
    BatchNotFound,
    BatchStatus,
    BatchSummary,
    ExportAnswer,
    ExportItem,
    StoredBatch,
    WorkerRow,
    WorkerStanding,
)
from storage.admin import counts_as_worker, owners_parameter
from storage.engine import Engine, Row, Tx
from storage.standing import trust_of

T = TypeVar("T")

# Items stored per transaction while a batch file is imported: a few milliseconds each.
IMPORT_CHUNK = 2000
_ITEM_COLUMNS = (
    "batch_id, position, external_id, text, image, gold, explanation, metadata, exam, target,"
    " wanted, gold_rank"
)
# How a chunk of items is stored in few statements. SQLite: this many rows to an INSERT, the
# same statement for every full slice. PostgreSQL: the whole chunk in one INSERT, each column
# an array, since psycopg parses a statement of more than 50 parameters again each time (rows
# of VALUES took four times as long as arrays; a statement per row, seven times).
_ROWS_PER_INSERT = 250
_ITEM = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ITEM_ARRAYS = (
    f"INSERT INTO items ({_ITEM_COLUMNS}) SELECT * FROM unnest(?::bigint[], ?::integer[],"
    " ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::integer[],"
    " ?::integer[], ?::integer[], ?::bigint[])"
)


def _in_batch(column: str, batch_id: int | None) -> str:
    """SQL keeping the rows of batch :batch, or all rows when no batch is asked for. Two
    texts, not `:batch IS NULL OR ...`: PostgreSQL cannot tell a NULL parameter's type there,
    and a plan made for both cases cannot go straight to one batch's rows."""
    return "1 = 1" if batch_id is None else f"{column} = :batch"


def _lock(tx: Tx, clause: str) -> str:
    """`clause` on PostgreSQL, where replicas change the same rows at once; SQLite has one
    writer at a time and no row locks."""
    return f" {clause}" if tx.engine == "postgresql" else ""


class SqlBatchUnit:
    """A batch's state inside one transaction (labeling.batches.BatchUnit)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def status(self, batch_id: int) -> BatchStatus:
        # Locked until the change commits: a second coordinator's change of the same batch, on
        # another replica, waits and then reads the state this one leaves.
        row = self.tx.row(
            "SELECT status FROM batches WHERE id = ? AND importing = 0"
            + _lock(self.tx, "FOR NO KEY UPDATE"),
            (batch_id,),
        )
        if row is None:
            raise BatchNotFound(batch_id)
        return BatchStatus(row["status"])

    def set_status(self, batch_id: int, status: BatchStatus, now: float) -> None:
        self.tx.execute(
            "UPDATE batches SET status = :status,"
            " published_at = CASE WHEN :status = 'open' THEN COALESCE(published_at, :now)"
            "  ELSE published_at END,"
            " closed_at = CASE WHEN :status = 'closed' THEN :now ELSE closed_at END"
            " WHERE id = :batch",
            {"status": status.value, "now": now, "batch": batch_id},
        )

    def announce(
        self, batch_id: int, text: str, now: float, *, by: int | None, paid: bool, audience: str
    ) -> None:
        """Queues a broadcast to the `audience` (storage.broadcasts sends it)."""
        self.tx.execute(
            "INSERT INTO broadcasts (batch_id, text, created_at, created_by, paid, audience)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (batch_id, text, now, by, int(paid), audience),
        )


class BatchStore:
    def __init__(self, db: Engine, *, owners: Iterable[int] = ()) -> None:
        self.db = db
        self.owners = owners_parameter(owners)  # COORDINATOR_IDS

    async def run(self, change: Callable[[SqlBatchUnit], T]) -> T:
        """Runs `change` (a rule of labeling/batches.py) in one transaction."""
        return await self.db.run(lambda tx: change(SqlBatchUnit(tx)))

    async def create(
        self,
        settings: BatchSettings,
        items: Sequence[ItemRow],
        *,
        now: float,
        source: str | None = None,
        created_by: int | None = None,
        source_file: str | None = None,
    ) -> int:
        """Stores a batch and all its items; returns the batch id. All or nothing: the items
        go in `IMPORT_CHUNK` at a time, each a short transaction so that workers' answers land
        in between, and the batch is seen by nobody until the last is in. If storing fails or
        is cancelled half way, what was stored is removed again. A `source_file` stored
        already (the same upload, delivered to two replicas at once) raises AlreadyImported.

        labeling.importing says what the rows become."""
        gold_total, seed = hidden_gold(settings, items), new_seed()

        def begin(tx: Tx) -> int:
            if source_file is not None:
                existing = tx.value("SELECT id FROM batches WHERE source_file = ?", (source_file,))
                if existing is not None:
                    raise AlreadyImported(int(existing))
            return tx.insert(
                "INSERT INTO batches (name, question, options, overlap, gold_ratio, reward,"
                " instructions, source, created_by, created_at, settings, gold_items,"
                " gold_total, source_file, gold_seed, importing)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (
                    settings.name,
                    settings.question,
                    None if settings.options is None else json.dumps(settings.options),
                    settings.overlap,
                    settings.gold_ratio,
                    settings.reward,
                    settings.instructions,
                    source,
                    created_by,
                    now,
                    settings.model_dump_json(),
                    gold_total,
                    gold_total,
                    source_file,
                    seed,
                ),
            )

        batch_id = await self.db.run(begin)
        try:
            pending = new_items(settings, items)
            while chunk := list(islice(pending, IMPORT_CHUNK)):
                await self.db.run(lambda tx, chunk=chunk: _insert_items(tx, batch_id, chunk))
            await self.db.run(
                lambda tx: tx.execute("UPDATE batches SET importing = 0 WHERE id = ?", (batch_id,))
            )
        except BaseException:
            await asyncio.shield(self._remove(batch_id))
            raise
        return batch_id

    async def discard_unfinished(self, before: float) -> list[int]:
        """Removes batches whose import began before `before` and never ended (the process
        stopped half way); returns their ids."""
        rows = await self.db.read(
            "SELECT id FROM batches WHERE importing = 1 AND created_at < ? ORDER BY id", (before,)
        )
        for row in rows:
            await self._remove(row["id"])
        return [row["id"] for row in rows]

    async def _remove(self, batch_id: int) -> None:
        """Deletes a batch that is still importing, a chunk of items per transaction."""

        def chunk(tx: Tx) -> bool:
            """Deletes the next chunk, or the batch once its items are gone; True when
            nothing is left. The batch's row is locked first, so that replicas removing the
            same batch at once take turns instead of deleting it from under each other."""
            importing = tx.row(
                "SELECT 1 FROM batches WHERE id = ? AND importing = 1" + _lock(tx, "FOR UPDATE"),
                (batch_id,),
            )
            if importing is None:  # removed already, or its import finished after all
                return True
            deleted = tx.execute(
                "DELETE FROM items WHERE id IN (SELECT id FROM items WHERE batch_id = ? LIMIT ?)",
                (batch_id, IMPORT_CHUNK),
            )
            if deleted:
                return False
            tx.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
            return True

        while not await self.db.run(chunk):
            pass

    async def by_source_file(self, source_file: str) -> int | None:
        """The newest batch made from this uploaded file, if one was: stored as the file's id,
        or as '<file id>:<update id>' when imported again (a range of the index, so it is
        found either way)."""
        rows = await self.db.read(
            "SELECT MAX(id) AS id FROM batches WHERE source_file = :file"
            " OR (source_file > :low AND source_file < :high)",
            {"file": source_file, "low": f"{source_file}:", "high": f"{source_file};"},
        )
        value = rows[0]["id"]
        return None if value is None else int(value)

    async def get(self, batch_id: int) -> StoredBatch:
        rows = await self.db.read(
            "SELECT settings, status FROM batches WHERE id = ? AND importing = 0", (batch_id,)
        )
        if not rows:
            raise BatchNotFound(batch_id)
        row = rows[0]
        return StoredBatch(
            batch_id, BatchSettings.model_validate_json(row["settings"]), BatchStatus(row["status"])
        )

    async def set_status(
        self,
        batch_id: int,
        status: BatchStatus,
        now: float,
        *,
        announce: str | None = None,
        by: int | None = None,
        paid: bool = False,
        audience: str = "all",
    ) -> BatchStatus:
        """Puts a batch in `status`, whatever its state; returns the previous one. `announce`
        queues a broadcast to the `audience` in the same transaction. (A coordinator's change
        goes through labeling.batches.transition, which checks the state first.)"""

        def change(unit: SqlBatchUnit) -> BatchStatus:
            previous = unit.status(batch_id)
            unit.set_status(batch_id, status, now)
            if announce is not None:
                unit.announce(batch_id, announce, now, by=by, paid=paid, audience=audience)
            return previous

        return await self.run(change)

    async def announce(
        self, text: str, now: float, *, by: int | None = None, source: str | None = None
    ) -> bool:
        """Queues an announcement; False when `source` (the message that asked for it) has
        queued one already."""
        changed = await self.db.run(
            lambda tx: tx.execute(
                "INSERT INTO broadcasts (text, created_at, created_by, source_message)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (source_message)"
                " WHERE source_message IS NOT NULL DO NOTHING",
                (text, now, by, source),
            )
        )
        return changed == 1

    async def summaries(
        self, batch_id: int | None = None, *, since: float | None = None
    ) -> list[BatchSummary]:
        """Each batch's counts; with `since`, also the answers on ordinary items from then on,
        for the batch's current rate."""
        # Every count comes from a counter or an index, never from scanning the answers, and
        # it is read beside the changes: /status on a batch of a million answers neither waits
        # for the workers' taps nor makes them wait.
        recent = (
            "0"
            if since is None
            else """(SELECT COUNT(*) FROM answers a INDEXED BY answers_batch
                      JOIN items i ON i.id = a.item_id
                      WHERE a.batch_id = b.id AND a.created_at >= :since AND i.gold IS NULL)"""
        )
        rows = await self.db.read(
            f"""
            SELECT b.id, b.name, b.status, b.question, b.options, b.overlap, b.reward,
                   b.created_at, b.published_at, b.median_ms, b.settings, {recent} AS recent,
                   i.items, i.gold, i.done, i.counted, i.needed, i.missing,
                   (SELECT COUNT(*) FROM answers a WHERE a.batch_id = b.id) AS stored,
                   (SELECT COUNT(*) FROM answers a WHERE a.batch_id = b.id AND a.worker_id IN
                      (SELECT worker_id FROM worker_batches x WHERE x.batch_id = b.id
                       AND x.status = 'suspended')) AS excluded,
                   (SELECT COALESCE(SUM(amount), 0) FROM ledger l
                      WHERE l.batch_id = b.id) AS spent,
                   b.completed_at, w.workers,
                   (SELECT COUNT(*) FROM assignments a WHERE a.batch_id = b.id
                      AND a.status = 'open') AS open_tasks,
                   w.suspended, w.gold_answers, w.gold_correct, w.fast
            FROM batches b
            JOIN (SELECT batch_id,
                         SUM(CASE WHEN gold IS NULL THEN 1 ELSE 0 END) AS items,
                         SUM(CASE WHEN gold IS NULL THEN 0 ELSE 1 END) AS gold,
                         SUM(CASE WHEN gold IS NULL AND answers >= target THEN 1 ELSE 0 END)
                           AS done,
                         SUM(CASE WHEN gold IS NULL THEN answers END) AS counted,
                         SUM(CASE WHEN gold IS NULL THEN target END) AS needed,
                         SUM(CASE WHEN gold IS NULL AND target > answers
                             THEN target - answers ELSE 0 END) AS missing
                  FROM items WHERE {_in_batch("batch_id", batch_id)}
                  GROUP BY batch_id) i ON i.batch_id = b.id
            LEFT JOIN (SELECT batch_id,
                              SUM(CASE WHEN status = 'suspended' THEN 1 ELSE 0 END)
                                AS suspended,
                              SUM(CASE WHEN answers > 0 THEN 1 ELSE 0 END) AS workers,
                              SUM(gold_answers) AS gold_answers,
                              SUM(gold_correct) AS gold_correct, SUM(fast_answers) AS fast
                       FROM worker_batches WHERE {_in_batch("batch_id", batch_id)}
                       GROUP BY batch_id) w ON w.batch_id = b.id
            WHERE {_in_batch("b.id", batch_id)} AND b.importing = 0
            ORDER BY b.id
            """,
            {"batch": batch_id, "since": since},
        )
        if batch_id is not None and not rows:
            raise BatchNotFound(batch_id)
        return [_summary(row) for row in rows]

    async def votes(self, batch_id: int) -> list[tuple[int, str, int]]:
        """How many counted answers gave each value to each ordinary item, as (item, value,
        count): what agreement needs, a few rows per item rather than one per answer."""
        rows = await self.db.read(
            "SELECT a.item_id, a.value, COUNT(*) AS n FROM answers a"
            " JOIN items i ON i.id = a.item_id AND i.gold IS NULL"
            " LEFT JOIN worker_batches wb ON wb.worker_id = a.worker_id"
            "  AND wb.batch_id = a.batch_id"
            " WHERE a.batch_id = ? AND wb.status IS DISTINCT FROM 'suspended'"
            " GROUP BY a.item_id, a.value",
            (batch_id,),
        )
        return [(row["item_id"], row["value"], row["n"]) for row in rows]

    async def worker_rows(
        self, batch_id: int | None = None, limit: int = 10_000
    ) -> list[WorkerRow]:
        """Workers with their answers, gold accuracy and earnings, in one batch or in all
        (where those who never answered are listed too, unless they are coordinators)."""
        # In one batch, a ban first, then the standing there (suspended, failed).
        status = (
            "w.status"
            if batch_id is None
            else "CASE WHEN w.status = 'banned' THEN w.status"
            " ELSE COALESCE(wb.status, 'active') END"
        )
        listed = "COUNT(a.id) > 0" + (f" OR {counts_as_worker('w')}" if batch_id is None else "")
        rows = await self.db.read(
            f"""
            SELECT w.id, w.name, w.reachable, {status} AS status,
                   CASE WHEN wb.status IN ('suspended', 'failed') THEN wb.reason END AS reason,
                   COUNT(a.id) AS answers,
                   COALESCE(SUM(CASE WHEN a.correct IS NULL THEN 0 ELSE 1 END), 0) AS gold,
                   COALESCE(SUM(a.correct), 0) AS correct,
                   COALESCE((SELECT SUM(amount) FROM ledger l WHERE l.worker_id = w.id
                             AND {_in_batch("l.batch_id", batch_id)}), 0) AS earned,
                   COALESCE(SUM(a.duration_ms), 0) / 1000.0 AS seconds
            FROM workers w
            LEFT JOIN answers a ON a.worker_id = w.id AND {_in_batch("a.batch_id", batch_id)}
            LEFT JOIN worker_batches wb ON wb.worker_id = w.id AND wb.batch_id = :batch
            GROUP BY w.id, wb.status, wb.reason
            HAVING {listed}
            ORDER BY COUNT(a.id) DESC, w.id
            LIMIT :limit
            """,
            {"batch": batch_id, "limit": limit, "owners": self.owners},
        )
        return [
            WorkerRow(
                row["id"],
                row["name"],
                row["status"],
                bool(row["reachable"]),
                row["answers"],
                row["gold"],
                row["correct"],
                float(row["earned"]),
                float(row["seconds"]),
                row["reason"],
            )
            for row in rows
        ]

    async def progress(self, batch_id: int, buckets: int = 60) -> list[tuple[float, int]]:
        """Answers counted over time, as (time, answers counted so far) in even steps. Counted
        as the status counts them: on ordinary items, not from suspended workers, and each
        item's first answers up to its target."""
        span = await self.db.read(
            "SELECT MIN(created_at) AS first, MAX(created_at) AS last FROM answers"
            " WHERE batch_id = ?",
            (batch_id,),
        )
        if span[0]["first"] is None:
            return []
        start, end = span[0]["first"], span[0]["last"]
        # Steps in whole milliseconds: integer division cuts the same way on both engines,
        # where a cast of a fraction to an integer truncates on SQLite and rounds on
        # PostgreSQL (a millisecond either way, too little to matter on a chart).
        start_ms = int(start * 1000)
        width_ms = max(-(-(int(end * 1000) + 1 - start_ms) // buckets), 1)
        rows = await self.db.read(
            "SELECT (CAST(created_at * 1000 AS BIGINT) - :start) / :width AS bucket,"
            " COUNT(*) AS n"
            " FROM (SELECT a.created_at, i.target, ROW_NUMBER() OVER"
            "   (PARTITION BY a.item_id ORDER BY a.created_at, a.id) AS nth"
            "  FROM answers a JOIN items i ON i.id = a.item_id"
            "  LEFT JOIN worker_batches wb ON wb.worker_id = a.worker_id"
            "   AND wb.batch_id = a.batch_id"
            "  WHERE a.batch_id = :batch AND i.gold IS NULL"
            "  AND wb.status IS DISTINCT FROM 'suspended') counted"
            " WHERE nth <= target GROUP BY bucket ORDER BY bucket",
            {"start": start_ms, "width": width_ms, "batch": batch_id},
        )
        series, total = [(start, 0)], 0
        for row in rows:
            total += row["n"]
            series.append((min(end, (start_ms + (row["bucket"] + 1) * width_ms) / 1000), total))
        return series

    async def standings(self, batch_id: int) -> list[WorkerStanding]:
        rows = await self.db.read(
            "SELECT wb.*, w.name FROM worker_batches wb JOIN workers w ON w.id = wb.worker_id"
            " WHERE wb.batch_id = ? ORDER BY wb.worker_id",
            (batch_id,),
        )
        return [
            WorkerStanding(
                row["worker_id"],
                row["name"],
                row["status"],
                row["answers"],
                row["gold_answers"],
                row["gold_correct"],
                row["fast_answers"],
                row["reason"],
                trust_of(row).peers,
            )
            for row in rows
        ]

    async def items(self, batch_id: int) -> AsyncIterator[ExportItem]:
        async for row in self.db.pages(
            "SELECT position, id, external_id, text, image, gold, metadata FROM items"
            " WHERE batch_id = :batch AND position > :after ORDER BY position LIMIT :limit",
            {"batch": batch_id},
        ):
            yield ExportItem(row[1], row[2], row[3], row[4], row[5], json.loads(row[6]))

    async def answers(self, batch_id: int) -> AsyncIterator[ExportAnswer]:
        async for row in self.db.pages(
            "SELECT a.id, a.item_id, i.external_id, a.worker_id, a.value, a.duration_ms,"
            " a.created_at, CASE WHEN i.gold IS NULL THEN 0 ELSE 1 END, a.correct, a.fast,"
            " CASE WHEN wb.status = 'suspended' THEN 'suspended' END"
            " FROM answers a JOIN items i ON i.id = a.item_id"
            " LEFT JOIN worker_batches wb ON wb.worker_id = a.worker_id"
            "  AND wb.batch_id = a.batch_id"
            " WHERE a.batch_id = :batch AND a.id > :after ORDER BY a.id LIMIT :limit",
            {"batch": batch_id},
        ):
            yield ExportAnswer(
                *row[:7],
                gold=bool(row[7]),
                correct=None if row[8] is None else bool(row[8]),
                fast=bool(row[9]),
                excluded=row[10],
            )


def _insert_items(tx: Tx, batch_id: int, items: Sequence[NewItem]) -> None:
    rows = [
        (
            batch_id,
            item.position,
            item.row.external_id,
            item.row.text,
            item.row.image,
            item.row.gold,
            item.row.explanation,
            json.dumps(item.row.metadata, ensure_ascii=False, default=str),
            int(item.exam),
            item.target,
            item.wanted,
            item.gold_rank,
        )
        for item in items
    ]
    if tx.engine == "postgresql":
        tx.execute(_ITEM_ARRAYS, [list(column) for column in zip(*rows, strict=True)])
        return
    for first in range(0, len(rows), _ROWS_PER_INSERT):
        part = rows[first : first + _ROWS_PER_INSERT]
        tx.execute(
            f"INSERT INTO items ({_ITEM_COLUMNS}) VALUES {', '.join([_ITEM] * len(part))}",
            [value for row in part for value in row],
        )


def _summary(row: Row) -> BatchSummary:
    return BatchSummary(
        batch_id=row["id"],
        name=row["name"],
        status=BatchStatus(row["status"]),
        question=row["question"],
        options=None if row["options"] is None else tuple(json.loads(row["options"])),
        overlap=row["overlap"],
        reward=row["reward"],
        created_at=row["created_at"],
        published_at=row["published_at"],
        median_ms=row["median_ms"],
        # The settings as stored: a batch from before aggregation was a setting names none.
        method=json.loads(row["settings"]).get("aggregation") or "",
        recent_answers=row["recent"],
        items=row["items"] or 0,
        gold_items=row["gold"] or 0,
        items_done=row["done"] or 0,
        answers_counted=row["counted"] or 0,
        answers_needed=row["needed"] or 0,
        answers_missing=row["missing"] or 0,
        answers=row["stored"],
        answers_excluded=row["excluded"],
        spent=float(row["spent"]),
        completed_at=row["completed_at"],
        workers=row["workers"] or 0,
        open_tasks=row["open_tasks"],
        suspended=row["suspended"] or 0,
        gold_answers=row["gold_answers"] or 0,
        gold_correct=row["gold_correct"] or 0,
        fast_answers=row["fast"] or 0,
    )
