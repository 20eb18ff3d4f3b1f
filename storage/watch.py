"""The state behind what coordinators are told without asking (labeling.watch), and its
notices, queued in the same transaction as the mark that they were."""

from __future__ import annotations

from collections.abc import Sequence

from labeling.watch import Suspended, Watched
from storage.engine import Engine, Tx


class WatchStore:
    def __init__(self, db: Engine) -> None:
        self.db = db

    async def watched(self) -> list[Watched]:
        """Open and paused batches. Whether an item still lacks answers is asked only of a
        batch not yet complete, and stops at the first such item."""
        rows = await self.db.read(
            """
            SELECT b.id, b.name, b.created_by, b.digest_at, b.completed_at IS NOT NULL AS done,
                   EXISTS (SELECT 1 FROM items i WHERE i.batch_id = b.id AND i.gold IS NULL)
                     AS has_items,
                   CASE WHEN b.completed_at IS NULL THEN
                     EXISTS (SELECT 1 FROM items i WHERE i.batch_id = b.id AND i.gold IS NULL
                             AND i.answers < i.target)
                   ELSE FALSE END AS unanswered,
                   (SELECT COUNT(*) FROM worker_batches wb WHERE wb.batch_id = b.id
                    AND wb.status = 'suspended'
                    AND (wb.reported_at IS NULL OR wb.reported_at < wb.changed_at)) AS pending
            FROM batches b
            WHERE b.status IN ('open', 'paused') AND b.importing = 0
            ORDER BY b.id
            """
        )
        return [
            Watched(
                row["id"],
                row["name"],
                row["created_by"],
                bool(row["has_items"]),
                bool(row["unanswered"]),
                bool(row["done"]),
                row["digest_at"],
                row["pending"],
            )
            for row in rows
        ]

    async def unreported(self, batch_id: int) -> list[Suspended]:
        """Workers suspended from the batch since a digest last listed them, in that order."""
        rows = await self.db.read(
            "SELECT wb.worker_id, w.name, wb.reason, wb.changed_at FROM worker_batches wb"
            " JOIN workers w ON w.id = wb.worker_id"
            " WHERE wb.batch_id = ? AND wb.status = 'suspended'"
            " AND (wb.reported_at IS NULL OR wb.reported_at < wb.changed_at)"
            " ORDER BY wb.changed_at, wb.worker_id",
            (batch_id,),
        )
        return [
            Suspended(row["worker_id"], row["name"], row["reason"], row["changed_at"])
            for row in rows
        ]

    async def complete(
        self, batch_id: int, recipients: Sequence[int], text: str, now: float
    ) -> bool:
        """Marks the batch complete and queues its notices, once: False when it was marked
        already (by an earlier round, or another replica's)."""

        def change(tx: Tx) -> bool:
            marked = tx.execute(
                "UPDATE batches SET completed_at = ? WHERE id = ? AND completed_at IS NULL",
                (now, batch_id),
            )
            if marked != 1:
                return False
            _queue(tx, batch_id, "completed", recipients, text, now)
            return True

        return await self.db.run(change)

    async def digested(
        self,
        batch_id: int,
        since: float | None,
        recipients: Sequence[int],
        text: str,
        workers: Sequence[Suspended],
        now: float,
    ) -> bool:
        """Queues a digest and marks the suspensions it lists as reported (as of when each
        began: a later one is new), in one transaction. `since` is when the last digest went
        out as the round read it: False, and nothing queued, when another round (another
        replica's) has sent one since."""

        def change(tx: Tx) -> bool:
            marked = tx.execute(
                "UPDATE batches SET digest_at = ?"
                " WHERE id = ? AND digest_at IS NOT DISTINCT FROM ?",
                (now, batch_id, since),
            )
            if marked != 1:
                return False
            for worker in workers:
                tx.execute(
                    "UPDATE worker_batches SET reported_at = ?"
                    " WHERE worker_id = ? AND batch_id = ?",
                    (worker.changed_at, worker.worker_id, batch_id),
                )
            _queue(tx, batch_id, "suspensions", recipients, text, now)
            return True

        return await self.db.run(change)


def _queue(
    tx: Tx, batch_id: int, kind: str, recipients: Sequence[int], text: str, now: float
) -> None:
    for coordinator in recipients:
        tx.execute(
            "INSERT INTO notices (coordinator_id, batch_id, kind, text, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (coordinator, batch_id, kind, text, now),
        )
