"""The coordinator's side: batches imported, opened and exported, the same for CLI and chat."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from labeling.aggregation import AnswerSet, krippendorff_alpha
from labeling.batch import BatchSettings
from labeling.batchfile import BatchFileError, RowError, parse_batch_file
from labeling.export import ExportSummary, Format, What, write_answers, write_labels
from labeling.models import BatchStatus, BatchSummary, WorkerStanding
from labeling.ports import BatchRepository
from labeling.work import Clock


@dataclass(frozen=True, slots=True)
class Imported:
    batch_id: int
    items: int
    gold_items: int
    settings: BatchSettings


class BatchStateError(Exception):
    """A change of state the batch's current state does not allow."""


def announcement(summary: BatchSummary) -> str:
    kind = "choice" if summary.options else "free-text"
    reward = f" Reward: {summary.reward:g} per task." if summary.reward else ""
    return f"New batch: {summary.name}. {summary.items} {kind} tasks are waiting.{reward}"


class BatchService:
    def __init__(self, batches: BatchRepository, *, clock: Clock = time.time) -> None:
        self.batches = batches
        self.clock = clock

    async def import_file(
        self,
        content: bytes,
        filename: str,
        settings: BatchSettings,
        *,
        base_dir: Path | None = None,
        created_by: int | None = None,
    ) -> Imported:
        """Validates the whole file first; stores nothing unless every row is good."""
        items = parse_batch_file(content, filename, settings, base_dir=base_dir)
        gold = sum(item.gold is not None for item in items)
        if settings.exam_size > gold:
            raise BatchFileError(
                [
                    RowError(
                        0,
                        (f"the exam asks for {settings.exam_size} gold items, the file has {gold}"),
                    )
                ]
            )
        batch_id = await self.batches.create(
            settings, items, now=self.clock(), source=Path(filename).name, created_by=created_by
        )
        return Imported(batch_id, len(items), gold, settings)

    async def publish(self, batch_id: int) -> BatchSummary:
        """Opens a batch and queues its announcement to every active worker."""
        summary = (await self.batches.summaries(batch_id))[0]
        if summary.status is not BatchStatus.DRAFT:
            raise BatchStateError(f"batch {batch_id} is {summary.status}, not a draft")
        await self.batches.set_status(
            batch_id, BatchStatus.OPEN, self.clock(), announce=announcement(summary)
        )
        return (await self.batches.summaries(batch_id))[0]

    async def status(self, batch_id: int | None = None) -> list[BatchSummary]:
        """Each batch's progress and quality, with its agreement (Krippendorff's alpha)."""
        summaries = []
        for summary in await self.batches.summaries(batch_id):
            answers = [
                (a.item_id, a.worker_id, a.value)
                async for a in self.batches.answers(summary.batch_id)
                if not a.excluded and not a.gold
            ]
            alpha = krippendorff_alpha(AnswerSet.build(answers, summary.options))
            summaries.append(replace(summary, alpha=None if math.isnan(alpha) else alpha))
        return summaries

    async def standings(self, batch_id: int) -> list[WorkerStanding]:
        await self.batches.get(batch_id)  # a missing batch is an error, not an empty list
        return await self.batches.standings(batch_id)

    async def export(self, batch_id: int, what: What, fmt: Format, out: TextIO) -> ExportSummary:
        """Writes the export; returns what it holds."""
        batch = await self.batches.get(batch_id)
        if what == "answers":
            return await write_answers(self.batches.answers(batch_id), out, fmt)
        return await write_labels(
            self.batches.items(batch_id),
            self.batches.answers(batch_id),
            batch.settings,
            out,
            fmt,
        )
