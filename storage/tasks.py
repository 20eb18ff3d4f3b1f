"""Assignments and answers: the reads and writes of the labeling loop, whose rules live in
labeling/loop.py. Rows are read by name, so a reordered SELECT cannot fill the wrong field."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from labeling.batch import BatchSettings
from labeling.gold import Schedule
from labeling.models import (
    AssignmentState,
    AssignmentStatus,
    BatchNotFound,
    BatchStatus,
    Problem,
    Task,
)
from labeling.ports import (
    Candidate,
    Held,
    ItemReports,
    NewAnswer,
    OpenTask,
    Tally,
    WorkerBatch,
)
from labeling.quality import Suspension, median
from labeling.review import Reporter
from storage.engine import Engine, Row, Tx
from storage.reviews import set_item_state
from storage.settings import SettingsCache
from storage.standing import reinstate, suspend, trust_of

T = TypeVar("T")

# What a card shows, for an item picked or an assignment held.
_CARD = """
    i.batch_id, b.name AS batch_name, b.question, b.options, b.instructions,
    i.id AS item_id, i.text, i.image, i.image_file_id
"""
# The next ordinary item of one batch for a worker in an id range: the first the pool still
# wants that this worker has never been given. items_pool holds only wanted items, and the walk
# starts past the worker's cursor, beyond which nothing was given to them, so LIMIT 1 stops at
# the first fit however long their history.
_PICK_TASK = f"""
    SELECT {_CARD}, NULL AS gold_rank
    FROM items i INDEXED BY items_pool JOIN batches b ON b.id = i.batch_id
    WHERE i.batch_id = :batch AND i.wanted > 0 AND i.id > :after AND i.id <= :upto
      AND i.state = 'ok'
      AND NOT EXISTS (SELECT 1 FROM assignments x WHERE x.item_id = i.id AND x.worker_id = :w)
    ORDER BY i.id
    LIMIT 1
"""
# The gold item of the batch with the lowest secret rank in a range that the worker has never
# seen (labeling.gold says which ranges, in the worker's own order).
_PICK_GOLD = f"""
    SELECT {_CARD}, i.gold_rank
    FROM items i INDEXED BY items_gold_rank JOIN batches b ON b.id = i.batch_id
    WHERE i.batch_id = :batch AND i.gold IS NOT NULL AND i.exam = 0
      AND i.gold_rank >= :low AND i.gold_rank < :high AND i.state = 'ok'
      AND NOT EXISTS (SELECT 1 FROM assignments x WHERE x.item_id = i.id AND x.worker_id = :w)
    ORDER BY i.gold_rank
    LIMIT 1
"""
# The open batches in order, with this worker's standing and place in the gold stream in each.
_WORKER_BATCHES = """
    SELECT b.id AS batch_id, b.name, b.gold_total, b.gold_seed, wb.status, wb.cause,
           COALESCE(wb.answers, 0) AS answers, COALESCE(wb.gold_answers, 0) AS gold_answers,
           COALESCE(wb.gold_correct, 0) AS gold_correct,
           COALESCE(wb.fast_answers, 0) AS fast_answers, COALESCE(wb.judged, 0) AS judged,
           COALESCE(wb.draws, 0) AS draws, COALESCE(wb.gold_drawn, 0) AS gold_drawn,
           COALESCE(wb.gold_owed, 0) AS gold_owed, COALESCE(wb.peer_below, 0) AS peer_below,
           COALESCE(wb.gold_returned, 0) AS gold_returned,
           COALESCE(wb.peer_guessing, 0) AS peer_guessing,
           COALESCE(wb.peer_checks, 0) AS peer_checks,
           COALESCE(wb.peer_agreed, 0) AS peer_agreed,
           COALESCE(wb.task_cursor, 0) AS task_cursor,
           COALESCE(wb.gold_cursor, 0) AS gold_cursor
    FROM batches b INDEXED BY batches_open
    LEFT JOIN worker_batches wb ON wb.batch_id = b.id AND wb.worker_id = :w
    WHERE b.status = 'open'
      AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = :w AND w.status = 'banned')
    ORDER BY b.id
"""
# An assignment with its card, as the worker holds it.
_HELD_TASK = f"""
    SELECT a.id AS assignment_id, a.expires_at, a.kind, b.status AS batch_status, {_CARD},
           i.gold_rank,
           COALESCE((SELECT wb.answers FROM worker_batches wb
                     WHERE wb.worker_id = a.worker_id AND wb.batch_id = a.batch_id), 0)
             AS answered
    FROM assignments a JOIN batches b ON b.id = a.batch_id JOIN items i ON i.id = a.item_id
"""


def _options(raw: str | None) -> tuple[str, ...] | None:
    return None if raw is None else tuple(json.loads(raw))


def _candidate(row: Row) -> Candidate:
    return Candidate(
        batch_id=row["batch_id"],
        batch_name=row["batch_name"],
        question=row["question"],
        options=_options(row["options"]),
        instructions=row["instructions"],
        item_id=row["item_id"],
        text=row["text"],
        image=row["image"],
        image_file_id=row["image_file_id"],
        gold_rank=row["gold_rank"],
    )


def _task(candidate: Candidate, assignment_id: int, expires_at: float, answered: int) -> Task:
    return Task(
        assignment_id=assignment_id,
        batch_id=candidate.batch_id,
        batch_name=candidate.batch_name,
        question=candidate.question,
        options=candidate.options,
        instructions=candidate.instructions,
        item_id=candidate.item_id,
        text=candidate.text,
        image=candidate.image,
        image_file_id=candidate.image_file_id,
        expires_at=expires_at,
        answered_in_batch=answered,
    )


def _held_task(row: Row) -> Task:
    return _task(_candidate(row), row["assignment_id"], row["expires_at"], row["answered"])


_HELD = (
    "SELECT a.id, a.worker_id, a.item_id, a.batch_id, a.status, a.issued_at,"
    " a.expires_at, b.status AS batch_status, b.options, a.kind, i.gold, b.median_ms,"
    " COALESCE(wb.status, 'active') = 'active' AND w.status != 'banned' AS may_work,"
    " i.state AS item_state, w.card_message_id AS card"
    " FROM assignments a JOIN batches b ON b.id = a.batch_id"
    " JOIN items i ON i.id = a.item_id JOIN workers w ON w.id = a.worker_id"
    " LEFT JOIN worker_batches wb ON wb.worker_id = a.worker_id"
    "  AND wb.batch_id = a.batch_id"
    " WHERE a.id = ?"
)


class SqlTaskUnit:
    """The labeling loop's reads and writes (labeling.ports.TaskUnit) inside one transaction."""

    def __init__(self, tx: Tx, settings: SettingsCache) -> None:
        self.tx = tx
        self._settings = settings

    # -- reads ----------------------------------------------------------------------------

    def answered_from(self, source: str) -> bool:
        return self.tx.row("SELECT 1 FROM answers WHERE source = ?", (source,)) is not None

    def held(self, assignment_id: int) -> Held | None:
        sql = _HELD
        if self.tx.engine == "postgresql":
            # Two taps on one task at once (a double tap, a redelivered update on another
            # replica): the second waits here for the first to commit and reads what it left,
            # instead of acting on the task a second time. (SQLite has one writer at a time.)
            # NO KEY: rows inserted meanwhile that refer to it (an answer) must not wait.
            sql += " FOR NO KEY UPDATE OF a"
        row = self.tx.row(sql, (assignment_id,))
        if row is None:
            return None
        state = AssignmentState(
            assignment_id=row["id"],
            worker_id=row["worker_id"],
            item_id=row["item_id"],
            batch_id=row["batch_id"],
            status=AssignmentStatus(row["status"]),
            issued_at=row["issued_at"],
            expires_at=row["expires_at"],
            batch_status=BatchStatus(row["batch_status"]),
            options=_options(row["options"]),
            may_work=bool(row["may_work"]),
        )
        return Held(
            state, row["kind"], row["gold"], row["item_state"], row["median_ms"], row["card"]
        )

    def open_tasks(self, worker_id: int) -> list[OpenTask]:
        rows = self.tx.rows(
            f"{_HELD_TASK} WHERE a.worker_id = ? AND a.status = 'open'", (worker_id,)
        )
        return [
            OpenTask(_held_task(row), row["kind"], row["batch_status"] == BatchStatus.OPEN)
            for row in rows
        ]

    def settings(self, batch_id: int) -> BatchSettings:
        return self._settings.read(self.tx, batch_id)

    def worker_batches(self, worker_id: int) -> list[WorkerBatch]:
        return [
            WorkerBatch(
                batch_id=row["batch_id"],
                batch_name=row["name"],
                gold_total=row["gold_total"],
                gold_seed=row["gold_seed"],
                status=row["status"],
                cause=row["cause"],
                trust=trust_of(row),
                schedule=Schedule(row["draws"], row["gold_drawn"], bool(row["gold_owed"])),
                gold_returned=row["gold_returned"],
                task_cursor=row["task_cursor"],
                gold_cursor=row["gold_cursor"],
            )
            for row in self.tx.rows(_WORKER_BATCHES, {"w": worker_id})
        ]

    def tally(self, item_id: int) -> Tally:
        item = self.tx.row("SELECT target, answers, wanted FROM items WHERE id = ?", (item_id,))
        assert item is not None
        votes = self.tx.rows(
            "SELECT a.value, COALESCE(wb.gold_correct, 0) AS right,"
            " COALESCE(wb.gold_answers, 0) AS seen"
            " FROM answers a LEFT JOIN worker_batches wb ON wb.worker_id = a.worker_id"
            "  AND wb.batch_id = a.batch_id"
            " WHERE a.item_id = ? AND COALESCE(wb.status, 'active') = 'active'",
            (item_id,),
        )
        return Tally(
            item["target"],
            item["answers"],
            item["wanted"],
            [(vote["value"], vote["right"], vote["seen"]) for vote in votes],
        )

    def reports(self, item_id: int, problem: Problem) -> ItemReports:
        sql = "SELECT state, gold IS NOT NULL AS gold FROM items WHERE id = ?"
        if self.tx.engine == "postgresql":
            # Reports on one item made at the same moment count each other: the second waits
            # here for the first to commit and then reads its report. (Releasing a task item
            # locks its row already; releasing gold does not.) NO KEY: a plain FOR UPDATE
            # would also wait for every transaction that inserted a row referring to the item
            # (a report, an answer), and two reports that both inserted first would deadlock.
            sql += " FOR NO KEY UPDATE"
        item = self.tx.row(sql, (item_id,))
        assert item is not None
        reporters = self.tx.rows(
            "SELECT COALESCE(wb.status, 'active') = 'active' AS active,"
            " COALESCE(wb.answers, 0) AS answers, COALESCE(wb.gold_answers, 0) AS gold,"
            " COALESCE(wb.gold_correct, 0) AS right,"
            " (SELECT COUNT(*) FROM reports x WHERE x.worker_id = r.worker_id"
            "  AND x.batch_id = r.batch_id AND x.reason = r.reason) AS reports"
            " FROM reports r JOIN items i ON i.id = r.item_id"
            " LEFT JOIN worker_batches wb ON wb.worker_id = r.worker_id"
            "  AND wb.batch_id = r.batch_id"
            " WHERE r.item_id = ? AND r.reason = ?"
            " AND r.created_at > COALESCE(i.reviewed_at, -1)",
            (item_id, problem.value),
        )
        return ItemReports(
            item["state"],
            bool(item["gold"]),
            [
                Reporter(bool(r["active"]), r["answers"], r["gold"], r["right"], r["reports"])
                for r in reporters
            ],
        )

    def pick_gold(self, batch_id: int, worker_id: int, low: int, high: int) -> Candidate | None:
        row = self.tx.row(_PICK_GOLD, {"batch": batch_id, "w": worker_id, "low": low, "high": high})
        return None if row is None else _candidate(row)

    def pick_task(
        self, batch_id: int, worker_id: int, after: int, upto: int = 2**62
    ) -> Candidate | None:
        sql = _PICK_TASK
        if self.tx.engine == "postgresql":
            # Replicas pick at once: an item another transaction is taking is passed over, so
            # two workers never both take an item's last wanted answer. (SQLite has one
            # writer at a time.) NO KEY: an item whose answer another worker is storing
            # (a row that refers to it) is not passed over for that.
            sql += " FOR NO KEY UPDATE OF i SKIP LOCKED"
        row = self.tx.row(sql, {"batch": batch_id, "w": worker_id, "after": after, "upto": upto})
        return None if row is None else _candidate(row)

    # -- writes ---------------------------------------------------------------------------

    def insert_answer(self, answer: NewAnswer) -> None:
        state = answer.state
        # The answers_bookkeeping trigger closes the assignment, pays the reward, counts the
        # answer on its item and in the worker's trust counters (migration 0006).
        self.tx.execute(
            "INSERT INTO answers (assignment_id, item_id, batch_id, worker_id, value,"
            " duration_ms, created_at, correct, fast, source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                state.assignment_id,
                state.item_id,
                state.batch_id,
                state.worker_id,
                answer.value,
                answer.duration_ms,
                answer.created_at,
                None if answer.correct is None else int(answer.correct),
                int(answer.fast),
                answer.source,
            ),
        )

    def assign(
        self,
        worker_id: int,
        candidate: Candidate,
        kind: str,
        now: float,
        ttl: float,
        answered: int,
    ) -> Task:
        # The assignments_bookkeeping trigger takes the item out of the pool and counts the
        # task (migration 0005).
        assignment_id = self.tx.insert(
            "INSERT INTO assignments (item_id, batch_id, worker_id, issued_at, expires_at, kind)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (candidate.item_id, candidate.batch_id, worker_id, now, now + ttl, kind),
        )
        return _task(candidate, assignment_id, now + ttl, answered)

    def save_place(
        self, worker_id: int, batch_id: int, schedule: Schedule, task_cursor: int, gold_cursor: int
    ) -> None:
        self.tx.execute(
            "UPDATE worker_batches SET draws = ?, gold_drawn = ?, gold_owed = ?,"
            " task_cursor = ?, gold_cursor = ? WHERE worker_id = ? AND batch_id = ?",
            (
                schedule.draws,
                schedule.drawn,
                int(schedule.owed),
                task_cursor,
                gold_cursor,
                worker_id,
                batch_id,
            ),
        )

    def close(
        self, assignment_id: int, item_id: int, kind: str, status: AssignmentStatus, now: float
    ) -> None:
        self.tx.execute(
            "UPDATE assignments SET status = ?, closed_at = ? WHERE id = ?",
            (status.value, now, assignment_id),
        )
        if kind == "task":  # gold is handed out by schedule, not from the pool
            self.tx.execute("UPDATE items SET wanted = wanted + 1 WHERE id = ?", (item_id,))

    def forget_gold_returned(self, worker_id: int, batch_id: int) -> None:
        # The gold_returned trigger counted the release as a gold task given back.
        self.tx.execute(
            "UPDATE worker_batches SET gold_returned = gold_returned - 1"
            " WHERE worker_id = ? AND batch_id = ?",
            (worker_id, batch_id),
        )

    def suspend(self, worker_id: int, batch_id: int, verdict: Suspension, now: float) -> None:
        suspend(self.tx, worker_id, batch_id, verdict, now)

    def widen(self, item_id: int) -> None:
        self.tx.execute(
            "UPDATE items SET target = target + 1, wanted = wanted + 1 WHERE id = ?", (item_id,)
        )

    def add_report(
        self, item_id: int, batch_id: int, worker_id: int, problem: Problem, now: float
    ) -> None:
        self.tx.execute(
            "INSERT INTO reports (item_id, batch_id, worker_id, reason, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (item_id, worker_id) DO NOTHING",
            (item_id, batch_id, worker_id, problem.value, now),
        )

    def set_item_state(self, item_id: int, state: str) -> None:
        set_item_state(self.tx, item_id, state)


def _set_median(tx: Tx, batch_id: int, typical: int | None) -> None:
    tx.execute("UPDATE batches SET median_ms = ? WHERE id = ?", (typical, batch_id))


class TaskStore:
    """Runs the labeling loop's changes, each in one transaction, and the loop's upkeep."""

    def __init__(self, db: Engine) -> None:
        self.db = db
        self._settings = SettingsCache()

    async def run(self, change: Callable[[SqlTaskUnit], T]) -> T:
        return await self.db.run(lambda tx: change(SqlTaskUnit(tx, self._settings)))

    async def open_task(self, worker_id: int, now: float) -> Task | None:
        """The worker's open task, if it is still theirs to answer; issues nothing."""
        rows = await self.db.read(
            f"{_HELD_TASK} WHERE a.worker_id = ? AND a.status = 'open' AND a.expires_at > ?"
            " AND b.status = 'open'",
            (worker_id, now),
        )
        return _held_task(rows[0]) if rows else None

    async def expire(self, now: float) -> int:
        """Returns every task left unanswered past its time to the pool."""

        def change(tx: Tx) -> int:
            tx.execute(
                "UPDATE items SET wanted = wanted + (SELECT COUNT(*) FROM assignments a"
                "  WHERE a.item_id = items.id AND a.status = 'open' AND a.expires_at <= :now"
                "  AND a.kind = 'task')"
                " WHERE id IN (SELECT item_id FROM assignments"
                "  WHERE status = 'open' AND expires_at <= :now AND kind = 'task')",
                {"now": now},
            )
            return tx.execute(
                "UPDATE assignments SET status = 'expired', closed_at = :now"
                " WHERE status = 'open' AND expires_at <= :now",
                {"now": now},
            )

        return await self.db.run(change)

    async def refresh_medians(self, sample: int = 2000) -> None:
        """Keeps each open batch's typical answer time for the fast-answer rule: the median
        over workers of each worker's median, over the latest answers, so a few spammers
        answering ten times as often cannot drag it down. Off the answer path: a median is not
        one indexed read."""
        for batch in await self.db.read("SELECT id FROM batches WHERE status = 'open'"):
            rows = await self.db.read(
                "SELECT worker_id, duration_ms FROM answers WHERE batch_id = ?"
                " ORDER BY id DESC LIMIT ?",
                (batch["id"], sample),
            )
            if len(rows) < 20:  # too few answers to say what is typical
                continue
            per_worker: dict[int, list[int]] = {}
            for row in rows:
                per_worker.setdefault(row["worker_id"], []).append(row["duration_ms"])
            typical = median([m for d in per_worker.values() if (m := median(d)) is not None])
            await self.db.run(partial(_set_median, batch_id=batch["id"], typical=typical))

    async def remember_image(self, item_id: int, file_id: str) -> None:
        """Keeps Telegram's file id of an uploaded image so it is uploaded only once."""
        await self.db.run(
            lambda tx: tx.execute(
                "UPDATE items SET image_file_id = ? WHERE id = ?", (file_id, item_id)
            )
        )

    async def reinstate(
        self, worker_id: int, batch_id: int, now: float, *, by: int | None = None
    ) -> bool:
        """A coordinator (`by`; None from the command line) lets a suspended worker back into
        a batch: their answers count again, their record starts afresh, the worker is told and
        the log says who did it. False when the worker was not suspended there."""

        def change(tx: Tx) -> bool:
            if tx.row("SELECT 1 FROM batches WHERE id = ? AND importing = 0", (batch_id,)) is None:
                raise BatchNotFound(batch_id)
            if not reinstate(tx, worker_id, batch_id, "coordinator", now):
                return False
            tx.execute(
                "INSERT INTO notices (worker_id, batch_id, kind, created_at)"
                " VALUES (?, ?, 'let_back', ?)",
                (worker_id, batch_id, now),
            )
            tx.execute(
                "INSERT INTO audit_log (actor_id, action, subject_id, reason, created_at)"
                " VALUES (?, 'reinstate', ?, ?, ?)",
                (by, worker_id, f"batch {batch_id}", now),
            )
            tx.execute(
                "UPDATE worker_batches SET gold_answers = 0, gold_correct = 0,"
                " fast_answers = 0, answers = 0, judged = 0, peer_below = 0,"
                " peer_guessing = 0, peer_checks = 0, peer_agreed = 0, gold_owed = 0,"
                " gold_returned = 0, trust_since = ?"
                " WHERE worker_id = ? AND batch_id = ?",
                (now, worker_id, batch_id),
            )
            return True

        return await self.db.run(change)
