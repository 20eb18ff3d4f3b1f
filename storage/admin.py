"""Coordinators' roles, bans and the audit log; the workers' table for coordinators."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from storage.db import Database


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One worker as a coordinator sees them: work, quality and what they are owed."""

    worker_id: int
    name: str
    status: str
    reachable: bool
    answers: int
    gold_answers: int
    gold_correct: int
    earned: float
    seconds_worked: float

    @property
    def accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answers if self.gold_answers else None

    @property
    def hourly_rate(self) -> float | None:
        return self.earned / self.seconds_worked * 3600 if self.seconds_worked > 0 else None


class AdminStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def is_promoted(self, user_id: int) -> bool:
        found = await self.db.fetchval(
            "SELECT 1 FROM coordinators WHERE user_id = ?", (user_id,)
        )
        return found is not None

    async def promote(self, user_id: int, by: int, now: float) -> bool:
        """Returns False when the user already was a promoted coordinator."""
        async with self.db.atomic() as conn:
            cursor = await conn.execute(
                "INSERT INTO coordinators (user_id, promoted_by, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (user_id) DO NOTHING",
                (user_id, by, now),
            )
            if cursor.rowcount:
                await self._log(conn, by, "promote", user_id, None, now)
            return cursor.rowcount == 1

    async def demote(self, user_id: int, by: int, now: float) -> bool:
        async with self.db.atomic() as conn:
            cursor = await conn.execute("DELETE FROM coordinators WHERE user_id = ?", (user_id,))
            if cursor.rowcount:
                await self._log(conn, by, "demote", user_id, None, now)
            return cursor.rowcount == 1

    async def set_banned(
        self, worker_id: int, banned: bool, by: int | None, reason: str | None, now: float
    ) -> bool:
        """Bans or unbans a worker in every batch; False when the worker is unknown or
        already in that state. A ban also hands the worker's open task back to the pool."""
        status, previous = ("banned", "active") if banned else ("active", "banned")
        async with self.db.atomic() as conn:
            cursor = await conn.execute(
                "UPDATE workers SET status = ? WHERE id = ? AND status = ?",
                (status, worker_id, previous),
            )
            if cursor.rowcount != 1:
                return False
            if banned:
                await conn.execute(
                    "UPDATE items SET wanted = wanted + 1 WHERE id IN (SELECT item_id"
                    " FROM assignments WHERE worker_id = ? AND status = 'open' AND kind = 'task')",
                    (worker_id,),
                )
                await conn.execute(
                    "UPDATE assignments SET status = 'expired', closed_at = ?"
                    " WHERE worker_id = ? AND status = 'open'",
                    (now, worker_id),
                )
            await self._log(conn, by, "ban" if banned else "unban", worker_id, reason, now)
            return True

    async def log(self, actor: int | None, action: str, subject: int | None,
                  reason: str | None, now: float) -> None:
        async with self.db.atomic() as conn:
            await self._log(conn, actor, action, subject, reason, now)

    async def workers(self, batch_id: int | None = None, limit: int = 10_000) -> list[WorkerRow]:
        """Workers with their answers, gold accuracy and earnings, in one batch or in all."""
        rows = await self.db.fetchall(
            """
            SELECT w.id, w.name, w.status, w.reachable,
                   COUNT(a.id), COALESCE(SUM(a.correct IS NOT NULL), 0),
                   COALESCE(SUM(a.correct), 0),
                   COALESCE((SELECT SUM(amount) FROM ledger l WHERE l.worker_id = w.id
                             AND (:batch IS NULL OR l.batch_id = :batch)), 0),
                   COALESCE(SUM(a.duration_ms), 0) / 1000.0
            FROM workers w
            LEFT JOIN answers a ON a.worker_id = w.id AND (:batch IS NULL OR a.batch_id = :batch)
            GROUP BY w.id
            HAVING :batch IS NULL OR COUNT(a.id) > 0
            ORDER BY COUNT(a.id) DESC, w.id
            LIMIT :limit
            """,
            {"batch": batch_id, "limit": limit},
        )
        return [
            WorkerRow(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6],
                      float(row[7]), float(row[8]))
            for row in rows
        ]

    @staticmethod
    async def _log(
        conn: aiosqlite.Connection,
        actor: int | None,
        action: str,
        subject: int | None,
        reason: str | None,
        now: float,
    ) -> None:
        await conn.execute(
            "INSERT INTO audit_log (actor_id, action, subject_id, reason, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (actor, action, subject, reason, now),
        )
