"""A worker's standing in a batch: suspension and reinstatement, with their answers counted
out of or back into their items' tallies."""

from __future__ import annotations

import aiosqlite

from labeling.gold import Peers
from labeling.quality import Suspension, Trust
from storage.db import Record


def trust_of(row: Record) -> Trust:
    """A worker's record in a batch from a worker_batches row read by name."""
    return Trust(
        row["answers"],
        row["gold_answers"],
        row["gold_correct"],
        row["fast_answers"],
        row["judged"],
        Peers(row["peer_below"], row["peer_guessing"], row["peer_checks"], row["peer_agreed"]),
    )


async def suspend(
    conn: aiosqlite.Connection, worker_id: int, batch_id: int, verdict: Suspension, now: float
) -> None:
    """Stops a worker in one batch. Their answers stay stored (flagged in the export) but
    no longer count, so the items they answered go back to the pool, as does a task they hold
    there (suspended between taps, by the upkeep or a review, they would be stuck with it)."""
    await conn.execute(  # a worker closed out before their first task has no row yet
        "INSERT INTO worker_batches (worker_id, batch_id) VALUES (?, ?)"
        " ON CONFLICT (worker_id, batch_id) DO NOTHING",
        (worker_id, batch_id),
    )
    await conn.execute(
        "UPDATE worker_batches SET status = 'suspended', cause = ?, reason = ?, changed_at = ?"
        " WHERE worker_id = ? AND batch_id = ?",
        (verdict.cause, verdict.reason, now, worker_id, batch_id),
    )
    await _recount(conn, worker_id, batch_id, -1)
    await conn.execute(
        "UPDATE items SET wanted = wanted + 1 WHERE id IN (SELECT item_id FROM assignments"
        " WHERE worker_id = ? AND batch_id = ? AND status = 'open' AND kind = 'task')",
        (worker_id, batch_id),
    )
    await conn.execute(
        "UPDATE assignments SET status = 'expired', closed_at = ?"
        " WHERE worker_id = ? AND batch_id = ? AND status = 'open'",
        (now, worker_id, batch_id),
    )


async def reinstate(
    conn: aiosqlite.Connection, worker_id: int, batch_id: int, cause: str, now: float
) -> bool:
    """Lets a suspended worker back into a batch; their answers count again. Returns False
    when the worker was not suspended there."""
    cursor = await conn.execute(
        "UPDATE worker_batches SET status = 'active', cause = ?, reason = 'reinstated',"
        " changed_at = ? WHERE worker_id = ? AND batch_id = ? AND status = 'suspended'",
        (cause, now, worker_id, batch_id),
    )
    if cursor.rowcount != 1:
        return False
    await _recount(conn, worker_id, batch_id, +1)
    return True


async def _recount(conn: aiosqlite.Connection, worker_id: int, batch_id: int, sign: int) -> None:
    """Counts a worker's answers on ordinary items in or out of their items' tallies."""
    await conn.execute(
        "UPDATE items SET answers = answers + :s, wanted = MAX(wanted - :s, 0)"
        " WHERE id IN (SELECT a.item_id FROM answers a JOIN assignments x"
        "  ON x.id = a.assignment_id WHERE a.worker_id = :w AND a.batch_id = :b"
        "  AND x.kind = 'task')",
        {"s": sign, "w": worker_id, "b": batch_id},
    )


async def release_open_tasks(conn: aiosqlite.Connection, worker_id: int, now: float) -> None:
    """Hands the worker's open task back to the pool: they will not answer it."""
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
