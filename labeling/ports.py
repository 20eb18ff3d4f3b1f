"""What the domain needs from storage: narrow, typed, and free of SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from labeling.batch import BatchSettings, ItemRow
from labeling.models import (
    BatchStatus,
    BatchSummary,
    ExamQuestion,
    ExamResult,
    ExportAnswer,
    ExportItem,
    Issued,
    Outcome,
    Problem,
    StoredBatch,
    Submission,
    Task,
    WorkerProfile,
    WorkerRow,
    WorkerStanding,
    WorkerStats,
)


class TaskRepository(Protocol):
    async def upsert_worker(
        self, profile: WorkerProfile, now: float, *, notify: bool = False
    ) -> None: ...
    async def set_notify(self, worker_id: int, enabled: bool) -> bool: ...
    async def mark_unreachable(self, worker_id: int) -> None: ...
    async def open_task(self, worker_id: int, now: float) -> Task | None: ...
    async def current_or_next(self, worker_id: int, now: float, ttl: float) -> Issued: ...
    async def submit(self, submission: Submission, now: float, ttl: float) -> Outcome: ...
    async def skip(self, assignment_id: int, worker_id: int, now: float, ttl: float) -> Outcome: ...
    async def report(
        self, assignment_id: int, worker_id: int, problem: Problem, now: float, ttl: float
    ) -> Outcome: ...
    async def refresh_medians(self) -> None: ...
    async def reinstate(self, worker_id: int, batch_id: int, now: float) -> bool: ...
    async def expire(self, now: float) -> int: ...
    async def remember_image(self, item_id: int, file_id: str) -> None: ...
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
    ) -> BatchStatus: ...
    async def announce(
        self, text: str, now: float, *, by: int | None = None, source: str | None = None
    ) -> bool: ...
    async def summaries(
        self, batch_id: int | None = None, *, since: float | None = None
    ) -> list[BatchSummary]: ...
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
