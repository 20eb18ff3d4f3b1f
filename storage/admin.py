"""Coordinators' roles, bans and the audit log; the workers' table for coordinators."""

from __future__ import annotations

import json
from collections.abc import Iterable

import aiosqlite

from storage.db import Database, run_on
from storage.standing import release_open_tasks


def counts_as_worker(alias: str) -> str:
    """SQL true for a row of workers (`alias`) who counts as a worker. Coordinators are in that
    table because they wrote to the bot; they count (in lists, in announcements) only once
    they label. Reads the owners, who have no row of their own, from the :owners parameter
    (see `owners_parameter`)."""
    return (
        f"(EXISTS (SELECT 1 FROM worker_batches wb WHERE wb.worker_id = {alias}.id"
        "   AND wb.answers > 0)"
        f" OR ({alias}.id NOT IN (SELECT value FROM json_each(:owners))"
        f"   AND NOT EXISTS (SELECT 1 FROM coordinators c WHERE c.user_id = {alias}.id)))"
    )


def owners_parameter(owners: Iterable[int]) -> str:
    """The owners (COORDINATOR_IDS) as `counts_as_worker` reads them."""
    return json.dumps(sorted(owners))


class AdminStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def roles(self, user_id: int) -> tuple[bool, bool]:
        """Whether the user was promoted to coordinator, and whether they are banned."""
        promoted = await self.db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM coordinators WHERE user_id = ?)", (user_id,)
        )
        banned = await self.db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM workers WHERE id = ? AND status = 'banned')", (user_id,)
        )
        return bool(promoted), bool(banned)

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
        """Returns False when the user was not a promoted coordinator."""
        async with self.db.atomic() as conn:
            return await self._demote(conn, user_id, by, now)

    async def set_banned(
        self,
        worker_id: int,
        banned: bool,
        by: int | None,
        reason: str | None,
        now: float,
        *,
        demote: bool = False,
    ) -> bool:
        """Bans or unbans a worker in every batch; False when the worker is unknown or
        already in that state. A ban also hands the worker's open task back to the pool, and
        with `demote` takes their coordinator role away in the same transaction."""
        status, previous = ("banned", "active") if banned else ("active", "banned")
        async with self.db.atomic() as conn:
            cursor = await conn.execute(
                "UPDATE workers SET status = ? WHERE id = ? AND status = ?",
                (status, worker_id, previous),
            )
            if cursor.rowcount != 1:
                return False
            if banned:
                await run_on(conn, lambda tx: release_open_tasks(tx, worker_id, now))
            await self._log(conn, by, "ban" if banned else "unban", worker_id, reason, now)
            if banned and demote:
                await self._demote(conn, worker_id, by, now)
            return True

    async def log(
        self, actor: int | None, action: str, subject: int | None, reason: str | None, now: float
    ) -> None:
        async with self.db.atomic() as conn:
            await self._log(conn, actor, action, subject, reason, now)

    @classmethod
    async def _demote(
        cls, conn: aiosqlite.Connection, user_id: int, by: int | None, now: float
    ) -> bool:
        cursor = await conn.execute("DELETE FROM coordinators WHERE user_id = ?", (user_id,))
        if cursor.rowcount:
            await cls._log(conn, by, "demote", user_id, None, now)
        return cursor.rowcount == 1

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
