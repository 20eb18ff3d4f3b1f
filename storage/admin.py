"""Coordinators' roles, bans and the audit log; the workers' table for coordinators."""

from __future__ import annotations

from collections.abc import Iterable

from storage.engine import Engine, Tx
from storage.standing import release_open_tasks


def counts_as_worker(alias: str) -> str:
    """SQL true for a row of workers (`alias`) who counts as a worker. Coordinators are in that
    table because they wrote to the bot; they count (in lists, in announcements) only once
    they label. Reads the owners, who have no row of their own, from the :owners parameter
    (see `owners_parameter`)."""
    return (
        f"(EXISTS (SELECT 1 FROM worker_batches wb WHERE wb.worker_id = {alias}.id"
        "   AND wb.answers > 0)"
        # Not an owner: their id, between commas, is not in the list. Plain text functions,
        # the same on both engines (neither shares the other's way to read a JSON list).
        f" OR (replace(:owners, ',' || {alias}.id || ',', '') = :owners"
        f"   AND NOT EXISTS (SELECT 1 FROM coordinators c WHERE c.user_id = {alias}.id)))"
    )


def owners_parameter(owners: Iterable[int]) -> str:
    """The owners (COORDINATOR_IDS) as `counts_as_worker` reads them: ',1,2,'."""
    return "," + "".join(f"{int(owner)}," for owner in sorted(owners))


def _audit(
    tx: Tx, actor: int | None, action: str, subject: int | None, reason: str | None, now: float
) -> None:
    """Writes one line of the audit log."""
    tx.execute(
        "INSERT INTO audit_log (actor_id, action, subject_id, reason, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (actor, action, subject, reason, now),
    )


def _demote(tx: Tx, user_id: int, by: int | None, now: float) -> bool:
    """Takes a promoted coordinator's role away; False when they had none."""
    if tx.execute("DELETE FROM coordinators WHERE user_id = ?", (user_id,)) != 1:
        return False
    _audit(tx, by, "demote", user_id, None, now)
    return True


class AdminStore:
    def __init__(self, db: Engine) -> None:
        self.db = db

    async def roles(self, user_id: int) -> tuple[bool, bool]:
        """Whether the user was promoted to coordinator, and whether they are banned."""
        rows = await self.db.read(
            "SELECT EXISTS (SELECT 1 FROM coordinators WHERE user_id = :u) AS promoted,"
            " EXISTS (SELECT 1 FROM workers WHERE id = :u AND status = 'banned') AS banned",
            {"u": user_id},
        )
        return bool(rows[0]["promoted"]), bool(rows[0]["banned"])

    async def promote(self, user_id: int, by: int, now: float) -> bool:
        """Returns False when the user already was a promoted coordinator."""

        def change(tx: Tx) -> bool:
            # Two owners promoting at once on two replicas: the second insert waits for the
            # first and then does nothing, so the log says it once.
            added = tx.execute(
                "INSERT INTO coordinators (user_id, promoted_by, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (user_id) DO NOTHING",
                (user_id, by, now),
            )
            if added == 1:
                _audit(tx, by, "promote", user_id, None, now)
            return added == 1

        return await self.db.run(change)

    async def demote(self, user_id: int, by: int, now: float) -> bool:
        """Returns False when the user was not a promoted coordinator."""
        return await self.db.run(lambda tx: _demote(tx, user_id, by, now))

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

        def change(tx: Tx) -> bool:
            changed = tx.execute(
                "UPDATE workers SET status = ? WHERE id = ? AND status = ?",
                (status, worker_id, previous),
            )
            if changed != 1:
                return False
            if banned:
                release_open_tasks(tx, worker_id, now)
            _audit(tx, by, "ban" if banned else "unban", worker_id, reason, now)
            if banned and demote:
                _demote(tx, worker_id, by, now)
            return True

        return await self.db.run(change)

    async def log(
        self, actor: int | None, action: str, subject: int | None, reason: str | None, now: float
    ) -> None:
        await self.db.run(lambda tx: _audit(tx, actor, action, subject, reason, now))
