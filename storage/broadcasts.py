"""Announcements to workers and the record of who has been told."""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import Database


@dataclass(frozen=True, slots=True)
class Broadcast:
    broadcast_id: int
    batch_id: int | None
    text: str


class BroadcastStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def unfinished(self) -> list[Broadcast]:
        rows = await self.db.fetchall(
            "SELECT id, batch_id, text FROM broadcasts WHERE finished_at IS NULL ORDER BY id"
        )
        return [Broadcast(*row) for row in rows]

    async def claim(self, broadcast_id: int, now: float, limit: int) -> list[int]:
        """Picks workers not yet told and marks them as being told, in one transaction.

        The mark is written before anything is sent: after a crash mid-send, a worker may miss
        one announcement but is never told twice.
        """
        async with self.db.atomic() as conn:
            rows = await conn.execute_fetchall(
                "SELECT w.id FROM workers w"
                " WHERE w.status = 'active' AND w.notify = 1 AND w.reachable = 1"
                " AND NOT EXISTS (SELECT 1 FROM deliveries d"
                "   WHERE d.broadcast_id = ? AND d.worker_id = w.id)"
                " ORDER BY w.id LIMIT ?",
                (broadcast_id, limit),
            )
            workers = [row[0] for row in rows]
            await conn.executemany(
                "INSERT INTO deliveries (broadcast_id, worker_id, status, updated_at)"
                " VALUES (?, ?, 'sending', ?)",
                [(broadcast_id, worker_id, now) for worker_id in workers],
            )
            return workers

    async def delivered(
        self, broadcast_id: int, worker_id: int, now: float, error: str | None = None
    ) -> None:
        async with self.db.atomic() as conn:
            await conn.execute(
                "UPDATE deliveries SET status = ?, error = ?, updated_at = ?"
                " WHERE broadcast_id = ? AND worker_id = ?",
                ("sent" if error is None else "failed", error, now, broadcast_id, worker_id),
            )

    async def unreachable(self, worker_id: int) -> None:
        """A worker who blocked the bot is not messaged again until they come back."""
        async with self.db.atomic() as conn:
            await conn.execute("UPDATE workers SET reachable = 0 WHERE id = ?", (worker_id,))

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
