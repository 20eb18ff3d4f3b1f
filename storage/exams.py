"""Training exams: the reads and writes of attempts, their answers and admission to a batch,
whose rules live in labeling/exams.py. Rows are read by name."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from labeling import exams
from labeling.batch import BatchSettings
from labeling.models import BatchStatus, ExamQuestion, ExamResult, Problem, Submission
from labeling.ports import Candidate, ExamDraw, ExamPlace, HeldQuestion, MarkedAnswer
from storage.engine import Engine, Tx
from storage.settings import SettingsCache

T = TypeVar("T")

# The open batches in order, with the worker's standing in each; none for a banned worker.
_EXAM_PLACES = """
    SELECT b.id AS batch_id, b.name, wb.status, wb.retry_at
    FROM batches b INDEXED BY batches_open
    LEFT JOIN worker_batches wb ON wb.batch_id = b.id AND wb.worker_id = :w
    WHERE b.status = 'open'
      AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = :w AND w.status = 'banned')
    ORDER BY b.id
"""
# An exam question with its attempt, if the item is a training item of the attempt's batch.
_HELD_QUESTION = """
    SELECT t.id AS attempt_id, t.worker_id, t.batch_id, t.finished_at, b.name,
           b.status AS batch_status, i.gold, i.explanation, wb.status AS standing,
           EXISTS (SELECT 1 FROM exam_answers e WHERE e.attempt_id = t.id AND e.item_id = i.id)
             AS answered,
           EXISTS (SELECT 1 FROM workers w WHERE w.id = t.worker_id AND w.status = 'banned')
             AS banned
    FROM exam_attempts t JOIN batches b ON b.id = t.batch_id
    JOIN items i ON i.id = :item AND i.batch_id = t.batch_id
    LEFT JOIN worker_batches wb ON wb.worker_id = t.worker_id AND wb.batch_id = t.batch_id
    WHERE t.id = :attempt
"""


class SqlExamUnit:
    """The training exams' reads and writes (labeling.ports.ExamUnit) inside one
    transaction."""

    def __init__(self, tx: Tx, settings: SettingsCache) -> None:
        self.tx = tx
        self._settings = settings

    # -- reads ----------------------------------------------------------------------------

    def exam_places(self, worker_id: int) -> list[ExamPlace]:
        return [
            ExamPlace(row["batch_id"], row["name"], row["status"], row["retry_at"])
            for row in self.tx.rows(_EXAM_PLACES, {"w": worker_id})
        ]

    def settings(self, batch_id: int) -> BatchSettings:
        return self._settings.read(self.tx, batch_id)

    def open_attempt(self, batch_id: int, worker_id: int) -> int | None:
        value = self.tx.value(
            "SELECT id FROM exam_attempts WHERE worker_id = ? AND batch_id = ?"
            " AND finished_at IS NULL",
            (worker_id, batch_id),
        )
        return None if value is None else int(value)

    def last_score(self, batch_id: int, worker_id: int) -> tuple[int, int]:
        row = self.tx.row(
            "SELECT correct, answered FROM exam_attempts WHERE worker_id = ? AND batch_id = ?"
            " AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1",
            (worker_id, batch_id),
        )
        return (0, 0) if row is None else (row["correct"], row["answered"])

    def draw(self, attempt_id: int, batch_id: int, worker_id: int) -> ExamDraw:
        keys = {"attempt": attempt_id, "batch": batch_id, "worker": worker_id}
        batch = self.tx.row(
            "SELECT b.gold_seed, (SELECT COUNT(*) FROM exam_attempts t WHERE t.batch_id = b.id"
            "  AND t.worker_id = :worker AND t.id < :attempt) AS earlier"
            " FROM batches b WHERE b.id = :batch",
            keys,
        )
        assert batch is not None
        pool = self.tx.rows(
            "SELECT id FROM items WHERE batch_id = :batch AND exam = 1 ORDER BY position", keys
        )
        last = self.tx.rows(
            "SELECT item_id FROM exam_answers WHERE attempt_id = (SELECT MAX(id)"
            "  FROM exam_attempts WHERE batch_id = :batch AND worker_id = :worker"
            "  AND id < :attempt) ORDER BY created_at",
            keys,
        )
        return ExamDraw(
            batch["gold_seed"] or "",
            batch["earlier"],
            [row["id"] for row in pool],
            [row["item_id"] for row in last],
        )

    def answered_items(self, attempt_id: int) -> list[int]:
        rows = self.tx.rows("SELECT item_id FROM exam_answers WHERE attempt_id = ?", (attempt_id,))
        return [row["item_id"] for row in rows]

    def card(self, item_id: int) -> Candidate:
        row = self.tx.row(
            "SELECT b.id AS batch_id, b.name, b.question, b.options, b.instructions, i.text,"
            " i.image, i.image_file_id FROM items i JOIN batches b ON b.id = i.batch_id"
            " WHERE i.id = ?",
            (item_id,),
        )
        assert row is not None
        return Candidate(
            batch_id=row["batch_id"],
            batch_name=row["name"],
            question=row["question"],
            options=None if row["options"] is None else tuple(json.loads(row["options"])),
            instructions=row["instructions"],
            item_id=item_id,
            text=row["text"],
            image=row["image"],
            image_file_id=row["image_file_id"],
        )

    def held_question(self, attempt_id: int, item_id: int) -> HeldQuestion | None:
        if self.tx.engine == "postgresql":
            # Answers to one attempt take turns across replicas: each reads the count and the
            # answers the one before left (SQLite has one writer).
            self.tx.execute("SELECT 1 FROM exam_attempts WHERE id = ? FOR UPDATE", (attempt_id,))
        row = self.tx.row(_HELD_QUESTION, {"attempt": attempt_id, "item": item_id})
        if row is None:
            return None
        return HeldQuestion(
            attempt_id=row["attempt_id"],
            worker_id=row["worker_id"],
            batch_id=row["batch_id"],
            batch_name=row["name"],
            batch_status=BatchStatus(row["batch_status"]),
            finished=row["finished_at"] is not None,
            answered=bool(row["answered"]),
            banned=bool(row["banned"]),
            standing=row["standing"],
            gold=row["gold"],
            explanation=row["explanation"],
        )

    def marked(self, attempt_id: int, item_id: int) -> MarkedAnswer | None:
        row = self.tx.row(
            "SELECT t.worker_id, t.batch_id, e.correct FROM exam_attempts t"
            " LEFT JOIN exam_answers e ON e.attempt_id = t.id AND e.item_id = ?"
            " WHERE t.id = ?",
            (item_id, attempt_id),
        )
        if row is None:
            return None
        correct = None if row["correct"] is None else bool(row["correct"])
        return MarkedAnswer(row["worker_id"], row["batch_id"], correct)

    # -- writes ---------------------------------------------------------------------------

    def start_attempt(self, batch_id: int, worker_id: int, now: float) -> int:
        # Two replicas starting the same exam at once: the index exam_attempts_one_open
        # refuses the second, whose change is run again and finds the first's attempt.
        return self.tx.insert(
            "INSERT INTO exam_attempts (batch_id, worker_id, started_at) VALUES (?, ?, ?)",
            (batch_id, worker_id, now),
        )

    def record_answer(
        self, attempt_id: int, item_id: int, value: str, correct: bool, now: float
    ) -> tuple[int, int]:
        self.tx.execute(
            "INSERT INTO exam_answers (attempt_id, item_id, value, correct, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (attempt_id, item_id, value, int(correct), now),
        )
        (score,) = self.tx.rows(
            "UPDATE exam_attempts SET answered = answered + 1, correct = correct + ?"
            " WHERE id = ? RETURNING answered, correct",
            (int(correct), attempt_id),
        )
        return score["answered"], score["correct"]

    def finish_attempt(self, attempt_id: int, passed: bool, now: float) -> None:
        self.tx.execute(
            "UPDATE exam_attempts SET finished_at = ?, passed = ? WHERE id = ?",
            (now, int(passed), attempt_id),
        )

    def set_standing(
        self,
        worker_id: int,
        batch_id: int,
        status: str,
        reason: str,
        now: float,
        retry_at: float | None,
    ) -> None:
        self.tx.execute(
            "INSERT INTO worker_batches (worker_id, batch_id, status, reason, changed_at,"
            " retry_at) VALUES (:w, :b, :s, :r, :now, :retry)"
            " ON CONFLICT (worker_id, batch_id) DO UPDATE SET status = :s, reason = :r,"
            " changed_at = :now, retry_at = :retry",
            {
                "w": worker_id,
                "b": batch_id,
                "s": status,
                "r": reason,
                "now": now,
                "retry": retry_at,
            },
        )

    def add_report(
        self, item_id: int, batch_id: int, worker_id: int, problem: Problem, now: float
    ) -> None:
        self.tx.execute(
            "INSERT INTO reports (item_id, batch_id, worker_id, reason, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (item_id, worker_id) DO NOTHING",
            (item_id, batch_id, worker_id, problem.value, now),
        )


class ExamStore:
    """Runs the exam rules of labeling/exams.py, each in one transaction."""

    def __init__(self, db: Engine) -> None:
        self.db = db
        self._settings = SettingsCache()

    async def run(self, change: Callable[[SqlExamUnit], T]) -> T:
        return await self.db.run(lambda tx: change(SqlExamUnit(tx, self._settings)))

    async def next_question(self, worker_id: int, now: float) -> ExamQuestion | ExamResult | None:
        return await self.run(partial(exams.next_question, worker_id=worker_id, now=now))

    async def answer(self, submission: Submission, item_id: int, now: float) -> ExamResult:
        return await self.run(
            partial(exams.answer, submission=submission, item_id=item_id, now=now)
        )

    async def dispute(self, attempt_id: int, worker_id: int, item_id: int, now: float) -> bool:
        return await self.run(
            partial(
                exams.dispute, attempt_id=attempt_id, worker_id=worker_id, item_id=item_id, now=now
            )
        )
