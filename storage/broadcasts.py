"""Announcements to workers and the record of who has been told."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from storage.admin import counts_as_worker, owners_parameter
from storage.db import Database, records

# The workers broadcast :b has still to tell. Every broadcast reaches active workers who want
# announcements and have not blocked the bot (coordinators only once they label); one whose
# audience is 'batch' (a batch back after a pause) only those who worked in its batch or were
# told of it, and are not shut out of it.
UNTOLD = f"""
    FROM workers w JOIN broadcasts bc ON bc.id = :b
    WHERE w.status = 'active' AND w.notify = 1 AND w.reachable = 1 AND {counts_as_worker("w")}
    AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.broadcast_id = :b AND d.worker_id = w.id)
    AND (bc.audience = 'all' OR (
        NOT EXISTS (SELECT 1 FROM worker_batches wb WHERE wb.worker_id = w.id
                    AND wb.batch_id = bc.batch_id AND wb.status != 'active')
        AND (EXISTS (SELECT 1 FROM worker_batches wb WHERE wb.worker_id = w.id
                     AND wb.batch_id = bc.batch_id)
             OR EXISTS (SELECT 1 FROM broadcasts o JOIN deliveries d ON d.broadcast_id = o.id
                        WHERE o.batch_id = bc.batch_id AND o.id != bc.id AND d.worker_id = w.id
                        AND d.status IN ('sent', 'unknown')))))
"""


@dataclass(frozen=True, slots=True)
class Broadcast:
    broadcast_id: int
    batch_id: int | None
    text: str
    created_by: int | None
    paid: bool
    progress_message_id: int | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one send: 'sent', or 'failed' with the reason."""

    worker_id: int
    status: str
    error: str | None = None
    unreachable: bool = False  # the worker blocked the bot


@dataclass(frozen=True, slots=True)
class Notice:
    """A message to one worker about their standing in a batch, or to a coordinator about
    their batch (`to_worker` False, with its `text` composed when it was queued)."""

    notice_id: int
    chat_id: int
    kind: str
    batch_name: str
    text: str | None = None
    to_worker: bool = True


class BroadcastStore:
    def __init__(self, db: Database, *, owners: Iterable[int] = ()) -> None:
        self.db = db
        self.owners = owners_parameter(owners)

    async def unfinished(self) -> list[Broadcast]:
        rows = await self.db.fetchall(
            "SELECT id, batch_id, text, created_by, paid, progress_message_id FROM broadcasts"
            " WHERE finished_at IS NULL ORDER BY id"
        )
        return [Broadcast(row[0], row[1], row[2], row[3], bool(row[4]), row[5]) for row in rows]

    async def settle_interrupted(self, now: float) -> int:
        """After a restart: messages that were in flight when the bot stopped may or may not
        have arrived. They are marked 'unknown' and never sent again: telling a worker twice
        is worse than one missed announcement."""
        async with self.db.atomic() as conn:
            cursor = await conn.execute(
                "UPDATE deliveries SET status = 'unknown', updated_at = ? WHERE status = 'sending'",
                (now,),
            )
            notices = await conn.execute(
                "UPDATE notices SET status = 'unknown', updated_at = ? WHERE status = 'sending'",
                (now,),
            )
            return cursor.rowcount + notices.rowcount

    async def audience(self, broadcast_id: int) -> int:
        """Workers this broadcast reaches: those told already and those still to tell."""
        value = await self.db.fetchval(
            "SELECT (SELECT COUNT(*) FROM deliveries WHERE broadcast_id = :b)"
            f" + (SELECT COUNT(*) {UNTOLD})",
            {"b": broadcast_id, "owners": self.owners},
        )
        return int(value)

    async def untold(self, broadcast_id: int, limit: int) -> list[int]:
        """Workers this broadcast has not yet been sent to (nor is being sent to)."""
        rows = await self.db.fetchall(
            f"SELECT w.id {UNTOLD} ORDER BY w.id LIMIT :limit",
            {"b": broadcast_id, "limit": limit, "owners": self.owners},
        )
        return [row[0] for row in rows]

    async def claim(self, broadcast_id: int, worker_id: int, now: float) -> bool:
        """Marks a worker as being told, just before the message goes out; False when another
        run has them already.

        The mark is written before anything is sent, so after a crash mid-send a worker may
        miss one announcement but is never told twice; and it is written for one send at a
        time, so a crash leaves in doubt only the sends actually under way.
        """
        async with self.db.atomic() as conn:
            cursor = await conn.execute(
                "INSERT INTO deliveries (broadcast_id, worker_id, status, updated_at)"
                " VALUES (?, ?, 'sending', ?) ON CONFLICT DO NOTHING",
                (broadcast_id, worker_id, now),
            )
            return cursor.rowcount == 1

    async def record(self, broadcast_id: int, deliveries: Sequence[Delivery], now: float) -> None:
        """Writes the outcomes of many sends in one transaction."""
        if not deliveries:
            return
        async with self.db.atomic() as conn:
            await conn.executemany(
                "UPDATE deliveries SET status = ?, error = ?, updated_at = ?"
                " WHERE broadcast_id = ? AND worker_id = ? AND status = 'sending'",
                [(d.status, d.error, now, broadcast_id, d.worker_id) for d in deliveries],
            )
            await conn.executemany(
                "UPDATE workers SET reachable = 0 WHERE id = ?",
                [(d.worker_id,) for d in deliveries if d.unreachable],
            )

    async def release(self, broadcast_id: int, workers: Sequence[int]) -> None:
        """Forgets claims on workers who were never sent anything, so they are claimed again."""
        async with self.db.atomic() as conn:
            await conn.executemany(
                "DELETE FROM deliveries WHERE broadcast_id = ? AND worker_id = ?"
                " AND status = 'sending'",
                [(broadcast_id, worker_id) for worker_id in workers],
            )

    async def set_progress_message(self, broadcast_id: int, message_id: int) -> None:
        async with self.db.atomic() as conn:
            await conn.execute(
                "UPDATE broadcasts SET progress_message_id = ? WHERE id = ?",
                (message_id, broadcast_id),
            )

    async def finish(self, broadcast_id: int, now: float) -> None:
        async with self.db.atomic() as conn:
            await conn.execute(
                "UPDATE broadcasts SET finished_at = ? WHERE id = ?", (now, broadcast_id)
            )

    async def counts(self, broadcast_id: int) -> dict[str, int]:
        rows = await self.db.fetchall(
            "SELECT status, COUNT(*) FROM deliveries WHERE broadcast_id = ? GROUP BY status",
            (broadcast_id,),
        )
        return {row[0]: row[1] for row in rows}

    async def claim_notices(self, now: float, limit: int) -> list[Notice]:
        """Queued notices, marked as being sent before anything is sent (as with claim)."""
        async with self.db.atomic() as conn:
            rows = await records(
                conn,
                "SELECT n.id, COALESCE(n.worker_id, n.coordinator_id) AS chat, n.kind, n.text,"
                " n.worker_id IS NOT NULL AS to_worker, COALESCE(b.name, '') AS name"
                " FROM notices n LEFT JOIN batches b ON b.id = n.batch_id"
                " WHERE n.status = 'queued' ORDER BY n.id LIMIT ?",
                (limit,),
            )
            await conn.executemany(
                "UPDATE notices SET status = 'sending', updated_at = ? WHERE id = ?",
                [(now, row["id"]) for row in rows],
            )
            return [
                Notice(
                    row["id"],
                    row["chat"],
                    row["kind"],
                    row["name"],
                    row["text"],
                    bool(row["to_worker"]),
                )
                for row in rows
            ]

    async def record_notice(
        self, notice: Notice, status: str, now: float, *, unreachable: bool = False
    ) -> None:
        async with self.db.atomic() as conn:
            await conn.execute(
                "UPDATE notices SET status = ?, updated_at = ? WHERE id = ? AND status = 'sending'",
                (status, now, notice.notice_id),
            )
            if unreachable and notice.to_worker:  # they blocked the bot: nothing more for them
                await conn.execute(
                    "UPDATE workers SET reachable = 0 WHERE id = ?", (notice.chat_id,)
                )
