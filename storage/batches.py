"""Batches and their items: creation, state changes, progress and the rows behind exports."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Sequence

from labeling.batch import BatchSettings, ItemRow
from labeling.gold import new_rank, new_seed
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
from storage.db import Database
from storage.standing import trust_of

# Items stored per transaction while a batch file is imported: a few milliseconds each.
IMPORT_CHUNK = 2000


class BatchStore:
    def __init__(self, db: Database, *, owners: Iterable[int] = ()) -> None:
        self.db = db
        self.owners = owners_parameter(owners)  # COORDINATOR_IDS

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
        is cancelled half way, what was stored is removed again.

        Gold items stay out of the pool (the gold schedule hands them out); the first
        `training_gold` of them are the batch's training items."""
        gold_positions = [p for p, item in enumerate(items, start=1) if item.gold is not None]
        exam = set(gold_positions[: settings.training_gold])
        async with self.db.atomic() as conn:
            cursor = await conn.execute(
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
                    len(gold_positions) - len(exam),
                    len(gold_positions) - len(exam),
                    source_file,
                    new_seed(),
                ),
            )
            batch_id = cursor.lastrowid
            assert batch_id is not None
        try:
            for first in range(0, len(items), IMPORT_CHUNK):
                chunk = items[first : first + IMPORT_CHUNK]
                async with self.db.atomic() as conn:
                    await conn.executemany(
                        "INSERT INTO items (batch_id, position, external_id, text, image, gold,"
                        " explanation, metadata, exam, target, wanted, gold_rank)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            (
                                batch_id,
                                position,
                                item.external_id,
                                item.text,
                                item.image,
                                item.gold,
                                item.explanation,
                                json.dumps(item.metadata, ensure_ascii=False, default=str),
                                int(position in exam),
                                settings.overlap,
                                0 if item.gold is not None else settings.overlap,
                                None if item.gold is None else new_rank(),
                            )
                            for position, item in enumerate(chunk, start=first + 1)
                        ),
                    )
            async with self.db.atomic() as conn:
                await conn.execute("UPDATE batches SET importing = 0 WHERE id = ?", (batch_id,))
        except BaseException:
            await asyncio.shield(self._remove(batch_id))
            raise
        return batch_id

    async def discard_unfinished(self, before: float) -> list[int]:
        """Removes batches whose import began before `before` and never ended (the process
        stopped half way); returns their ids."""
        rows = await self.db.fetchall(
            "SELECT id FROM batches WHERE importing = 1 AND created_at < ?", (before,)
        )
        for (batch_id,) in rows:
            await self._remove(batch_id)
        return [row[0] for row in rows]

    async def _remove(self, batch_id: int) -> None:
        """Deletes a batch that is still importing, a chunk of items per transaction."""
        while True:
            async with self.db.atomic() as conn:
                cursor = await conn.execute(
                    "DELETE FROM items WHERE id IN (SELECT id FROM items WHERE batch_id = ?"
                    " LIMIT ?) AND EXISTS (SELECT 1 FROM batches WHERE id = ? AND importing)",
                    (batch_id, IMPORT_CHUNK, batch_id),
                )
                if cursor.rowcount == 0:
                    await conn.execute(
                        "DELETE FROM batches WHERE id = ? AND importing", (batch_id,)
                    )
                    return

    async def by_source_file(self, source_file: str) -> int | None:
        """The newest batch made from this uploaded file, if one was: stored as the file's id,
        or as '<file id>:<update id>' when imported again (a range of the index, so it is
        found either way)."""
        value = await self.db.fetchval(
            "SELECT MAX(id) FROM batches WHERE source_file = :f"
            " OR (source_file > :f || ':' AND source_file < :f || ';')",
            {"f": source_file},
        )
        return None if value is None else int(value)

    async def get(self, batch_id: int) -> StoredBatch:
        row = await self.db.fetchone(
            "SELECT settings, status FROM batches WHERE id = ? AND NOT importing", (batch_id,)
        )
        if row is None:
            raise BatchNotFound(batch_id)
        return StoredBatch(batch_id, BatchSettings.model_validate_json(row[0]), BatchStatus(row[1]))

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
        """Changes a batch's state; returns the previous one. `announce` queues a broadcast
        to the `audience` (storage.broadcasts) in the same transaction, so an opened batch is
        always announced."""
        async with self.db.atomic() as conn:
            rows = await conn.execute_fetchall(
                "SELECT status FROM batches WHERE id = ? AND NOT importing", (batch_id,)
            )
            if not rows:
                raise BatchNotFound(batch_id)
            previous = BatchStatus(next(iter(rows))[0])
            await conn.execute(
                "UPDATE batches SET status = ?,"
                " published_at = CASE WHEN ? = 'open' THEN COALESCE(published_at, ?)"
                "  ELSE published_at END,"
                " closed_at = CASE WHEN ? = 'closed' THEN ? ELSE closed_at END"
                " WHERE id = ?",
                (status.value, status.value, now, status.value, now, batch_id),
            )
            if announce is not None:
                await conn.execute(
                    "INSERT INTO broadcasts (batch_id, text, created_at, created_by, paid,"
                    " audience) VALUES (?, ?, ?, ?, ?, ?)",
                    (batch_id, announce, now, by, int(paid), audience),
                )
            return previous

    async def announce(
        self, text: str, now: float, *, by: int | None = None, source: str | None = None
    ) -> bool:
        """Queues an announcement; False when `source` (the message that asked for it) has
        queued one already."""
        async with self.db.atomic() as conn:
            cursor = await conn.execute(
                "INSERT INTO broadcasts (text, created_at, created_by, source_message)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (source_message)"
                " WHERE source_message IS NOT NULL DO NOTHING",
                (text, now, by, source),
            )
            return cursor.rowcount == 1

    async def summaries(
        self, batch_id: int | None = None, *, since: float | None = None
    ) -> list[BatchSummary]:
        """Each batch's counts; with `since`, also the answers on ordinary items from then on,
        for the batch's current rate."""
        # Every count comes from a counter or an index, never from scanning the answers, and
        # it is read through the reading connection: /status on a batch of a million answers
        # neither waits for the workers' taps nor makes them wait.
        rows = await self.db.read(
            """
            SELECT b.id, b.name, b.status, b.question, b.options, b.overlap, b.reward,
                   b.created_at, b.published_at, b.median_ms,
                   json_extract(b.settings, '$.aggregation') AS method,
                   CASE WHEN :since IS NULL THEN 0 ELSE
                     (SELECT COUNT(*) FROM answers a INDEXED BY answers_batch
                      JOIN items i ON i.id = a.item_id
                      WHERE a.batch_id = b.id AND a.created_at >= :since AND i.gold IS NULL)
                   END AS recent,
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
                         SUM(gold IS NULL) AS items, SUM(gold IS NOT NULL) AS gold,
                         SUM(gold IS NULL AND answers >= target) AS done,
                         SUM(CASE WHEN gold IS NULL THEN answers END) AS counted,
                         SUM(CASE WHEN gold IS NULL THEN target END) AS needed,
                         SUM(CASE WHEN gold IS NULL THEN MAX(target - answers, 0) END)
                           AS missing
                  FROM items WHERE :batch IS NULL OR batch_id = :batch
                  GROUP BY batch_id) i ON i.batch_id = b.id
            LEFT JOIN (SELECT batch_id, SUM(status = 'suspended') AS suspended,
                              SUM(answers > 0) AS workers,
                              SUM(gold_answers) AS gold_answers,
                              SUM(gold_correct) AS gold_correct, SUM(fast_answers) AS fast
                       FROM worker_batches WHERE :batch IS NULL OR batch_id = :batch
                       GROUP BY batch_id) w ON w.batch_id = b.id
            WHERE (:batch IS NULL OR b.id = :batch) AND NOT b.importing
            ORDER BY b.id
            """,
            {"batch": batch_id, "since": since},
        )
        if batch_id is not None and not rows:
            raise BatchNotFound(batch_id)
        return [
            BatchSummary(
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
                method=row["method"] or "",
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
            for row in rows
        ]

    async def votes(self, batch_id: int) -> list[tuple[int, str, int]]:
        """How many counted answers gave each value to each ordinary item, as (item, value,
        count): what agreement needs, a few rows per item rather than one per answer."""
        rows = await self.db.read(
            "SELECT a.item_id, a.value, COUNT(*) AS n FROM answers a"
            " JOIN items i ON i.id = a.item_id AND i.gold IS NULL"
            " LEFT JOIN worker_batches wb ON wb.worker_id = a.worker_id"
            "  AND wb.batch_id = a.batch_id"
            " WHERE a.batch_id = ? AND wb.status IS NOT 'suspended'"
            " GROUP BY a.item_id, a.value",
            (batch_id,),
        )
        return [(row["item_id"], row["value"], row["n"]) for row in rows]

    async def worker_rows(
        self, batch_id: int | None = None, limit: int = 10_000
    ) -> list[WorkerRow]:
        """Workers with their answers, gold accuracy and earnings, in one batch or in all."""
        rows = await self.db.read(
            f"""
            SELECT w.id, w.name, w.reachable,
                   -- In one batch, a ban first, then the standing there (suspended, failed).
                   CASE WHEN w.status = 'banned' OR :batch IS NULL THEN w.status
                        ELSE COALESCE(wb.status, 'active') END AS status,
                   CASE WHEN wb.status IN ('suspended', 'failed') THEN wb.reason END AS reason,
                   COUNT(a.id) AS answers, COALESCE(SUM(a.correct IS NOT NULL), 0) AS gold,
                   COALESCE(SUM(a.correct), 0) AS correct,
                   COALESCE((SELECT SUM(amount) FROM ledger l WHERE l.worker_id = w.id
                             AND (:batch IS NULL OR l.batch_id = :batch)), 0) AS earned,
                   COALESCE(SUM(a.duration_ms), 0) / 1000.0 AS seconds
            FROM workers w
            LEFT JOIN answers a ON a.worker_id = w.id AND (:batch IS NULL OR a.batch_id = :batch)
            LEFT JOIN worker_batches wb ON wb.worker_id = w.id AND wb.batch_id = :batch
            GROUP BY w.id
            HAVING COUNT(a.id) > 0 OR (:batch IS NULL AND {counts_as_worker("w")})
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
            "SELECT MIN(created_at), MAX(created_at) FROM answers WHERE batch_id = ?",
            (batch_id,),
        )
        if not span or span[0][0] is None:
            return []
        start, end = span[0]
        width = max((end - start) / buckets, 1e-6)
        rows = await self.db.read(
            "SELECT CAST((created_at - :start) / :width AS INTEGER) AS bucket, COUNT(*) AS n"
            " FROM (SELECT a.created_at, i.target, ROW_NUMBER() OVER"
            "   (PARTITION BY a.item_id ORDER BY a.created_at, a.id) AS nth"
            "  FROM answers a JOIN items i ON i.id = a.item_id"
            "  LEFT JOIN worker_batches wb ON wb.worker_id = a.worker_id"
            "   AND wb.batch_id = a.batch_id"
            "  WHERE a.batch_id = :batch AND i.gold IS NULL AND wb.status IS NOT 'suspended')"
            " WHERE nth <= target GROUP BY bucket ORDER BY bucket",
            {"start": start, "width": width, "batch": batch_id},
        )
        series, total = [(start, 0)], 0
        for row in rows:
            total += row["n"]
            series.append((min(end, start + (row["bucket"] + 1) * width), total))
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
            " a.created_at, i.gold IS NOT NULL, a.correct, a.fast,"
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
