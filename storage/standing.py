"""A worker's standing in a batch: suspension and reinstatement, with their answers counted
out of or back into their items' tallies."""

from __future__ import annotations

from labeling.gold import Peers
from labeling.quality import Suspension, Trust
from storage.engine import Row, Tx


def trust_of(row: Row) -> Trust:
    """A worker's record in a batch from a worker_batches row read by name."""
    return Trust(
        row["answers"],
        row["gold_answers"],
        row["gold_correct"],
        row["fast_answers"],
        row["judged"],
        Peers(row["peer_below"], row["peer_guessing"], row["peer_checks"], row["peer_agreed"]),
    )


def suspend(tx: Tx, worker_id: int, batch_id: int, verdict: Suspension, now: float) -> None:
    """Stops a worker in one batch. Their answers stay stored (flagged in the export) but
    no longer count, so the items they answered go back to the pool, as does a task they hold
    there (suspended between taps, by the upkeep or a review, they would be stuck with it)."""
    tx.execute(  # a worker closed out before their first task has no row yet
        "INSERT INTO worker_batches (worker_id, batch_id) VALUES (?, ?)"
        " ON CONFLICT (worker_id, batch_id) DO NOTHING",
        (worker_id, batch_id),
    )
    tx.execute(
        "UPDATE worker_batches SET status = 'suspended', cause = ?, reason = ?, changed_at = ?"
        " WHERE worker_id = ? AND batch_id = ?",
        (verdict.cause, verdict.reason, now, worker_id, batch_id),
    )
    _recount(tx, worker_id, batch_id, -1)
    tx.execute(
        "UPDATE items SET wanted = wanted + 1 WHERE id IN (SELECT item_id FROM assignments"
        " WHERE worker_id = ? AND batch_id = ? AND status = 'open' AND kind = 'task')",
        (worker_id, batch_id),
    )
    tx.execute(
        "UPDATE assignments SET status = 'expired', closed_at = ?"
        " WHERE worker_id = ? AND batch_id = ? AND status = 'open'",
        (now, worker_id, batch_id),
    )


def reinstate(tx: Tx, worker_id: int, batch_id: int, cause: str, now: float) -> bool:
    """Lets a suspended worker back into a batch; their answers count again. Returns False
    when the worker was not suspended there."""
    changed = tx.execute(
        "UPDATE worker_batches SET status = 'active', cause = ?, reason = 'reinstated',"
        " changed_at = ? WHERE worker_id = ? AND batch_id = ? AND status = 'suspended'",
        (cause, now, worker_id, batch_id),
    )
    if changed != 1:
        return False
    _recount(tx, worker_id, batch_id, +1)
    return True


def _recount(tx: Tx, worker_id: int, batch_id: int, sign: int) -> None:
    """Counts a worker's answers on ordinary items in or out of their items' tallies."""
    tx.execute(
        "UPDATE items SET answers = answers + :s,"
        " wanted = CASE WHEN wanted > :s THEN wanted - :s ELSE 0 END"
        " WHERE id IN (SELECT a.item_id FROM answers a JOIN assignments x"
        "  ON x.id = a.assignment_id WHERE a.worker_id = :w AND a.batch_id = :b"
        "  AND x.kind = 'task')",
        {"s": sign, "w": worker_id, "b": batch_id},
    )


def release_open_tasks(tx: Tx, worker_id: int, now: float) -> None:
    """Hands the worker's open task back to the pool: they will not answer it."""
    tx.execute(
        "UPDATE items SET wanted = wanted + 1 WHERE id IN (SELECT item_id"
        " FROM assignments WHERE worker_id = ? AND status = 'open' AND kind = 'task')",
        (worker_id,),
    )
    tx.execute(
        "UPDATE assignments SET status = 'expired', closed_at = ?"
        " WHERE worker_id = ? AND status = 'open'",
        (now, worker_id),
    )
