"""The domain's value types: what a batch, an item, a task and an answer are."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from labeling.gold import NO_PEERS, Peers
from labeling.kinds import Reply, TaskKind, kind_for

# What the services read the time from: time.time, or a test's own clock.
Clock = Callable[[], float]

if TYPE_CHECKING:
    from labeling.batch import BatchSettings
    from labeling.pay import PayRate


RATE_WINDOW = 900.0  # a batch's current rate is its answers over the last 15 minutes


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
    TOO_LONG = "too_long"  # a typed answer over answering.MAX_FREE_TEXT characters


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
    answered_in_batch: int  # the worker's answers in this batch so far

    @property
    def kind(self) -> TaskKind:
        return kind_for(self.options)

    @property
    def free_text(self) -> bool:
        """Whether the worker answers by typing a message."""
        return self.kind.card().reply is Reply.TEXT

    @property
    def opens_batch(self) -> bool:
        """Whether this is where the worker starts on its batch (nothing answered there yet,
        or again after a coordinator let them back in): its card carries the instructions,
        whichever way the worker came in."""
        return self.answered_in_batch == 0


@dataclass(frozen=True, slots=True)
class ExamQuestion:
    """One question of a batch's training exam, shown openly as training."""

    attempt_id: int
    batch_id: int
    batch_name: str
    question: str
    options: tuple[str, ...]
    instructions: str | None
    item_id: int
    text: str | None
    image: str | None
    image_file_id: str | None
    number: int  # 1-based place in the exam
    total: int
    pass_mark: int = 0  # right answers needed to pass, said before the first question

    @property
    def kind(self) -> TaskKind:
        return kind_for(self.options)


@dataclass(frozen=True, slots=True)
class ExamResult:
    """What an exam answer did, and where the worker stands after it."""

    verdict: Verdict
    correct: bool = False
    right_answer: str | None = None
    explanation: str | None = None
    finished: bool = False
    passed: bool = False
    score: int = 0
    total: int = 0
    retry_at: float | None = None  # a failed worker may try again from then on
    batch_name: str = ""
    pass_mark: int = 0
    question: ExamQuestion | None = None  # the question answered, shown with its feedback


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
    # False when the worker is banned, or suspended from the batch: it is closed to them.
    may_work: bool = True

    @property
    def kind(self) -> TaskKind:
        """How the task asks, which decides what a submission may be (labeling.kinds)."""
        return kind_for(self.options)


@dataclass(frozen=True, slots=True)
class Submission:
    """A worker's tap or typed reply for one assignment, not yet trusted."""

    assignment_id: int
    worker_id: int
    option: int | None = None
    text: str | None = None
    source: str | None = None  # the worker's message a typed answer came in, if any


@dataclass(frozen=True, slots=True)
class Closed:
    """A batch that has closed to this worker: gold was due and they had dodged it, or seen
    every gold item before giving enough gold answers to be judged."""

    batch_name: str


@dataclass(frozen=True, slots=True)
class Issued:
    """What handing out the next task did: the task (None when nothing is left), the batch the
    worker was just suspended from, and a batch that closed to them, if any."""

    task: Task | None = None
    suspended: str | None = None
    closed: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a submission did: the verdict, the task to show next (None when nothing is left),
    the batch's name if this answer got the worker suspended from it, and a batch that closed
    to them. `card` is the worker's live card as it was stored (None when none is, or the
    assignment was not found): read with the submission, so a tap on that card needs no
    other read to know it stays live."""

    verdict: Verdict
    next_task: Task | None = None
    suspended: str | None = None
    closed: str | None = None
    card: int | None = None

    @property
    def saved(self) -> bool:
        return self.verdict is Verdict.ACCEPTED

    @property
    def shown(self) -> Task | Closed | None:
        """What the worker sees next."""
        if self.next_task is None and self.closed is not None:
            return Closed(self.closed)
        return self.next_task


class Problem(StrEnum):
    """What a worker may report about an item: instead of answering it, or, in training, about
    the answer they were shown."""

    UNCLEAR = "unclear"
    BROKEN = "broken"
    OFFENSIVE = "offensive"
    DISPUTED = "disputed"  # a training question's known answer, shown openly, looks wrong


@dataclass(frozen=True, slots=True)
class WorkerStats:
    answers: int
    answers_today: int
    skipped: int
    batches: int
    earned: float
    open_task: bool
    seconds_worked: float = 0.0  # from each task handed out to its answer

    @property
    def hourly_rate(self) -> float | None:
        """Earnings per hour of labeling, the way Prolific reckons pay."""
        return self.earned / self.seconds_worked * 3600 if self.seconds_worked > 0 else None


@dataclass(frozen=True, slots=True)
class AnswerCounts:
    """A batch's answers in the words every report uses (status, exports, chart, notices)."""

    counted: int  # on ordinary items, from workers not suspended: they make the labels
    excluded: int  # from workers suspended in the batch: kept, paid, left out of the labels
    stored: int  # every answer, those on gold items included

    def describe(self) -> str:
        return (
            f"{self.counted} counted, {self.excluded} excluded (suspended workers),"
            f" {self.stored} stored"
        )


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """Progress, quality and pay of one batch, for `status`."""

    batch_id: int
    name: str
    status: BatchStatus
    question: str
    options: tuple[str, ...] | None
    overlap: int
    reward: float
    items: int  # ordinary items, gold not included
    gold_items: int
    items_done: int
    answers: int  # stored: every answer, gold and excluded ones included
    answers_counted: int  # counted: answers on ordinary items that count towards their labels
    answers_needed: int  # what the ordinary items ask for now (dynamic overlap may raise it)
    workers: int
    open_tasks: int
    created_at: float
    published_at: float | None = None
    suspended: int = 0
    gold_answers: int = 0
    gold_correct: int = 0
    fast_answers: int = 0
    median_ms: int | None = None
    method: str = ""
    alpha: float | None = None
    pay: PayRate | None = None
    recent_answers: int = 0  # answers on ordinary items within the last RATE_WINDOW seconds
    answers_excluded: int = 0  # excluded: answers from workers suspended in the batch
    # Answers the ordinary items still lack, item by item (an item with more answers than it
    # needs, after a worker was reinstated, does not make up for another); None: from the counts.
    answers_missing: int | None = None
    spent: float = 0.0  # what the pay ledger holds for the batch
    completed_at: float | None = None  # when every ordinary item first had its answers

    @property
    def counts(self) -> AnswerCounts:
        return AnswerCounts(self.answers_counted, self.answers_excluded, self.answers)

    @property
    def still_needed(self) -> int:
        if self.answers_missing is not None:
            return self.answers_missing
        return max(0, self.answers_needed - self.answers_counted)

    @property
    def rate_per_hour(self) -> float:
        return self.recent_answers * 3600 / RATE_WINDOW

    @property
    def seconds_to_finish(self) -> float | None:
        """At the current rate; None when nothing is coming in."""
        remaining = self.still_needed
        if remaining == 0:
            return 0.0
        return remaining / self.rate_per_hour * 3600 if self.recent_answers else None

    @property
    def progress(self) -> float:
        if not self.answers_needed:
            return 1.0
        return min(1.0, 1 - self.still_needed / self.answers_needed)

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answers if self.gold_answers else None


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


@dataclass(frozen=True, slots=True)
class WorkerStanding:
    """One worker's record in one batch, for the coordinator."""

    worker_id: int
    name: str
    status: str
    answers: int
    gold_answers: int
    gold_correct: int
    fast_answers: int
    reason: str | None
    peers: Peers = NO_PEERS  # agreement with other workers on finished items


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One worker as a coordinator sees them: work, quality and what they are owed."""

    worker_id: int
    name: str
    status: str
    reachable: bool
    answers: int
    gold_answers: int
    gold_correct: int
    earned: float
    seconds_worked: float
    reason: str | None = None  # why their standing in the batch changed (a suspension)

    @property
    def accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answers if self.gold_answers else None

    @property
    def hourly_rate(self) -> float | None:
        return self.earned / self.seconds_worked * 3600 if self.seconds_worked > 0 else None
