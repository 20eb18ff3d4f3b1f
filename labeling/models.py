"""The domain's value types: what a batch, an item, a task and an answer are."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labeling.batch import BatchSettings


class BatchStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAUSED = "paused"
    CLOSED = "closed"


class Verdict(StrEnum):
    """What becomes of a tap or reply; only ACCEPTED leads to a write."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # the same assignment was answered already: a double tap or replay
    NOT_FOUND = "not_found"
    NOT_YOURS = "not_yours"
    EXPIRED = "expired"
    SKIPPED = "skipped"
    BATCH_NOT_OPEN = "batch_not_open"
    INVALID = "invalid"


class AssignmentStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    SKIPPED = "skipped"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class WorkerProfile:
    """Who a worker is, as Telegram tells us."""

    telegram_id: int
    name: str
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """One item shown to one worker: an open assignment with what the card needs."""

    assignment_id: int
    batch_id: int
    batch_name: str
    question: str
    options: tuple[str, ...] | None
    instructions: str | None
    item_id: int
    text: str | None
    image: str | None
    image_file_id: str | None
    expires_at: float

    @property
    def free_text(self) -> bool:
        return self.options is None


@dataclass(frozen=True, slots=True)
class AssignmentState:
    """What the answer path needs to know about an assignment to judge a submission."""

    assignment_id: int
    worker_id: int
    item_id: int
    batch_id: int
    status: AssignmentStatus
    issued_at: float
    expires_at: float
    batch_status: BatchStatus
    options: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class Submission:
    """A worker's tap or typed reply for one assignment, not yet trusted."""

    assignment_id: int
    worker_id: int
    option: int | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a submission did: the verdict, the task to show next (None when nothing is left),
    and the batch's name if this answer got the worker suspended from it."""

    verdict: Verdict
    next_task: Task | None = None
    suspended: str | None = None

    @property
    def saved(self) -> bool:
        return self.verdict is Verdict.ACCEPTED


@dataclass(frozen=True, slots=True)
class WorkerStats:
    answers: int
    answers_today: int
    skipped: int
    batches: int
    earned: float
    open_task: bool


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """Progress of one batch, for `status`."""

    batch_id: int
    name: str
    status: BatchStatus
    question: str
    options: tuple[str, ...] | None
    overlap: int
    reward: float
    items: int
    gold_items: int
    items_done: int
    answers: int
    workers: int
    open_tasks: int
    created_at: float
    published_at: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def answers_needed(self) -> int:
        return self.items * self.overlap

    @property
    def progress(self) -> float:
        return min(1.0, self.answers / self.answers_needed) if self.answers_needed else 1.0


@dataclass(frozen=True, slots=True)
class StoredBatch:
    batch_id: int
    settings: BatchSettings
    status: BatchStatus


@dataclass(frozen=True, slots=True)
class ExportItem:
    item_id: int
    external_id: str | None
    text: str | None
    image: str | None
    gold: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ExportAnswer:
    answer_id: int
    item_id: int
    external_id: str | None
    worker_id: int
    value: str
    duration_ms: int
    created_at: float
    gold: bool = False
    correct: bool | None = None
    fast: bool = False
    excluded: str | None = None  # why the answer does not count: the worker was suspended


class BatchNotFound(LookupError):
    """No batch has the id a coordinator gave."""
