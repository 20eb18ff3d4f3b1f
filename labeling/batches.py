"""The coordinator's side: batches imported, opened and exported, the same for CLI and chat."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TextIO, TypeVar

from labeling.aggregation import alpha_of_votes
from labeling.batch import BatchSettings
from labeling.batchfile import MAX_ITEMS, BatchFileError, RowError, parse_batch_file
from labeling.charts import BatchChart, draw
from labeling.export import (
    ExportSummary,
    Format,
    What,
    write_answers,
    write_labels,
    write_workers,
)
from labeling.importing import AlreadyImported
from labeling.kinds import kind_for
from labeling.models import (
    RATE_WINDOW,
    BatchStatus,
    BatchSummary,
    Clock,
    WorkerRow,
    WorkerStanding,
)
from labeling.pay import PayRate, batch_rate
from labeling.ports import BatchRepository
from labeling.report import format_standing, standing_order
from labeling.words import DEFAULT_CURRENCY, money, plural


@dataclass(frozen=True, slots=True)
class Imported:
    batch_id: int
    items: int
    gold_items: int
    settings: BatchSettings
    pay: PayRate

    def describe(self) -> str:
        kind = ", ".join(self.settings.options) if self.settings.options else "free text"
        return (
            f"Batch {self.batch_id} '{self.settings.name}': {plural(self.items, 'item')}"
            f" ({self.gold_items} gold), answers: {kind}; overlap {self.settings.overlap};"
            f" reward {money(self.settings.reward, self.pay.currency)} per task;"
            f" expected pay {self.pay.describe()}."
        )


# How far behind its answers a batch's agreement may be shown (it is recomputed in the
# background, at most this often while answers come in).
AGREEMENT_LAG = 60.0
AGREEMENT_AT_ONCE = 50_000  # answers up to which it is computed for each request (< 0.1 s)
# An import stores a batch in seconds; one still unfinished after an hour was cut off.
ABANDONED_IMPORT = 3600.0


class BatchStateError(Exception):
    """A change of state the batch's current state does not allow."""


def announcement(summary: BatchSummary, currency: str) -> str:
    kind = "choice" if summary.options else "free-text"
    reward = f" Reward: {money(summary.reward, currency)} per task." if summary.reward else ""
    tasks = plural(summary.items, f"{kind} task")
    waiting = "is" if summary.items == 1 else "are"
    return f"New batch: {summary.name}. {tasks} {waiting} waiting.{reward}"


def back(summary: BatchSummary) -> str:
    return f"Batch {summary.name} is back: its tasks are open again."


# The changes of state a coordinator may ask for, and the states each may start from.
TRANSITIONS: dict[str, tuple[BatchStatus, tuple[BatchStatus, ...]]] = {
    "publish": (BatchStatus.OPEN, (BatchStatus.DRAFT,)),
    "pause": (BatchStatus.PAUSED, (BatchStatus.OPEN,)),
    "resume": (BatchStatus.OPEN, (BatchStatus.PAUSED,)),
    "close": (BatchStatus.CLOSED, (BatchStatus.DRAFT, BatchStatus.OPEN, BatchStatus.PAUSED)),
}


def cannot(batch_id: int, status: BatchStatus, action: str) -> str:
    """Why a batch in `status` cannot take `action`, as a coordinator reads it: "batch 2 is a
    draft, and only an open batch can be paused"."""
    target, allowed = TRANSITIONS[action]
    if action == "publish":  # publishing is once only: "open already" would mislead
        return f"batch {batch_id} is {status}, and only a draft can be published"
    if status is target:
        return f"batch {batch_id} is {status} already"
    state = "a draft" if status is BatchStatus.DRAFT else str(status)
    needed = " or ".join(str(state) for state in allowed)
    article = "an" if needed[0] in "aeiou" else "a"
    done = {"pause": "paused", "resume": "resumed", "close": "closed"}[action]
    return f"batch {batch_id} is {state}, and only {article} {needed} batch can be {done}"


class BatchUnit(Protocol):
    """A batch's state inside one transaction."""

    def status(self, batch_id: int) -> BatchStatus:
        """The batch's state, held until the transaction ends; raises BatchNotFound."""
        ...

    def set_status(self, batch_id: int, status: BatchStatus, now: float) -> None: ...
    def announce(
        self, batch_id: int, text: str, now: float, *, by: int | None, paid: bool, audience: str
    ) -> None:
        """Queues a broadcast about the batch to the `audience` ("all" or "batch")."""
        ...


T = TypeVar("T")


class Batches(BatchRepository, Protocol):
    """The batch store, whose changes of state run as the rule below in one transaction."""

    async def run(self, change: Callable[[BatchUnit], T]) -> T:
        """Runs `change` (a rule below) in one transaction."""
        ...


def transition(
    unit: BatchUnit,
    batch_id: int,
    action: str,
    now: float,
    *,
    announce: str | None = None,
    by: int | None = None,
    paid: bool = False,
    audience: str = "all",
) -> BatchStatus:
    """Moves the batch to the state `action` leads to, if its state now allows that, and
    queues `announce` with it; returns the new state. In one transaction, so that of two
    coordinators (or one request delivered twice) acting at once, the second finds the state
    the first left: a batch is published, and announced, once."""
    target, allowed = TRANSITIONS[action]
    status = unit.status(batch_id)
    if status not in allowed:
        raise BatchStateError(cannot(batch_id, status, action))
    unit.set_status(batch_id, target, now)
    if announce is not None:
        unit.announce(batch_id, announce, now, by=by, paid=paid, audience=audience)
    return target


class BatchService:
    def __init__(
        self,
        batches: Batches,
        *,
        min_hourly_rate: float = 15.0,
        currency: str = DEFAULT_CURRENCY,
        clock: Clock = time.time,
    ) -> None:
        self.batches = batches
        self.min_hourly_rate = min_hourly_rate
        self.currency = currency
        self.clock = clock
        # Agreement per batch: the counts (answers, suspended) and time it was computed at.
        self._agreement: dict[int, tuple[tuple[int, int], float | None, float]] = {}
        self._refreshing: dict[int, asyncio.Task[float | None]] = {}

    async def import_file(
        self,
        content: bytes,
        filename: str,
        settings: BatchSettings,
        *,
        base_dir: Path | None = None,
        created_by: int | None = None,
        file_format: str | None = None,
        source_file: str | None = None,
        again: str | None = None,
        max_items: int = MAX_ITEMS,
    ) -> Imported:
        """Validates the whole file first; stores nothing unless every row is good.
        `source_file` (Telegram's unique id of an uploaded file) makes the same file sent
        again, or a redelivered upload, raise AlreadyImported instead of creating a second
        batch. `again` (the request that asks, such as the update's id) imports a file that was
        imported before as a new batch, once per request."""
        if source_file is not None and again is not None:
            source_file = f"{source_file}:{again}"
        if source_file is not None:
            existing = await self.batches.by_source_file(source_file)
            if existing is not None:
                raise AlreadyImported(existing)
        # Parsing a 20 MB file takes seconds of CPU: in a thread, the bot goes on answering.
        items = await asyncio.to_thread(
            parse_batch_file,
            content,
            filename,
            settings,
            base_dir=base_dir,
            file_format=file_format,
            max_items=max_items,
        )
        gold = sum(item.gold is not None for item in items)
        if settings.training_gold > gold:
            wanted = settings.training_gold
            raise BatchFileError(
                [RowError(0, f"training asks for {wanted} gold items, the file has {gold}")]
            )
        batch_id = await self.batches.create(
            settings,
            items,
            now=self.clock(),
            source=Path(filename).name,
            created_by=created_by,
            source_file=source_file,
        )
        pay = batch_rate(
            settings.reward, settings.seconds_per_task, None, 0, self.min_hourly_rate, self.currency
        )
        return Imported(batch_id, len(items) - gold, gold, settings, pay)

    async def discard_abandoned_imports(self) -> list[int]:
        """Removes batches whose import stopped half way (the process died meanwhile)."""
        return await self.batches.discard_unfinished(self.clock() - ABANDONED_IMPORT)

    async def publish(
        self, batch_id: int, *, by: int | None = None, paid: bool = False
    ) -> BatchSummary:
        """Opens a batch and queues its announcement to every active worker."""
        summary = (await self.batches.summaries(batch_id))[0]
        text, now = announcement(summary, self.currency), self.clock()
        await self.batches.run(
            lambda unit: transition(unit, batch_id, "publish", now, announce=text, by=by, paid=paid)
        )
        return (await self.status(batch_id))[0]

    async def change_state(
        self, batch_id: int, action: str, *, by: int | None = None
    ) -> BatchStatus:
        """Pauses, resumes or closes a batch; returns the new state. A paused batch hands
        out nothing; a closed one is final. A resumed batch is announced to its workers (those
        who worked in it or were told of it), in the same transaction."""
        summary = (await self.batches.summaries(batch_id))[0]
        text = back(summary) if action == "resume" else None
        now = self.clock()
        return await self.batches.run(
            lambda unit: transition(
                unit, batch_id, action, now, announce=text, by=by, audience="batch"
            )
        )

    async def announce(
        self, text: str, *, by: int | None = None, source: str | None = None
    ) -> bool:
        """Queues a message from a coordinator to every active worker; False when the same
        request (`source`) queued it already."""
        return await self.batches.announce(text, self.clock(), by=by, source=source)

    async def workers(self, limit: int = 10_000) -> list[WorkerRow]:
        return await self.batches.worker_rows(None, limit)

    async def overview(self) -> list[BatchSummary]:
        """Every batch's counts, without agreement and pay: cheap enough for a list."""
        return await self.batches.summaries()

    async def status(self, batch_id: int | None = None) -> list[BatchSummary]:
        """Each batch's progress and quality, with its agreement (Krippendorff's alpha)."""
        summaries = []
        since = self.clock() - RATE_WINDOW
        for summary in await self.batches.summaries(batch_id, since=since):
            alpha = await self.agreement(summary)
            settings = (await self.batches.get(summary.batch_id)).settings
            pay = batch_rate(
                summary.reward,
                settings.seconds_per_task,
                summary.median_ms,
                summary.answers,
                self.min_hourly_rate,
                self.currency,
            )
            summaries.append(replace(summary, alpha=alpha, pay=pay))
        return summaries

    async def agreement(self, summary: BatchSummary) -> float | None:
        """The batch's agreement. Computing it reads every counted answer: a blink for most
        batches, seconds at a million. So a big batch's coordinator is given the last figure,
        at most `AGREEMENT_LAG` seconds behind the answers, while a fresh one is computed in
        the background."""
        cached = self._agreement.get(summary.batch_id)
        if cached is None or summary.answers <= AGREEMENT_AT_ONCE:
            return await self._compute_agreement(summary)
        counts, value, at = cached
        stale = counts != (summary.answers, summary.suspended)
        if stale and self.clock() - at >= AGREEMENT_LAG:
            self._refresh_agreement(summary)
        return value

    async def warm_agreement(self) -> None:
        """Brings every open batch's agreement up to date, so that /status finds it ready."""
        for summary in await self.batches.summaries():
            if summary.status == BatchStatus.OPEN:
                await self.agreement(summary)

    def _refresh_agreement(self, summary: BatchSummary) -> None:
        if summary.batch_id in self._refreshing:
            return
        task = asyncio.create_task(self._compute_agreement(summary))
        self._refreshing[summary.batch_id] = task
        task.add_done_callback(lambda _: self._refreshing.pop(summary.batch_id, None))

    async def _compute_agreement(self, summary: BatchSummary) -> float | None:
        """From per-item counts of the counted answers, with the numpy part in a thread."""
        started = self.clock()
        votes = await self.batches.votes(summary.batch_id)
        kind = kind_for(summary.options)
        classes = kind.aggregation.classes
        alpha = await asyncio.to_thread(alpha_of_votes, votes, classes, kind.key)
        value = None if math.isnan(alpha) else alpha
        self._agreement[summary.batch_id] = ((summary.answers, summary.suspended), value, started)
        return value

    async def chart(self, summary: BatchSummary) -> bytes | None:
        """A PNG of the batch's answers counted over time and of its workers' accuracy on
        gold; None for a batch with no answers, where there is nothing to draw."""
        chart = await self.chart_data(summary)
        if chart is None:
            return None
        # Drawing takes a few tenths of a second of CPU: in a thread, the bot goes on
        # answering workers meanwhile.
        return await asyncio.to_thread(draw, chart)

    async def chart_data(self, summary: BatchSummary) -> BatchChart | None:
        """What the chart shows, in the status's counts; None for a batch with no answers."""
        if not summary.answers:
            return None
        batch = await self.batches.get(summary.batch_id)
        return BatchChart(
            batch_id=summary.batch_id,
            name=summary.name,
            progress=await self.batches.progress(summary.batch_id),
            counted=summary.answers_counted,
            needed=summary.answers_needed,
            stored=summary.answers,
            accuracies=[
                (s.gold_correct / s.gold_answers, s.status == "suspended")
                for s in await self.batches.standings(summary.batch_id)
                if s.gold_answers
            ],
            threshold=batch.settings.min_accuracy,
        )

    async def standings(self, batch_id: int) -> list[WorkerStanding]:
        await self.batches.get(batch_id)  # a missing batch is an error, not an empty list
        return await self.batches.standings(batch_id)

    async def standing_lines(self, batch_id: int) -> list[str]:
        """Each worker's standing in the batch with the evidence about them, one line each,
        those shut out first: what `labelbot trust` prints and `/workers N` shows."""
        settings = (await self.batches.get(batch_id)).settings
        standings = sorted(await self.batches.standings(batch_id), key=standing_order)
        return [format_standing(standing, settings) for standing in standings]

    async def export(self, batch_id: int, what: What, fmt: Format, out: TextIO) -> ExportSummary:
        """Writes the export; returns what it holds."""
        batch = await self.batches.get(batch_id)
        if what == "answers":
            return await write_answers(self.batches.answers(batch_id), out, fmt)
        if what == "workers":
            rows = await self.batches.worker_rows(batch_id)
            return write_workers(rows, out, fmt, self.currency)
        return await write_labels(
            self.batches.items(batch_id),
            self.batches.answers(batch_id),
            batch.settings,
            out,
            fmt,
        )
