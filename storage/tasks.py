"""Workers, assignments and answers: the SQL of the labeling loop."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiosqlite

from labeling.answering import Verdict, answer_value, judge
from labeling.models import (
    AssignmentState,
    AssignmentStatus,
    BatchStatus,
    Submission,
    Task,
    WorkerProfile,
    WorkerStats,
)
from storage.db import Database

_TASK_COLUMNS = """
    a.id, a.batch_id, b.name, b.question, b.options, b.instructions,
    i.id, i.text, i.image, i.image_file_id, a.expires_at
"""

# The next item for a worker: the first item of the oldest open batch that still wants answers
# and that this worker has never been given. CROSS JOIN keeps SQLite's join order (open
# batches outside, the items_pool range of each inside) so the rows come out already in
# ORDER BY order and LIMIT 1 stops at the first fit. items_pool holds only wanted items, so
# the walk covers the unfinished frontier of a batch, never its finished part.
_PICK = """
    SELECT i.batch_id, b.name, b.question, b.options, b.instructions,
           i.id, i.text, i.image, i.image_file_id
    FROM batches b INDEXED BY batches_open CROSS JOIN items i INDEXED BY items_pool
    WHERE b.status = 'open' AND i.batch_id = b.id AND i.wanted > 0
      AND NOT EXISTS (SELECT 1 FROM assignments x WHERE x.item_id = i.id AND x.worker_id = :w)
      AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = :w AND w.status = 'banned')
    ORDER BY b.id, i.id
    LIMIT 1
"""


def _options(raw: str | None) -> tuple[str, ...] | None:
    return None if raw is None else tuple(json.loads(raw))


def _task(row: Sequence[Any]) -> Task:
    return Task(
        assignment_id=row[0],
        batch_id=row[1],
        batch_name=row[2],
        question=row[3],
        options=_options(row[4]),
        instructions=row[5],
        item_id=row[6],
        text=row[7],
        image=row[8],
        image_file_id=row[9],
        expires_at=row[10],
    )


class TaskStore:
    """Hands out tasks and records answers, each change in one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def upsert_worker(self, profile: WorkerProfile, now: float) -> None:
        async with self.db.atomic() as conn:
            await conn.execute(
                "INSERT INTO workers (id, name, language, created_at, last_seen_at)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                " language = excluded.language, last_seen_at = excluded.last_seen_at,"
                " notify = 1, reachable = 1",
                (profile.telegram_id, profile.name, profile.language, now, now),
            )

    async def is_registered(self, worker_id: int) -> bool:
        return (
            await self.db.fetchval("SELECT 1 FROM workers WHERE id = ?", (worker_id,)) is not None
        )

    async def set_notify(self, worker_id: int, enabled: bool) -> bool:
        """Returns False when the worker is unknown."""
        async with self.db.atomic() as conn:
            cursor = await conn.execute(
                "UPDATE workers SET notify = ? WHERE id = ?", (int(enabled), worker_id)
            )
            return cursor.rowcount == 1

    async def open_task(self, worker_id: int, now: float) -> Task | None:
        """The worker's open task, if it is still theirs to answer; issues nothing."""
        row = await self.db.fetchone(
            f"SELECT {_TASK_COLUMNS} FROM assignments a"
            " JOIN batches b ON b.id = a.batch_id JOIN items i ON i.id = a.item_id"
            " WHERE a.worker_id = ? AND a.status = 'open' AND a.expires_at > ?"
            " AND b.status = 'open'",
            (worker_id, now),
        )
        return None if row is None else _task(row)

    async def current_or_next(self, worker_id: int, now: float, ttl: float) -> Task | None:
        """The worker's open task if there is one, else a newly issued one, else None."""
        async with self.db.atomic() as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {_TASK_COLUMNS} FROM assignments a"
                " JOIN batches b ON b.id = a.batch_id JOIN items i ON i.id = a.item_id"
                " WHERE a.worker_id = ? AND a.status = 'open'",
                (worker_id,),
            )
            for row in rows:
                task = _task(row)
                if task.expires_at > now and await self._batch_open(conn, task.batch_id):
                    return task
                # A stale task blocks the worker's single open slot: hand it back first.
                await self._close(
                    conn, task.assignment_id, task.item_id, AssignmentStatus.EXPIRED, now
                )
            return await self._issue(conn, worker_id, now, ttl)

    async def submit(
        self, submission: Submission, now: float, ttl: float
    ) -> tuple[Verdict, Task | None]:
        """Records an answer and issues the next task in one transaction.

        A rejected submission writes nothing; the task returned with DUPLICATE is None, since
        the first delivery already showed the next one.
        """
        async with self.db.atomic() as conn:
            state = await self._state(conn, submission.assignment_id)
            verdict = judge(state, submission, now)
            if verdict is not Verdict.ACCEPTED:
                return verdict, None
            assert state is not None
            value = answer_value(state, submission)
            await conn.execute(
                "INSERT INTO answers (assignment_id, item_id, batch_id, worker_id, value,"
                " duration_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    state.assignment_id,
                    state.item_id,
                    state.batch_id,
                    state.worker_id,
                    value,
                    max(0, round((now - state.issued_at) * 1000)),
                    now,
                ),
            )
            await conn.execute(
                "UPDATE assignments SET status = 'answered', closed_at = ? WHERE id = ?",
                (now, state.assignment_id),
            )
            await conn.execute(
                "UPDATE items SET answers = answers + 1 WHERE id = ?", (state.item_id,)
            )
            return verdict, await self._issue(conn, submission.worker_id, now, ttl)

    async def skip(
        self, assignment_id: int, worker_id: int, now: float, ttl: float
    ) -> tuple[Verdict, Task | None]:
        """Gives a task back to the pool (never to this worker again) and issues the next."""
        async with self.db.atomic() as conn:
            state = await self._state(conn, assignment_id)
            verdict = judge(state, Submission(assignment_id, worker_id, option=0, text="skip"), now)
            if verdict is Verdict.INVALID:  # a skip carries no answer to be invalid
                verdict = Verdict.ACCEPTED
            if verdict is not Verdict.ACCEPTED:
                return verdict, None
            assert state is not None
            await self._close(conn, assignment_id, state.item_id, AssignmentStatus.SKIPPED, now)
            return verdict, await self._issue(conn, worker_id, now, ttl)

    async def expire(self, now: float) -> int:
        """Returns every task left unanswered past its time to the pool."""
        async with self.db.atomic() as conn:
            await conn.execute(
                "UPDATE items SET wanted = wanted + (SELECT COUNT(*) FROM assignments a"
                "  WHERE a.item_id = items.id AND a.status = 'open' AND a.expires_at <= :now)"
                " WHERE id IN (SELECT item_id FROM assignments"
                "  WHERE status = 'open' AND expires_at <= :now)",
                {"now": now},
            )
            cursor = await conn.execute(
                "UPDATE assignments SET status = 'expired', closed_at = :now"
                " WHERE status = 'open' AND expires_at <= :now",
                {"now": now},
            )
            return cursor.rowcount

    async def remember_image(self, item_id: int, file_id: str) -> None:
        """Keeps Telegram's file id of an uploaded image so it is uploaded only once."""
        async with self.db.atomic() as conn:
            await conn.execute(
                "UPDATE items SET image_file_id = ? WHERE id = ?", (file_id, item_id)
            )

    async def worker_stats(self, worker_id: int, day_start: float) -> WorkerStats:
        row = await self.db.fetchone(
            """
            SELECT
              (SELECT COUNT(*) FROM answers WHERE worker_id = :w),
              (SELECT COUNT(*) FROM answers WHERE worker_id = :w AND created_at >= :day),
              (SELECT COUNT(*) FROM assignments WHERE worker_id = :w AND status = 'skipped'),
              (SELECT COUNT(DISTINCT batch_id) FROM answers WHERE worker_id = :w),
              (SELECT COALESCE(SUM(b.reward), 0) FROM answers a
                 JOIN batches b ON b.id = a.batch_id WHERE a.worker_id = :w),
              EXISTS (SELECT 1 FROM assignments WHERE worker_id = :w AND status = 'open')
            """,
            {"w": worker_id, "day": day_start},
        )
        assert row is not None
        return WorkerStats(row[0], row[1], row[2], row[3], float(row[4]), bool(row[5]))

    # -- inside a transaction ----------------------------------------------------------------

    @staticmethod
    async def _state(conn: aiosqlite.Connection, assignment_id: int) -> AssignmentState | None:
        rows = await conn.execute_fetchall(
            "SELECT a.id, a.worker_id, a.item_id, a.batch_id, a.status, a.issued_at,"
            " a.expires_at, b.status, b.options"
            " FROM assignments a JOIN batches b ON b.id = a.batch_id WHERE a.id = ?",
            (assignment_id,),
        )
        if not rows:
            return None
        row = next(iter(rows))
        return AssignmentState(
            assignment_id=row[0],
            worker_id=row[1],
            item_id=row[2],
            batch_id=row[3],
            status=AssignmentStatus(row[4]),
            issued_at=row[5],
            expires_at=row[6],
            batch_status=BatchStatus(row[7]),
            options=_options(row[8]),
        )

    @staticmethod
    async def _batch_open(conn: aiosqlite.Connection, batch_id: int) -> bool:
        rows = await conn.execute_fetchall("SELECT status FROM batches WHERE id = ?", (batch_id,))
        return any(row[0] == BatchStatus.OPEN for row in rows)

    @staticmethod
    async def _close(
        conn: aiosqlite.Connection,
        assignment_id: int,
        item_id: int,
        status: AssignmentStatus,
        now: float,
    ) -> None:
        await conn.execute(
            "UPDATE assignments SET status = ?, closed_at = ? WHERE id = ?",
            (status.value, now, assignment_id),
        )
        await conn.execute("UPDATE items SET wanted = wanted + 1 WHERE id = ?", (item_id,))

    @staticmethod
    async def _issue(
        conn: aiosqlite.Connection, worker_id: int, now: float, ttl: float
    ) -> Task | None:
        picked = await conn.execute_fetchall(_PICK, {"w": worker_id})
        if not picked:
            return None
        row = next(iter(picked))
        item_id = row[5]
        cursor = await conn.execute(
            "INSERT INTO assignments (item_id, batch_id, worker_id, issued_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (item_id, row[0], worker_id, now, now + ttl),
        )
        await conn.execute("UPDATE items SET wanted = wanted - 1 WHERE id = ?", (item_id,))
        return _task((cursor.lastrowid, *row, now + ttl))
