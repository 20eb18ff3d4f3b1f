"""Storage-level setup shared by the tests that drive the stores directly."""

from __future__ import annotations

from labeling.batch import BatchSettings
from labeling.batchfile import parse_batch_file
from labeling.models import BatchStatus, WorkerProfile
from storage.batches import BatchStore
from storage.db import Database
from storage.tasks import TaskStore


async def open_batch(db: Database, content: bytes, settings: BatchSettings) -> int:
    """Imports a CSV batch file and opens the batch."""
    store = BatchStore(db)
    items = parse_batch_file(content, "b.csv", settings)
    batch_id = await store.create(settings, items, now=0.0)
    await store.set_status(batch_id, BatchStatus.OPEN, 0.0)
    return batch_id


async def registered(db: Database, *worker_ids: int) -> TaskStore:
    """A task store with these workers registered."""
    tasks = TaskStore(db)
    for worker_id in worker_ids:
        await tasks.upsert_worker(WorkerProfile(worker_id, f"w{worker_id}"), 0.0)
    return tasks
