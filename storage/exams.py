"""Training exams: attempts, their answers, and admission to a batch."""

from __future__ import annotations

import math
from dataclasses import replace

import aiosqlite

from labeling.answering import answer_value, judge
from labeling.batch import BatchSettings
from labeling.gold import exam_questions
from labeling.models import (
    AssignmentState,
    AssignmentStatus,
    BatchStatus,
    ExamQuestion,
    ExamResult,
    Submission,
    Verdict,
)
from labeling.quality import exam_pass_mark, exam_passed, is_correct
from labeling.review import may_dispute
from storage.db import Database, records

# Open batches with an exam that this worker has not passed and is not barred from: never
# started, in progress, or failed with a retry now allowed; with the worker's last score.
_EXAM_BATCHES = """
    SELECT b.id, b.name, b.settings, wb.status, wb.retry_at,
           COALESCE(t.correct, 0) AS score, COALESCE(t.answered, 0) AS total
    FROM batches b INDEXED BY batches_open
    LEFT JOIN worker_batches wb ON wb.batch_id = b.id AND wb.worker_id = :w
    LEFT JOIN exam_attempts t ON t.id = (SELECT MAX(id) FROM exam_attempts
        WHERE batch_id = b.id AND worker_id = :w AND finished_at IS NOT NULL)
    WHERE b.status = 'open' AND json_extract(b.settings, '$.exam_size') > 0
      AND COALESCE(wb.status, 'none') NOT IN ('active', 'suspended')
      AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = :w AND w.status = 'banned')
    ORDER BY b.id
"""


class ExamStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def next_question(self, worker_id: int, now: float) -> ExamQuestion | ExamResult | None:
        """The worker's next exam question; an ExamResult when the only exam left is one they
        failed and may not retry yet; None when no batch asks them for an exam."""
        async with self.db.atomic() as conn:
            barred: ExamResult | None = None
            for row in await records(conn, _EXAM_BATCHES, {"w": worker_id}):
                batch_id, retry_at = row["id"], row["retry_at"]
                settings = BatchSettings.model_validate_json(row["settings"])
                attempt = await self._open_attempt(conn, batch_id, worker_id)
                if attempt is None:
                    if row["status"] == "failed" and (retry_at is None or retry_at > now):
                        barred = barred or ExamResult(
                            Verdict.ACCEPTED,
                            finished=True,
                            score=row["score"],
                            total=row["total"],
                            retry_at=retry_at,
                            batch_name=row["name"],
                            pass_mark=exam_pass_mark(row["total"], settings),
                        )
                        continue
                    cursor = await conn.execute(
                        "INSERT INTO exam_attempts (batch_id, worker_id, started_at)"
                        " VALUES (?, ?, ?)",
                        (batch_id, worker_id, now),
                    )
                    attempt = cursor.lastrowid
                    assert attempt is not None
                question = await self._question(conn, attempt, batch_id, worker_id, settings)
                if question is not None:
                    return question
            return barred

    async def answer(self, submission: Submission, item_id: int, now: float) -> ExamResult:
        """Records one exam answer (once: a double tap counts once) and, after the last
        question, admits the worker or not."""
        async with self.db.atomic() as conn:
            rows = await records(
                conn,
                "SELECT t.worker_id, t.batch_id, t.finished_at, b.settings, b.name,"
                " b.status AS batch_status, i.gold, i.explanation,"
                " EXISTS (SELECT 1 FROM exam_answers e WHERE e.attempt_id = t.id"
                "  AND e.item_id = i.id) AS answered,"
                " EXISTS (SELECT 1 FROM workers w WHERE w.id = t.worker_id"
                "  AND w.status = 'banned') AS banned"
                " FROM exam_attempts t JOIN batches b ON b.id = t.batch_id"
                " JOIN items i ON i.id = :item AND i.batch_id = t.batch_id"
                " WHERE t.id = :attempt",
                {"attempt": submission.assignment_id, "item": item_id},
            )
            if not rows:
                return ExamResult(Verdict.NOT_FOUND)
            row = rows[0]
            worker_id, batch_id, name = row["worker_id"], row["batch_id"], row["name"]
            gold, explanation = row["gold"], row["explanation"]
            settings = BatchSettings.model_validate_json(row["settings"])
            # A question is open until answered, for as long as the attempt is: the same rules
            # as a task's then judge the answer (a ban in the meantime closes the batch).
            done = row["answered"] or row["finished_at"] is not None
            state = AssignmentState(
                submission.assignment_id,
                worker_id,
                item_id,
                batch_id,
                AssignmentStatus.ANSWERED if done else AssignmentStatus.OPEN,
                now,
                math.inf,
                BatchStatus(row["batch_status"]),
                settings.options,
                may_work=not row["banned"],
            )
            verdict = judge(state, submission, now)
            if verdict is not Verdict.ACCEPTED:
                return ExamResult(verdict)
            value = answer_value(state, submission)
            drawn = await self._draw(conn, submission.assignment_id, batch_id, worker_id, settings)
            if value is None or item_id not in drawn or gold is None:
                return ExamResult(Verdict.INVALID)  # forged: not a question of this attempt
            correct = is_correct(value, gold)
            await conn.execute(
                "INSERT INTO exam_answers (attempt_id, item_id, value, correct, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (submission.assignment_id, item_id, value, int(correct), now),
            )
            score_rows = await conn.execute_fetchall(
                "UPDATE exam_attempts SET answered = answered + 1, correct = correct + ?"
                " WHERE id = ? RETURNING answered, correct",
                (int(correct), submission.assignment_id),
            )
            answered_count, score = next(iter(score_rows))
            total = len(drawn)
            result = ExamResult(
                Verdict.ACCEPTED,
                correct,
                gold,
                explanation,
                score=score,
                total=total,
                batch_name=name,
                pass_mark=exam_pass_mark(total, settings),
                question=await self._exam_question(
                    conn, submission.assignment_id, item_id, answered_count, total, settings
                ),
            )
            if answered_count < total:
                return result
            passed = exam_passed(score, total, settings)
            retry_at = None
            if not passed and settings.exam_retry_minutes is not None:
                retry_at = now + settings.exam_retry_minutes * 60
            await conn.execute(
                "UPDATE exam_attempts SET finished_at = ?, passed = ? WHERE id = ?",
                (now, int(passed), submission.assignment_id),
            )
            await conn.execute(
                "INSERT INTO worker_batches (worker_id, batch_id, status, reason, changed_at,"
                " retry_at) VALUES (:w, :b, :s, :r, :now, :retry)"
                " ON CONFLICT (worker_id, batch_id) DO UPDATE SET status = :s, reason = :r,"
                " changed_at = :now, retry_at = :retry",
                {
                    "w": worker_id,
                    "b": batch_id,
                    "s": "active" if passed else "failed",
                    "r": f"exam {score}/{total}",
                    "now": now,
                    "retry": retry_at,
                },
            )
            return replace(result, finished=True, passed=passed, retry_at=retry_at)

    async def dispute(self, attempt_id: int, worker_id: int, item_id: int, now: float) -> bool:
        """Files the worker's dispute of a training answer for the coordinator (once)."""
        async with self.db.atomic() as conn:
            rows = await records(
                conn,
                "SELECT t.worker_id, t.batch_id, e.correct FROM exam_attempts t"
                " LEFT JOIN exam_answers e ON e.attempt_id = t.id AND e.item_id = ?"
                " WHERE t.id = ?",
                (item_id, attempt_id),
            )
            if not rows:
                return False
            row = rows[0]
            correct = None if row["correct"] is None else bool(row["correct"])
            if not may_dispute(row["worker_id"] == worker_id, correct):
                return False
            await conn.execute(
                "INSERT INTO reports (item_id, batch_id, worker_id, reason, created_at)"
                " VALUES (?, ?, ?, 'disputed', ?) ON CONFLICT (item_id, worker_id) DO NOTHING",
                (item_id, row["batch_id"], worker_id, now),
            )
            return True

    @staticmethod
    async def _open_attempt(
        conn: aiosqlite.Connection, batch_id: int, worker_id: int
    ) -> int | None:
        rows = await conn.execute_fetchall(
            "SELECT id FROM exam_attempts WHERE batch_id = ? AND worker_id = ?"
            " AND finished_at IS NULL",
            (batch_id, worker_id),
        )
        return next((row[0] for row in rows), None)

    @staticmethod
    async def _draw(
        conn: aiosqlite.Connection,
        attempt: int,
        batch_id: int,
        worker_id: int,
        settings: BatchSettings,
    ) -> tuple[int, ...]:
        """The items this attempt asks, in order: drawn again from what it depends on (the
        batch's secret, the training items, the attempts before), so it needs no storing and
        is the same after a restart."""
        keys = {"attempt": attempt, "batch": batch_id, "worker": worker_id}
        rows = await records(
            conn,
            "SELECT b.gold_seed, (SELECT COUNT(*) FROM exam_attempts t WHERE t.batch_id = b.id"
            "  AND t.worker_id = :worker AND t.id < :attempt) AS earlier"
            " FROM batches b WHERE b.id = :batch",
            keys,
        )
        pool = await conn.execute_fetchall(
            "SELECT id FROM items WHERE batch_id = :batch AND exam = 1 ORDER BY position", keys
        )
        last = await conn.execute_fetchall(
            "SELECT item_id FROM exam_answers WHERE attempt_id = (SELECT MAX(id)"
            "  FROM exam_attempts WHERE batch_id = :batch AND worker_id = :worker"
            "  AND id < :attempt) ORDER BY created_at",
            keys,
        )
        return exam_questions(
            rows[0]["gold_seed"] or "",
            worker_id,
            rows[0]["earlier"],
            [item for (item,) in pool],
            settings.exam_size,
            [item for (item,) in last],
        )

    async def _question(
        self,
        conn: aiosqlite.Connection,
        attempt: int,
        batch_id: int,
        worker_id: int,
        settings: BatchSettings,
    ) -> ExamQuestion | None:
        """The attempt's first question not answered yet."""
        if settings.options is None:
            return None
        drawn = await self._draw(conn, attempt, batch_id, worker_id, settings)
        rows = await conn.execute_fetchall(
            "SELECT item_id FROM exam_answers WHERE attempt_id = ?", (attempt,)
        )
        answered = {item for (item,) in rows}
        item_id = next((item for item in drawn if item not in answered), None)
        if item_id is None:
            return None
        return await self._exam_question(
            conn, attempt, item_id, len(answered) + 1, len(drawn), settings
        )

    @staticmethod
    async def _exam_question(
        conn: aiosqlite.Connection,
        attempt: int,
        item_id: int,
        number: int,
        total: int,
        settings: BatchSettings,
    ) -> ExamQuestion:
        rows = await records(
            conn,
            "SELECT b.id AS batch_id, b.name, b.question, b.instructions, i.text, i.image,"
            " i.image_file_id FROM items i JOIN batches b ON b.id = i.batch_id WHERE i.id = ?",
            (item_id,),
        )
        row = rows[0]
        assert settings.options is not None
        return ExamQuestion(
            attempt,
            row["batch_id"],
            row["name"],
            row["question"],
            settings.options,
            row["instructions"],
            item_id,
            row["text"],
            row["image"],
            row["image_file_id"],
            number,
            total,
            exam_pass_mark(total, settings),
        )
