"""What the domain needs from storage: narrow, typed, and free of SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from labeling.batch import BatchSettings, ItemRow
from labeling.gold import Schedule
from labeling.models import (
    AssignmentState,
    AssignmentStatus,
    BatchStatus,
    BatchSummary,
    ExamQuestion,
    ExamResult,
    ExportAnswer,
    ExportItem,
    Problem,
    StoredBatch,
    Submission,
    Task,
    WorkerProfile,
    WorkerRow,
    WorkerStanding,
    WorkerStats,
)
from labeling.quality import Suspension, Trust
from labeling.review import Reporter

T = TypeVar("T")


# -- the labeling loop's unit of work -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Held:
    """An assignment as the answer path reads it, with what judging and scoring it needs."""

    state: AssignmentState
    kind: str  # "task" or "gold"
    gold: str | None  # the known answer of a gold item
    item_state: str  # "ok", "broken" or "suspect"
    median_ms: int | None  # the batch's typical answer time, when known
    card: int | None  # the worker's live card


@dataclass(frozen=True, slots=True)
class OpenTask:
    """A task the worker holds, and whether its batch still takes answers."""

    task: Task
    kind: str
    batch_open: bool


@dataclass(frozen=True, slots=True)
class Answered:
    """The answer just stored, whose batch's trust rules run before the next task is picked."""

    batch_id: int
    item_id: int
    kind: str


@dataclass(frozen=True, slots=True)
class NewAnswer:
    state: AssignmentState
    value: str
    duration_ms: int
    created_at: float
    correct: bool | None  # None: not gold, or gold that counts in no one's record
    fast: bool
    source: str | None  # the Telegram update it came from, stored once


@dataclass(frozen=True, slots=True)
class WorkerBatch:
    """A worker's place in one open batch: their record, and where their gold stream is.
    `status` is None where they never worked."""

    batch_id: int
    batch_name: str
    gold_total: int
    gold_seed: str
    status: str | None
    cause: str | None
    trust: Trust
    schedule: Schedule
    gold_returned: int
    task_cursor: int  # the highest ordinary item handed to the worker here
    gold_cursor: int  # how far along their walk through the gold ranks they are

    @property
    def answers(self) -> int:
        return self.trust.answers


@dataclass(frozen=True, slots=True)
class Candidate:
    """An item that may be handed to the worker, with what its card shows."""

    batch_id: int
    batch_name: str
    question: str
    options: tuple[str, ...] | None
    instructions: str | None
    item_id: int
    text: str | None
    image: str | None
    image_file_id: str | None
    gold_rank: int | None = None  # a gold item's place in its batch's order


@dataclass(frozen=True, slots=True)
class Tally:
    """An ordinary item's overlap, and the counted votes on it: (value, gold right, gold seen)
    of each worker who answered."""

    target: int
    answers: int
    wanted: int
    votes: Sequence[tuple[str, int, int]]


@dataclass(frozen=True, slots=True)
class ItemReports:
    item_state: str
    gold: bool
    reporters: Sequence[Reporter]  # who reported the item this way since it was last reviewed


class TaskUnit(Protocol):
    """The reads and writes of the labeling loop, inside one transaction."""

    def answered_from(self, source: str) -> bool: ...
    def held(self, assignment_id: int) -> Held | None: ...
    def open_tasks(self, worker_id: int) -> Sequence[OpenTask]: ...
    def settings(self, batch_id: int) -> BatchSettings: ...
    def worker_batches(self, worker_id: int) -> Sequence[WorkerBatch]:
        """The open batches in order, with the worker's place in each (none if banned)."""
        ...

    def tally(self, item_id: int) -> Tally: ...
    def reports(self, item_id: int, problem: Problem) -> ItemReports: ...
    def pick_gold(self, batch_id: int, worker_id: int, low: int, high: int) -> Candidate | None:
        """The gold item of the batch with the lowest rank in [low, high) that the worker has
        never seen, if any."""
        ...

    def pick_task(
        self, batch_id: int, worker_id: int, after: int, upto: int = 2**62
    ) -> Candidate | None:
        """The ordinary item with the lowest id in (after, upto] that the batch wants and the
        worker has never been given, if any."""
        ...

    def insert_answer(self, answer: NewAnswer) -> None: ...
    def assign(
        self,
        worker_id: int,
        candidate: Candidate,
        kind: str,
        now: float,
        ttl: float,
        answered: int,
    ) -> Task: ...
    def save_place(
        self, worker_id: int, batch_id: int, schedule: Schedule, task_cursor: int, gold_cursor: int
    ) -> None:
        """Stores where the worker's gold stream and their walks through the batch stand."""
        ...

    def close(
        self, assignment_id: int, item_id: int, kind: str, status: AssignmentStatus, now: float
    ) -> None:
        """Closes an open assignment; an ordinary item goes back to the pool."""
        ...

    def forget_gold_returned(self, worker_id: int, batch_id: int) -> None:
        """Takes back the count of a gold task given back: it was released, not returned."""
        ...

    def suspend(self, worker_id: int, batch_id: int, verdict: Suspension, now: float) -> None: ...
    def widen(self, item_id: int) -> None:
        """Asks one more answer on an item."""
        ...

    def add_report(
        self, item_id: int, batch_id: int, worker_id: int, problem: Problem, now: float
    ) -> None: ...
    def set_item_state(self, item_id: int, state: str) -> None: ...


class TaskRepository(Protocol):
    async def run(self, change: Callable[[TaskUnit], T]) -> T:
        """Runs `change` (a rule of labeling/loop.py) in one transaction."""
        ...

    async def open_task(self, worker_id: int, now: float) -> Task | None: ...
    async def refresh_medians(self) -> None: ...
    async def reinstate(
        self, worker_id: int, batch_id: int, now: float, *, by: int | None = None
    ) -> bool: ...
    async def expire(self, now: float) -> int: ...
    async def remember_image(self, item_id: int, file_id: str) -> None: ...


class WorkerRepository(Protocol):
    async def upsert_worker(
        self, profile: WorkerProfile, now: float, *, notify: bool = False
    ) -> None: ...
    async def set_notify(self, worker_id: int, enabled: bool) -> bool: ...
    async def mark_unreachable(self, worker_id: int) -> None: ...
    async def swap_card(self, worker_id: int, message_id: int) -> int | None: ...
    async def worker_stats(self, worker_id: int, day_start: float) -> WorkerStats: ...


class BatchRepository(Protocol):
    async def create(
        self,
        settings: BatchSettings,
        items: Sequence[ItemRow],
        *,
        now: float,
        source: str | None = None,
        created_by: int | None = None,
        source_file: str | None = None,
    ) -> int: ...
    async def discard_unfinished(self, before: float) -> list[int]: ...
    async def by_source_file(self, source_file: str) -> int | None: ...
    async def get(self, batch_id: int) -> StoredBatch: ...
    async def set_status(
        self,
        batch_id: int,
        status: BatchStatus,
        now: float,
        *,
        announce: str | None = None,
        by: int | None = None,
        paid: bool = False,
        audience: str = "all",
    ) -> BatchStatus: ...
    async def announce(
        self, text: str, now: float, *, by: int | None = None, source: str | None = None
    ) -> bool: ...
    async def summaries(
        self, batch_id: int | None = None, *, since: float | None = None
    ) -> list[BatchSummary]: ...
    async def votes(self, batch_id: int) -> list[tuple[int, str, int]]: ...
    async def standings(self, batch_id: int) -> list[WorkerStanding]: ...
    async def progress(self, batch_id: int, buckets: int = 60) -> list[tuple[float, int]]: ...
    async def worker_rows(
        self, batch_id: int | None = None, limit: int = 10_000
    ) -> list[WorkerRow]: ...
    def items(self, batch_id: int) -> AsyncIterator[ExportItem]: ...
    def answers(self, batch_id: int) -> AsyncIterator[ExportAnswer]: ...


class ExamRepository(Protocol):
    async def next_question(
        self, worker_id: int, now: float
    ) -> ExamQuestion | ExamResult | None: ...
    async def answer(self, submission: Submission, item_id: int, now: float) -> ExamResult: ...
    async def dispute(self, attempt_id: int, worker_id: int, item_id: int, now: float) -> bool: ...


# -- the training exams' unit of work -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExamPlace:
    """An open batch and where the worker stands in it, for the exam rules: `status` is None
    where they never worked."""

    batch_id: int
    batch_name: str
    status: str | None
    retry_at: float | None


@dataclass(frozen=True, slots=True)
class ExamDraw:
    """What the questions of an attempt are drawn from: the batch's secret, the attempts the
    worker made there before, the training items in file order and what the last attempt
    asked, in its order."""

    seed: str
    earlier: int
    pool: Sequence[int]
    last: Sequence[int]


@dataclass(frozen=True, slots=True)
class HeldQuestion:
    """An exam question as the answer path reads it: its attempt, and the item's known answer.
    `standing` is the worker's status in the batch (None where they have none)."""

    attempt_id: int
    worker_id: int
    batch_id: int
    batch_name: str
    batch_status: BatchStatus
    finished: bool
    answered: bool  # this question of this attempt
    banned: bool
    standing: str | None
    gold: str | None
    explanation: str | None


@dataclass(frozen=True, slots=True)
class MarkedAnswer:
    """An attempt's answer to one question, as a dispute reads it; `correct` is None where the
    question was not answered."""

    worker_id: int
    batch_id: int
    correct: bool | None


class ExamUnit(Protocol):
    """The reads and writes of the training exams, inside one transaction."""

    def exam_places(self, worker_id: int) -> Sequence[ExamPlace]:
        """The open batches in order, with the worker's place in each (none if banned)."""
        ...

    def settings(self, batch_id: int) -> BatchSettings: ...
    def open_attempt(self, batch_id: int, worker_id: int) -> int | None: ...
    def last_score(self, batch_id: int, worker_id: int) -> tuple[int, int]:
        """The right answers and the questions of the worker's last finished attempt there."""
        ...

    def draw(self, attempt_id: int, batch_id: int, worker_id: int) -> ExamDraw: ...
    def answered_items(self, attempt_id: int) -> Sequence[int]: ...
    def card(self, item_id: int) -> Candidate:
        """What a training item's card shows."""
        ...

    def held_question(self, attempt_id: int, item_id: int) -> HeldQuestion | None:
        """The question, if `item_id` is a training item of the attempt's batch. Another
        answer to the same attempt waits until this transaction ends."""
        ...

    def marked(self, attempt_id: int, item_id: int) -> MarkedAnswer | None: ...
    def start_attempt(self, batch_id: int, worker_id: int, now: float) -> int: ...
    def record_answer(
        self, attempt_id: int, item_id: int, value: str, correct: bool, now: float
    ) -> tuple[int, int]:
        """Stores the answer; returns the attempt's answers and right answers so far."""
        ...

    def finish_attempt(self, attempt_id: int, passed: bool, now: float) -> None: ...
    def set_standing(
        self,
        worker_id: int,
        batch_id: int,
        status: str,
        reason: str,
        now: float,
        retry_at: float | None,
    ) -> None: ...
    def add_report(
        self, item_id: int, batch_id: int, worker_id: int, problem: Problem, now: float
    ) -> None: ...
