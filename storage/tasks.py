"""Workers, assignments and answers: the SQL of the labeling loop."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from labeling.answering import answer_value, judge
from labeling.assign import Situation, Step, plan, without_gold
from labeling.batch import BatchSettings
from labeling.gold import Schedule, gold_order, stream
from labeling.models import (
    AssignmentState,
    AssignmentStatus,
    BatchNotFound,
    BatchStatus,
    Issued,
    Outcome,
    Problem,
    Submission,
    Task,
    Verdict,
    WorkerProfile,
    WorkerStats,
)
from labeling.quality import (
    is_correct,
    is_fast,
    label_confidence,
    median,
    needs_more_answers,
    suspension,
)
from labeling.review import WITHDRAWING, Reporter, withdrawn
from storage.db import Database, Record, records
from storage.reviews import set_item_state
from storage.standing import reinstate, suspend, trust_of

_TASK_COLUMNS = """
    a.id, a.batch_id, b.name, b.question, b.options, b.instructions,
    i.id, i.text, i.image, i.image_file_id, a.expires_at,
    COALESCE((SELECT wb.answers FROM worker_batches wb
              WHERE wb.worker_id = a.worker_id AND wb.batch_id = a.batch_id), 0)
"""

# The next ordinary item of one batch for a worker: the first the pool still wants that this
# worker has never been given. items_pool holds only wanted items, so the walk covers the
# unfinished frontier of the batch, never its finished part, and LIMIT 1 stops at the first fit.
_PICK_TASK = """
    SELECT i.batch_id, b.name, b.question, b.options, b.instructions,
           i.id, i.text, i.image, i.image_file_id
    FROM items i INDEXED BY items_pool JOIN batches b ON b.id = i.batch_id
    WHERE i.batch_id = :batch AND i.wanted > 0 AND i.state = 'ok'
      AND NOT EXISTS (SELECT 1 FROM assignments x WHERE x.item_id = i.id AND x.worker_id = :w)
    ORDER BY i.id
    LIMIT 1
"""
# A gold item of the batch the worker has never seen, in an order of the worker's own (keyed by
# the batch's secret), so workers cannot trade "the first check question is ...".
_PICK_GOLD = """
    SELECT i.batch_id, b.name, b.question, b.options, b.instructions,
           i.id, i.text, i.image, i.image_file_id
    FROM items i INDEXED BY items_gold JOIN batches b ON b.id = i.batch_id
    WHERE i.batch_id = :batch AND i.gold IS NOT NULL AND i.exam = 0 AND i.state = 'ok'
      AND NOT EXISTS (SELECT 1 FROM assignments x WHERE x.item_id = i.id AND x.worker_id = :w)
    ORDER BY (i.id * 2654435761 + :order) % 4294967291
    LIMIT 1
"""
# The open batches in order, with this worker's standing and place in the gold stream in each.
_STANDINGS = """
    SELECT b.id AS batch_id, b.name, b.gold_total, b.gold_seed, wb.status, wb.cause,
           COALESCE(wb.answers, 0) AS answers, COALESCE(wb.gold_answers, 0) AS gold_answers,
           COALESCE(wb.gold_correct, 0) AS gold_correct,
           COALESCE(wb.fast_answers, 0) AS fast_answers, COALESCE(wb.judged, 0) AS judged,
           COALESCE(wb.draws, 0) AS draws, COALESCE(wb.gold_drawn, 0) AS gold_drawn,
           COALESCE(wb.gold_owed, 0) AS gold_owed, COALESCE(wb.peer_below, 0) AS peer_below,
           COALESCE(wb.gold_returned, 0) AS gold_returned,
           COALESCE(wb.peer_guessing, 0) AS peer_guessing,
           COALESCE(wb.peer_checks, 0) AS peer_checks,
           COALESCE(wb.peer_agreed, 0) AS peer_agreed
    FROM batches b INDEXED BY batches_open
    LEFT JOIN worker_batches wb ON wb.batch_id = b.id AND wb.worker_id = :w
    WHERE b.status = 'open'
      AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = :w AND w.status = 'banned')
    ORDER BY b.id
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
        answered_in_batch=row[11],
    )


@dataclass(frozen=True, slots=True)
class _Extra:
    """What the answer path reads with an assignment's state besides what judging needs."""

    kind: str
    gold: str | None
    median_ms: int | None
    counts: bool  # the item is not suspect gold
    card: int | None  # the worker's live card


@dataclass(frozen=True, slots=True)
class Answered:
    """The answer just stored, whose batch's trust rules run before the next task is picked."""

    batch_id: int
    item_id: int
    kind: str


class TaskStore:
    """Hands out tasks and records answers, each change in one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._settings: dict[int, BatchSettings] = {}  # a batch's settings never change

    async def upsert_worker(
        self, profile: WorkerProfile, now: float, *, notify: bool = False
    ) -> None:
        """Registers the worker or refreshes their name and language; a worker who writes to
        the bot is reachable again. `notify` turns announcements back on; without it a
        worker's choice to pause them stands."""
        async with self.db.atomic() as conn:
            await conn.execute(
                "INSERT INTO workers (id, name, language, created_at, last_seen_at)"
                " VALUES (:id, :name, :language, :now, :now)"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                " language = excluded.language, notify = MAX(notify, :notify), reachable = 1"
                # Only a real change writes: a redelivered /start leaves the row as it was.
                " WHERE (name, language, notify, reachable)"
                "  IS NOT (excluded.name, excluded.language, MAX(notify, :notify), 1)",
                {
                    "id": profile.telegram_id,
                    "name": profile.name,
                    "language": profile.language,
                    "now": now,
                    "notify": int(notify),
                },
            )

    async def set_notify(self, worker_id: int, enabled: bool) -> bool:
        """Returns False when the worker is unknown."""
        async with self.db.atomic() as conn:
            cursor = await conn.execute(
                "UPDATE workers SET notify = ? WHERE id = ?", (int(enabled), worker_id)
            )
            return cursor.rowcount == 1

    async def mark_unreachable(self, worker_id: int) -> None:
        async with self.db.atomic() as conn:
            await conn.execute("UPDATE workers SET reachable = 0 WHERE id = ?", (worker_id,))

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

    async def current_or_next(self, worker_id: int, now: float, ttl: float) -> Issued:
        """The worker's open task if there is one, else a newly issued one."""
        async with self.db.atomic() as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {_TASK_COLUMNS}, a.kind, b.status FROM assignments a"
                " JOIN batches b ON b.id = a.batch_id JOIN items i ON i.id = a.item_id"
                " WHERE a.worker_id = ? AND a.status = 'open'",
                (worker_id,),
            )
            for row in rows:
                task = _task(row)
                if task.expires_at > now and row[13] == BatchStatus.OPEN:
                    return Issued(task)
                # A stale task blocks the worker's single open slot: hand it back first.
                await self._close(
                    conn, task.assignment_id, task.item_id, row[12], AssignmentStatus.EXPIRED, now
                )
            return await self._issue(conn, worker_id, now, ttl)

    async def submit(self, submission: Submission, now: float, ttl: float) -> Outcome:
        """Records an answer, applies the quality rules and issues the next task, all in one
        transaction. A rejected submission writes nothing."""
        async with self.db.atomic() as conn:
            if submission.source is not None and await conn.execute_fetchall(
                "SELECT 1 FROM answers WHERE source = ?", (submission.source,)
            ):
                return Outcome(Verdict.DUPLICATE)  # the same message, delivered again
            state, extra = await self._state(conn, submission.assignment_id)
            card = None if extra is None else extra.card
            verdict = judge(state, submission, now)
            if verdict is not Verdict.ACCEPTED:
                return Outcome(verdict, card=card)
            assert state is not None and extra is not None
            kind, gold, median_ms, counts = extra.kind, extra.gold, extra.median_ms, extra.counts
            settings = await self._batch_settings(conn, state.batch_id)
            value = answer_value(state, submission)
            assert value is not None
            duration_ms = max(0, round((now - state.issued_at) * 1000))
            # Suspect gold counts in no one's record (gold reported broken still does: a
            # report takes an item out of circulation, it does not judge anyone).
            correct = None if gold is None or not counts else int(is_correct(value, gold))
            fast = is_fast(duration_ms, median_ms, settings.fast_ratio)
            await conn.execute(
                "INSERT INTO answers (assignment_id, item_id, batch_id, worker_id, value,"
                " duration_ms, created_at, correct, fast, source)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    state.assignment_id,
                    state.item_id,
                    state.batch_id,
                    state.worker_id,
                    value,
                    duration_ms,
                    now,
                    correct,
                    int(fast),
                    submission.source,
                ),
            )
            # The answers_bookkeeping trigger closes the assignment, pays the reward, counts the
            # answer on its item and in the worker's trust counters (migration 0006); the next
            # task's query reads those counters back to apply the trust rules.
            answered = Answered(state.batch_id, state.item_id, kind)
            issued = await self._issue(conn, submission.worker_id, now, ttl, answered)
            return Outcome(verdict, issued.task, issued.suspended, issued.closed, card)

    async def skip(self, assignment_id: int, worker_id: int, now: float, ttl: float) -> Outcome:
        """Gives a task back to the pool (never to this worker again) and issues the next."""
        async with self.db.atomic() as conn:
            verdict, _, card = await self._give_back(conn, assignment_id, worker_id, now)
            if verdict is not Verdict.ACCEPTED:
                return Outcome(verdict, card=card)
            issued = await self._issue(conn, worker_id, now, ttl)
            return Outcome(verdict, issued.task, closed=issued.closed, card=card)

    async def report(
        self, assignment_id: int, worker_id: int, problem: Problem, now: float, ttl: float
    ) -> Outcome:
        """Gives a task back like a skip, recording the worker's report; an item enough workers
        report broken is handed out no more (and, if gold, counts in no one's record)."""
        async with self.db.atomic() as conn:
            verdict, state, card = await self._give_back(conn, assignment_id, worker_id, now)
            if verdict is not Verdict.ACCEPTED:
                return Outcome(verdict, card=card)
            assert state is not None
            await conn.execute(
                "INSERT INTO reports (item_id, batch_id, worker_id, reason, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (item_id, worker_id) DO NOTHING",
                (state.item_id, state.batch_id, worker_id, problem.value, now),
            )
            if problem in WITHDRAWING:
                await self._maybe_withdraw(conn, state.item_id, problem)
            issued = await self._issue(conn, worker_id, now, ttl)
            return Outcome(verdict, issued.task, closed=issued.closed, card=card)

    async def withdraw_unshowable(self, assignment_id: int, now: float) -> None:
        """Marks the assignment's item broken and, if the assignment is still open, releases
        it as expired: not a skip in the worker's counts, and a gold task is not counted as
        given back (WorkService.unshowable says why)."""
        async with self.db.atomic() as conn:
            rows = await records(
                conn,
                "SELECT a.item_id, a.batch_id, a.worker_id, a.kind, a.status, i.state"
                " FROM assignments a JOIN items i ON i.id = a.item_id WHERE a.id = ?",
                (assignment_id,),
            )
            if not rows:
                return
            row = rows[0]
            if row["status"] == AssignmentStatus.OPEN:
                await self._close(
                    conn, assignment_id, row["item_id"], row["kind"], AssignmentStatus.EXPIRED, now
                )
                if row["kind"] == "gold":  # the gold_returned trigger counted it: undo that
                    await conn.execute(
                        "UPDATE worker_batches SET gold_returned = gold_returned - 1"
                        " WHERE worker_id = ? AND batch_id = ?",
                        (row["worker_id"], row["batch_id"]),
                    )
            if row["state"] == "ok":  # suspect gold stays suspect: it must keep not counting
                await set_item_state(conn, row["item_id"], "broken")

    async def expire(self, now: float) -> int:
        """Returns every task left unanswered past its time to the pool."""
        async with self.db.atomic() as conn:
            await conn.execute(
                "UPDATE items SET wanted = wanted + (SELECT COUNT(*) FROM assignments a"
                "  WHERE a.item_id = items.id AND a.status = 'open' AND a.expires_at <= :now"
                "  AND a.kind = 'task')"
                " WHERE id IN (SELECT item_id FROM assignments"
                "  WHERE status = 'open' AND expires_at <= :now AND kind = 'task')",
                {"now": now},
            )
            cursor = await conn.execute(
                "UPDATE assignments SET status = 'expired', closed_at = :now"
                " WHERE status = 'open' AND expires_at <= :now",
                {"now": now},
            )
            return cursor.rowcount

    async def refresh_medians(self, sample: int = 2000) -> None:
        """Keeps each open batch's typical answer time for the fast-answer rule: the median
        over workers of each worker's median, over the latest answers, so a few spammers
        answering ten times as often cannot drag it down. Off the answer path: a median is not
        one indexed read."""
        batches = await self.db.fetchall("SELECT id FROM batches WHERE status = 'open'")
        for (batch_id,) in batches:
            rows = await self.db.fetchall(
                "SELECT worker_id, duration_ms FROM answers WHERE batch_id = ?"
                " ORDER BY id DESC LIMIT ?",
                (batch_id, sample),
            )
            if len(rows) < 20:  # too few answers to say what is typical
                continue
            per_worker: dict[int, list[int]] = {}
            for worker_id, duration in rows:
                per_worker.setdefault(worker_id, []).append(duration)
            typical = median([m for d in per_worker.values() if (m := median(d)) is not None])
            async with self.db.atomic() as conn:
                await conn.execute(
                    "UPDATE batches SET median_ms = ? WHERE id = ?", (typical, batch_id)
                )

    async def remember_image(self, item_id: int, file_id: str) -> None:
        """Keeps Telegram's file id of an uploaded image so it is uploaded only once."""
        async with self.db.atomic() as conn:
            await conn.execute(
                "UPDATE items SET image_file_id = ? WHERE id = ?", (file_id, item_id)
            )

    async def swap_card(self, worker_id: int, message_id: int) -> int | None:
        """Stores the message id of the worker's live card and returns the one it replaces;
        writes only when it changes."""
        async with self.db.atomic() as conn:
            rows = await records(
                conn, "SELECT card_message_id AS card FROM workers WHERE id = ?", (worker_id,)
            )
            if not rows or rows[0]["card"] == message_id:
                return None
            await conn.execute(
                "UPDATE workers SET card_message_id = ? WHERE id = ?", (message_id, worker_id)
            )
            return int(rows[0]["card"]) if rows[0]["card"] is not None else None

    async def worker_stats(self, worker_id: int, day_start: float) -> WorkerStats:
        row = await self.db.fetchone(
            """
            SELECT
              (SELECT COUNT(*) FROM answers WHERE worker_id = :w),
              (SELECT COUNT(*) FROM answers WHERE worker_id = :w AND created_at >= :day),
              (SELECT COUNT(*) FROM assignments WHERE worker_id = :w AND status = 'skipped'),
              (SELECT COUNT(DISTINCT batch_id) FROM answers WHERE worker_id = :w),
              (SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE worker_id = :w),
              (SELECT COALESCE(SUM(duration_ms), 0) FROM answers WHERE worker_id = :w),
              EXISTS (SELECT 1 FROM assignments WHERE worker_id = :w AND status = 'open')
            """,
            {"w": worker_id, "day": day_start},
        )
        assert row is not None
        return WorkerStats(
            row[0],
            row[1],
            row[2],
            row[3],
            float(row[4]),
            bool(row[6]),
            seconds_worked=row[5] / 1000,
        )

    async def reinstate(
        self, worker_id: int, batch_id: int, now: float, *, by: int | None = None
    ) -> bool:
        """A coordinator (`by`; None from the command line) lets a suspended worker back into
        a batch: their answers count again, their record starts afresh, the worker is told and
        the log says who did it. False when the worker was not suspended there."""
        async with self.db.atomic() as conn:
            if not await records(
                conn, "SELECT 1 FROM batches WHERE id = ? AND NOT importing", (batch_id,)
            ):
                raise BatchNotFound(batch_id)
            if not await reinstate(conn, worker_id, batch_id, "coordinator", now):
                return False
            await conn.execute(
                "INSERT INTO notices (worker_id, batch_id, kind, created_at)"
                " VALUES (?, ?, 'let_back', ?)",
                (worker_id, batch_id, now),
            )
            await conn.execute(
                "INSERT INTO audit_log (actor_id, action, subject_id, reason, created_at)"
                " VALUES (?, 'reinstate', ?, ?, ?)",
                (by, worker_id, f"batch {batch_id}", now),
            )
            await conn.execute(
                "UPDATE worker_batches SET gold_answers = 0, gold_correct = 0,"
                " fast_answers = 0, answers = 0, judged = 0, peer_below = 0,"
                " peer_guessing = 0, peer_checks = 0, peer_agreed = 0, gold_owed = 0,"
                " gold_returned = 0, trust_since = ?"
                " WHERE worker_id = ? AND batch_id = ?",
                (now, worker_id, batch_id),
            )
            return True

    # -- inside a transaction ----------------------------------------------------------------

    async def _batch_settings(self, conn: aiosqlite.Connection, batch_id: int) -> BatchSettings:
        settings = self._settings.get(batch_id)
        if settings is None:
            rows = await conn.execute_fetchall(
                "SELECT settings FROM batches WHERE id = ?", (batch_id,)
            )
            settings = BatchSettings.model_validate_json(next(iter(rows))[0])
            self._settings[batch_id] = settings
        return settings

    @staticmethod
    async def _maybe_withdraw(conn: aiosqlite.Connection, item_id: int, problem: Problem) -> None:
        """Takes the item out of circulation when its credible reports say so. Out until a
        coordinator looks: the answers already given on it keep counting, so a report cannot
        get anyone reinstated or suspended."""
        item = await records(
            conn, "SELECT state, gold IS NOT NULL AS gold FROM items WHERE id = ?", (item_id,)
        )
        reporters = await records(
            conn,
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
        counted = [
            Reporter(bool(r["active"]), r["answers"], r["gold"], r["right"], r["reports"])
            for r in reporters
        ]
        if item[0]["state"] == "ok" and withdrawn(problem, bool(item[0]["gold"]), counted):
            await set_item_state(conn, item_id, "broken")

    async def _give_back(
        self, conn: aiosqlite.Connection, assignment_id: int, worker_id: int, now: float
    ) -> tuple[Verdict, AssignmentState | None, int | None]:
        """Closes the worker's open assignment as skipped, if it is theirs to give back; also
        returns the worker's live card."""
        state, extra = await self._state(conn, assignment_id)
        verdict = judge(state, Submission(assignment_id, worker_id), now)
        if verdict is Verdict.INVALID:  # giving back carries no answer to be invalid
            verdict = Verdict.ACCEPTED
        if verdict is Verdict.ACCEPTED:
            assert state is not None and extra is not None
            await self._close(
                conn, assignment_id, state.item_id, extra.kind, AssignmentStatus.SKIPPED, now
            )
        return verdict, state, None if extra is None else extra.card

    @staticmethod
    async def _state(
        conn: aiosqlite.Connection, assignment_id: int
    ) -> tuple[AssignmentState | None, _Extra | None]:
        rows = await conn.execute_fetchall(
            "SELECT a.id, a.worker_id, a.item_id, a.batch_id, a.status, a.issued_at,"
            " a.expires_at, b.status, b.options, a.kind, i.gold, b.median_ms,"
            " COALESCE(wb.status, 'active') = 'active' AND w.status != 'banned',"
            " i.state != 'suspect', w.card_message_id"
            " FROM assignments a JOIN batches b ON b.id = a.batch_id"
            " JOIN items i ON i.id = a.item_id JOIN workers w ON w.id = a.worker_id"
            " LEFT JOIN worker_batches wb ON wb.worker_id = a.worker_id"
            "  AND wb.batch_id = a.batch_id"
            " WHERE a.id = ?",
            (assignment_id,),
        )
        if not rows:
            return None, None
        row = next(iter(rows))
        state = AssignmentState(
            assignment_id=row[0],
            worker_id=row[1],
            item_id=row[2],
            batch_id=row[3],
            status=AssignmentStatus(row[4]),
            issued_at=row[5],
            expires_at=row[6],
            batch_status=BatchStatus(row[7]),
            options=_options(row[8]),
            may_work=bool(row[12]),
        )
        return state, _Extra(row[9], row[10], row[11], bool(row[13]), row[14])

    @staticmethod
    async def _maybe_widen(
        conn: aiosqlite.Connection, item_id: int, settings: BatchSettings
    ) -> None:
        """Dynamic overlap: once every answer asked for is in, ask one more worker if the
        label is still below the confidence target."""
        rows = await conn.execute_fetchall(
            "SELECT target, answers, wanted FROM items WHERE id = ?", (item_id,)
        )
        target, answers, wanted = next(iter(rows))
        if answers < target or wanted > 0:
            return
        votes = await conn.execute_fetchall(
            "SELECT a.value, COALESCE(wb.gold_correct, 0), COALESCE(wb.gold_answers, 0)"
            " FROM answers a LEFT JOIN worker_batches wb ON wb.worker_id = a.worker_id"
            "  AND wb.batch_id = a.batch_id"
            " WHERE a.item_id = ? AND COALESCE(wb.status, 'active') = 'active'",
            (item_id,),
        )
        # Accuracy on gold, smoothed towards 0.8 so that workers without gold count alike.
        accuracies = [(right + 4.0) / (seen + 5.0) for _, right, seen in votes]
        n_classes = len(settings.options) if settings.options else len(votes) + 1
        confidence = label_confidence([v[0] for v in votes], accuracies, n_classes)
        if needs_more_answers(settings, target, confidence):
            await conn.execute(
                "UPDATE items SET target = target + 1, wanted = wanted + 1 WHERE id = ?",
                (item_id,),
            )

    @staticmethod
    async def _close(
        conn: aiosqlite.Connection,
        assignment_id: int,
        item_id: int,
        kind: str,
        status: AssignmentStatus,
        now: float,
    ) -> None:
        await conn.execute(
            "UPDATE assignments SET status = ?, closed_at = ? WHERE id = ?",
            (status.value, now, assignment_id),
        )
        if kind == "task":  # gold is handed out by schedule, not from the pool
            await conn.execute("UPDATE items SET wanted = wanted + 1 WHERE id = ?", (item_id,))

    async def _issue(
        self,
        conn: aiosqlite.Connection,
        worker_id: int,
        now: float,
        ttl: float,
        answered: Answered | None = None,
    ) -> Issued:
        """Hands the worker their next task: gold when their gold stream says so (or while they
        owe gold), else the next item of the first open batch they may work on. After an
        answer, first applies the trust rules to its batch (and dynamic overlap to its item)."""
        suspended = closed = None
        for row in await records(conn, _STANDINGS, {"w": worker_id}):
            batch_id = row["batch_id"]
            settings = await self._batch_settings(conn, batch_id)
            options = settings.option_count
            trust = trust_of(row)
            if answered is not None and answered.batch_id == batch_id:
                verdict = suspension(trust, settings, options)
                if verdict is not None:
                    await suspend(conn, worker_id, batch_id, verdict, now)
                    suspended = row["name"]
                    continue
                if answered.kind == "task" and settings.dynamic_overlap:
                    await self._maybe_widen(conn, answered.item_id, settings)
            status = row["status"]
            if not (status == "active" or (status is None and settings.exam_size == 0)):
                continue
            stored = Schedule(row["draws"], row["gold_drawn"], bool(row["gold_owed"]))
            situation = Situation(
                trust,
                stored,
                row["gold_total"],
                row["gold_returned"],
                vouched=row["cause"] == "coordinator",
            )
            u = stream(row["gold_seed"], worker_id, stored.draws)
            step = plan(situation, settings, options, u)
            picked: list[Record] = []
            if step.step is Step.GOLD:
                order = gold_order(row["gold_seed"], worker_id)
                picked = await records(
                    conn, _PICK_GOLD, {"batch": batch_id, "w": worker_id, "order": order}
                )
                if not picked:
                    step = without_gold(step, situation, settings)
            if step.step is Step.CLOSE:
                assert step.reason is not None
                # Unchecked answers must not count: the few ordinary answers given before the
                # first gold leave the labels, as a suspension's do.
                await suspend(conn, worker_id, batch_id, step.reason, now)
                closed = closed or row["name"]
                continue
            if step.step is Step.NONE:
                continue
            if not picked:
                picked = await records(conn, _PICK_TASK, {"batch": batch_id, "w": worker_id})
            if picked:
                task = await self._assign(
                    conn, worker_id, picked[0], step.step.value, now, ttl, row["answers"]
                )
                # The stream moves on only when a task was handed out: the same draw decides
                # again next time, so asking twice changes nothing.
                if step.schedule != stored:
                    schedule = step.schedule
                    await conn.execute(
                        "UPDATE worker_batches SET draws = ?, gold_drawn = ?, gold_owed = ?"
                        " WHERE worker_id = ? AND batch_id = ?",
                        (schedule.draws, schedule.drawn, int(schedule.owed), worker_id, batch_id),
                    )
                return Issued(task, suspended, closed)
        return Issued(None, suspended, closed)

    @staticmethod
    async def _assign(
        conn: aiosqlite.Connection,
        worker_id: int,
        row: Record,
        kind: str,
        now: float,
        ttl: float,
        answered: int,
    ) -> Task:
        batch_id, item_id = row["batch_id"], row["id"]
        cursor = await conn.execute(
            "INSERT INTO assignments (item_id, batch_id, worker_id, issued_at, expires_at, kind)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (item_id, batch_id, worker_id, now, now + ttl, kind),
        )
        # The assignments_bookkeeping trigger takes the item out of the pool and counts the
        # task (migration 0005); the gold stream is written after it.
        return _task((cursor.lastrowid, *row, now + ttl, answered))
