"""Forgets a worker: their id replaced by a pseudonym in every table, in one transaction."""

from __future__ import annotations

from labeling.erasure import ERASED_NAME, Erased, PseudonymTaken
from storage.engine import Engine, Tx
from storage.standing import release_open_tasks

# Columns that hold a person's Telegram id without a foreign key to workers (coordinators and
# the people they acted on). Every column that references workers is found in the schema.
PERSON_COLUMNS = (
    ("audit_log", "actor_id"),
    ("audit_log", "subject_id"),
    ("batches", "created_by"),
    ("broadcasts", "created_by"),
    ("coordinators", "promoted_by"),
    ("notices", "coordinator_id"),
)
# Text that starts with a chat id, which in a private chat is the user's id:
# answers.source is 'm:<chat>:<message>', broadcasts.source_message '<chat>:<message>'.
PREFIXED_COLUMNS = (("answers", "source", "m:"), ("broadcasts", "source_message", ""))

# The foreign keys to workers(id), as each engine's catalogue lists them.
_WORKER_KEYS = {
    "sqlite": 'SELECT m.name AS tab, f."from" AS col FROM sqlite_master m,'
    " pragma_foreign_key_list(m.name) f"
    " WHERE m.type = 'table' AND f.\"table\" = 'workers' ORDER BY m.name, f.\"from\"",
    "postgresql": "SELECT k.conrelid::regclass::text AS tab, a.attname AS col"
    " FROM pg_constraint k JOIN pg_attribute a"
    "  ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)"
    " WHERE k.contype = 'f' AND k.confrelid = 'workers'::regclass ORDER BY 1, 2",
}


def worker_columns(tx: Tx) -> list[tuple[str, str]]:
    """Every (table, column) that references workers(id), as the schema says, so that a
    table a later migration adds is rewritten too."""
    return [(row["tab"], row["col"]) for row in tx.rows(_WORKER_KEYS[tx.engine])]


def _erase(tx: Tx, worker_id: int, pseudonym: int, reason: str, now: float) -> Erased | None:
    # Locked on PostgreSQL: the same erasure confirmed twice on two replicas waits here for
    # the first, then finds no one to erase.
    lock = " FOR UPDATE" if tx.engine == "postgresql" else ""
    if tx.row(f"SELECT 1 FROM workers WHERE id = ?{lock}", (worker_id,)) is None:
        return None
    if tx.row("SELECT 1 FROM workers WHERE id = ?", (pseudonym,)) is not None:
        raise PseudonymTaken
    ids = {"old": worker_id, "new": pseudonym}
    release_open_tasks(tx, worker_id, now)  # no one will answer it now
    # Nobody can be told anything under a pseudonym: it is no chat.
    tx.execute(
        "UPDATE notices SET status = 'failed', updated_at = ?"
        " WHERE worker_id = ? AND status = 'queued'",
        (now, worker_id),
    )
    # The new row first and the old one last, so that every foreign key holds at every step
    # (both engines check them statement by statement). The triggers of migrations 0005-0006
    # fire on inserts and on status changes only: moving rows to another id counts nothing
    # again.
    tx.execute(
        "INSERT INTO workers (id, name, language, status, notify, reachable,"
        " created_at, last_seen_at)"
        " SELECT :new, :name, NULL, status, 0, 0, created_at, last_seen_at"
        " FROM workers WHERE id = :old",
        {**ids, "name": ERASED_NAME},
    )
    for table, column in worker_columns(tx) + list(PERSON_COLUMNS):
        tx.execute(f"UPDATE {table} SET {column} = :new WHERE {column} = :old", ids)
    for table, column, prefix in PREFIXED_COLUMNS:
        head = f"{prefix}{worker_id}:"
        tx.execute(
            f"UPDATE {table} SET {column} = :head || substr({column}, :cut)"
            f" WHERE substr({column}, 1, :length) = :old_head",
            {
                "head": f"{prefix}{pseudonym}:",
                "cut": len(head) + 1,
                "length": len(head),
                "old_head": head,
            },
        )
    tx.execute("DELETE FROM workers WHERE id = ?", (worker_id,))
    tx.execute(
        "INSERT INTO audit_log (actor_id, action, subject_id, reason, created_at)"
        " VALUES (NULL, 'erase', NULL, ?, ?)",
        (reason, now),
    )
    row = tx.row(
        "SELECT (SELECT COUNT(*) FROM answers WHERE worker_id = :w) AS answers,"
        " (SELECT COUNT(*) FROM ledger WHERE worker_id = :w) AS payments,"
        " (SELECT COUNT(*) FROM worker_batches WHERE worker_id = :w) AS batches",
        {"w": pseudonym},
    )
    assert row is not None
    return Erased(row["answers"], row["payments"], row["batches"])


class ErasureStore:
    def __init__(self, db: Engine) -> None:
        self.db = db

    async def subject(self, worker_id: int) -> tuple[bool, bool]:
        """Whether the worker is known, and banned."""
        rows = await self.db.read("SELECT status FROM workers WHERE id = ?", (worker_id,))
        status = rows[0]["status"] if rows else None
        return status is not None, status == "banned"

    async def erase(self, worker_id: int, pseudonym: int, reason: str, now: float) -> Erased | None:
        """Moves everything stored under `worker_id` to `pseudonym`, without the name and
        language; None when the worker is unknown (erased already)."""
        return await self.db.run(lambda tx: _erase(tx, worker_id, pseudonym, reason, now))
