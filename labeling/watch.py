"""What coordinators are told about their batches without asking: that a batch is complete
(once), and digests of the workers suspended since the last one (one message listing them, at
most one per batch every few minutes, rather than one message per worker)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from labeling.models import BatchSummary, Clock
from labeling.ports import BatchRepository
from labeling.report import MESSAGE_LIMIT, pages

DIGEST_EVERY = 300.0  # seconds between two digests of one batch


@dataclass(frozen=True, slots=True)
class Watched:
    """What the rules below read of an open or paused batch."""

    batch_id: int
    name: str
    created_by: int | None
    has_items: bool  # it has ordinary items
    unanswered: bool  # one of them still lacks answers
    completed: bool  # every item had its answers once, and its coordinator was told
    digest_at: float | None  # when the last digest went out
    pending: int  # suspensions no digest has listed yet


@dataclass(frozen=True, slots=True)
class Suspended:
    worker_id: int
    name: str
    reason: str | None
    changed_at: float = 0.0  # when the suspension began


class WatchRepository(Protocol):
    async def watched(self) -> list[Watched]: ...
    async def unreported(self, batch_id: int) -> list[Suspended]: ...
    async def complete(
        self, batch_id: int, recipients: Sequence[int], text: str, now: float
    ) -> bool: ...
    async def digested(
        self,
        batch_id: int,
        since: float | None,
        recipients: Sequence[int],
        text: str,
        workers: Sequence[Suspended],
        now: float,
    ) -> bool:
        """Queues the digest unless one went out after `since` (another replica's round)."""
        ...


def is_complete(batch: Watched) -> bool:
    """Every ordinary item has its answers, for the first time."""
    return batch.has_items and not batch.unanswered and not batch.completed


def digest_due(batch: Watched, now: float, every: float = DIGEST_EVERY) -> bool:
    return batch.pending > 0 and (batch.digest_at is None or now - batch.digest_at >= every)


def recipients(created_by: int | None, owners: frozenset[int]) -> list[int]:
    """The batch's coordinator; the owners for a batch nobody in the chat uploaded."""
    return [created_by] if created_by is not None else sorted(owners)


def completion(summary: BatchSummary) -> str:
    return (
        f"Batch {summary.batch_id} '{summary.name}' is complete: every item has its answers"
        f" ({summary.counts.describe()}). Results: /export {summary.batch_id} labels"
    )


def digest(batch_id: int, name: str, workers: Sequence[Suspended]) -> str:
    """One message listing the workers, cut to Telegram's limit with a count of the rest."""
    count = len(workers)
    header = (
        f"{count} worker{'' if count == 1 else 's'} suspended in batch {batch_id} '{name}'"
        " since the last digest:"
    )
    footer = f"Their standing: /workers {batch_id}. Let one back in: /reinstate {batch_id} WORKER"
    more = f"… and {count} more: /workers {batch_id}"
    room = MESSAGE_LIMIT - len(header) - len(footer) - len(more) - 3
    lines = [
        f"worker {worker.worker_id} {worker.name!r}: {worker.reason or 'no reason recorded'}"
        for worker in workers
    ]
    shown = pages(lines, room)[:1]
    listed = shown[0].count("\n") + 1 if shown else 0
    body = shown + ([f"… and {count - listed} more: /workers {batch_id}"] if listed < count else [])
    return "\n".join([header, *body, footer])


class WatchService:
    def __init__(
        self,
        store: WatchRepository,
        batches: BatchRepository,
        owners: frozenset[int],
        *,
        clock: Clock = time.time,
        digest_every: float = DIGEST_EVERY,
    ) -> None:
        self.store = store
        self.batches = batches
        self.owners = owners
        self.clock = clock
        self.digest_every = digest_every

    async def round(self) -> None:
        """Queues what is due: the notice of a batch just complete, and digests."""
        now = self.clock()
        for batch in await self.store.watched():
            to = recipients(batch.created_by, self.owners)
            if is_complete(batch):
                summary = (await self.batches.summaries(batch.batch_id))[0]
                await self.store.complete(batch.batch_id, to, completion(summary), now)
            if digest_due(batch, now, self.digest_every):
                workers = await self.store.unreported(batch.batch_id)
                if workers:
                    text = digest(batch.batch_id, batch.name, workers)
                    await self.store.digested(
                        batch.batch_id, batch.digest_at, to, text, workers, now
                    )
