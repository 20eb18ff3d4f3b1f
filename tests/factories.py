"""Storage-level setup shared by the tests that drive the stores directly."""

from __future__ import annotations

from labeling import loop
from labeling.batch import BatchSettings
from labeling.batchfile import parse_batch_file
from labeling.models import BatchStatus, Issued, Outcome, Problem, Submission, WorkerProfile
from storage.batches import BatchStore
from storage.engine import Engine
from storage.tasks import TaskStore
from storage.workers import WorkerStore


async def open_batch(db: Engine, content: bytes, settings: BatchSettings) -> int:
    """Imports a CSV batch file and opens the batch."""
    store = BatchStore(db)
    items = parse_batch_file(content, "b.csv", settings)
    batch_id = await store.create(settings, items, now=0.0)
    await store.set_status(batch_id, BatchStatus.OPEN, 0.0)
    return batch_id


class Desk(TaskStore):
    """The labeling loop at moments a test chooses: each rule of labeling/loop.py run in one
    transaction, as WorkService runs it with its clock, and the worker registry beside it."""

    def __init__(self, db: Engine) -> None:
        super().__init__(db)
        self.workers = WorkerStore(db)
        self.upsert_worker = self.workers.upsert_worker
        self.set_notify = self.workers.set_notify
        self.swap_card = self.workers.swap_card
        self.worker_stats = self.workers.worker_stats

    async def current_or_next(self, worker_id: int, now: float, ttl: float) -> Issued:
        return await self.run(lambda unit: loop.current_or_next(unit, worker_id, now, ttl))

    async def submit(self, submission: Submission, now: float, ttl: float) -> Outcome:
        return await self.run(lambda unit: loop.submit(unit, submission, now, ttl))

    async def skip(self, assignment_id: int, worker_id: int, now: float, ttl: float) -> Outcome:
        return await self.run(lambda unit: loop.skip(unit, assignment_id, worker_id, now, ttl))

    async def report(
        self, assignment_id: int, worker_id: int, problem: Problem, now: float, ttl: float
    ) -> Outcome:
        return await self.run(
            lambda unit: loop.report(unit, assignment_id, worker_id, problem, now, ttl)
        )

    async def withdraw_unshowable(self, assignment_id: int, now: float) -> None:
        await self.run(lambda unit: loop.withdraw_unshowable(unit, assignment_id, now))


async def registered(db: Engine, *worker_ids: int) -> Desk:
    """The loop's stores with these workers registered."""
    tasks = Desk(db)
    for worker_id in worker_ids:
        await tasks.upsert_worker(WorkerProfile(worker_id, f"w{worker_id}"), 0.0)
    return tasks
