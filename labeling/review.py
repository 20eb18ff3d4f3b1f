"""Reports and suspect gold: the rules that take a problem item out of circulation, and the
coordinator's review of them (correct a gold answer, drop it from gold, restore an item)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from labeling.batch import BatchSettings
from labeling.kinds import TEXT, TaskKind
from labeling.models import Clock, Problem
from labeling.quality import Trust, is_correct, suspension

BROKEN_AFTER = 2  # workers who report an item broken take it out of circulation
WITHDRAWING = frozenset({Problem.BROKEN})  # the problems that can take an item out
TRUSTED_ACCURACY = 0.8  # a worker this accurate on the other gold items is trusted on this one
TRUSTED_EVIDENCE = 3  # gold answers elsewhere before a worker's accuracy is trusted
# Trusted workers miss a right gold item at most a fifth of the time, and a wrong one most of
# the time; four more misses than hits make a wrong answer 4^4 = 256 times likelier.
SUSPECT_MARGIN = 4


@dataclass(frozen=True, slots=True)
class Reporter:
    """A worker who reported an item, as their standing in its batch is now."""

    active: bool
    answers: int
    gold_answers: int
    gold_correct: int
    reports: int  # items this worker reported broken in the batch

    @property
    def credible(self) -> bool:
        """In good standing, and reporting a small share of what they see: a worker who
        reports far more than items are ever broken is not believed."""
        return self.active and self.reports <= max(BROKEN_AFTER, self.answers // 4)

    @property
    def trusted(self) -> bool:
        """Right on gold often enough that their word on a gold item counts."""
        return trusted(self.gold_answers, self.gold_correct)


def trusted(gold_answers: int, gold_correct: int) -> bool:
    """A worker whose gold record is long and good enough to believe on gold."""
    return gold_answers >= TRUSTED_EVIDENCE and gold_correct >= TRUSTED_ACCURACY * gold_answers


def withdrawn(problem: Problem, gold: bool, reporters: Sequence[Reporter]) -> bool:
    """Whether an item reported as `problem` stops being handed out: once BROKEN_AFTER
    credible workers said it is broken, and for gold, workers gold already trusts, so
    accounts that answer gold badly or not at all cannot report it out of the way."""
    if problem not in WITHDRAWING:
        return False
    counted = [r for r in reporters if r.credible and (r.trusted or not gold)]
    return len(counted) >= BROKEN_AFTER


def may_dispute(owner: bool, correct: bool | None) -> bool:
    """A worker may dispute a training question's answer when the question was theirs and
    they missed it: the answer they were then shown is the one they doubt."""
    return owner and correct is False


@dataclass(frozen=True, slots=True)
class GoldAnswer:
    """One answer on a counting gold item, with the answering worker's record (which includes
    this answer)."""

    item_id: int
    correct: bool
    gold_answers: int
    gold_correct: int

    @property
    def trusted(self) -> bool:
        """Judged on the worker's other gold answers, so a wrong gold item cannot make its own
        critics look untrustworthy."""
        return trusted(self.gold_answers - 1, self.gold_correct - self.correct)


def suspect_gold(answers: Iterable[GoldAnswer]) -> set[int]:
    """Gold items that trusted workers miss at least half the time, by a margin that chance
    alone rarely gives: the known answer is likely wrong, or the item is ambiguous."""
    trusted: dict[int, int] = defaultdict(int)
    missed: dict[int, int] = defaultdict(int)
    for answer in answers:
        if answer.trusted:
            trusted[answer.item_id] += 1
            missed[answer.item_id] += not answer.correct
    return {item for item, count in trusted.items() if 2 * missed[item] - count >= SUSPECT_MARGIN}


Change = Literal["reinstate", "suspend"]


def restanding(
    status: str, cause: str | None, trust: Trust, settings: BatchSettings, options: int | None
) -> Change | None:
    """After a worker's record is recomputed (gold corrected, dropped, restored or found
    suspect): a worker whom gold suspended is let back in when the record no longer says so,
    as is one closed out for want of gold to judge them by (gold may have come back; if not,
    the next task closes the batch to them again), and an active worker whom the corrected
    record condemns is suspended."""
    verdict = suspension(trust, settings, options)
    if status == "suspended" and cause == "unjudged":
        return "reinstate"
    if status == "suspended" and cause == "gold" and verdict is None:
        return "reinstate"
    if status == "active" and verdict is not None and verdict.cause == "gold":
        return "suspend"
    return None


@dataclass(frozen=True, slots=True)
class ProblemItem:
    """An item with reports, broken or suspect, as stored."""

    item_id: int
    external_id: str | None
    text: str | None
    state: str
    gold: str | None
    reports: dict[str, int]  # reason -> workers
    answers: Sequence[str] = ()  # the answers given on it, if it is gold


@dataclass(frozen=True, slots=True)
class ItemReport:
    """One item with problems, for the coordinator."""

    item_id: int
    external_id: str | None
    text: str | None
    state: str  # 'ok', 'broken' or 'suspect'
    gold: str | None
    reports: dict[str, int]  # reason -> workers
    gold_answers: int = 0  # answers on this gold item
    gold_misses: int = 0  # of those, not its gold answer


@dataclass(frozen=True, slots=True)
class Review:
    """What a coordinator's review changed: workers let back in, workers suspended."""

    reinstated: int = 0
    suspended: int = 0
    recomputed: bool = True  # False when no gold changed, so no record did

    def describe(self) -> str:
        if not self.recomputed:
            return "no worker's record depends on it"
        return (
            f"every worker's record was recomputed: {self.reinstated} reinstated,"
            f" {self.suspended} suspended"
        )


@dataclass(frozen=True, slots=True)
class Sweep:
    """What one background sweep did."""

    flagged: int = 0  # gold items found suspect
    suspended: int = 0  # workers whose agreement with others condemned them


class ItemNotFound(LookupError):
    """No item of the batch has the id a coordinator gave."""


class ReviewError(ValueError):
    """A review action the item's state does not allow (the message says why)."""


def item_report(item: ProblemItem, kind: TaskKind = TEXT) -> ItemReport:
    """What the coordinator is shown of a problem item: its answers graded against its gold
    answer now, whether it counts or not, as the batch's kind compares answers (choices and
    typed answers alike by default)."""
    gold = item.gold
    misses = [] if gold is None else [a for a in item.answers if not is_correct(a, gold, kind)]
    return ItemReport(
        item.item_id,
        item.external_id,
        item.text,
        item.state,
        item.gold,
        item.reports,
        len(item.answers),
        len(misses),
    )


class ReviewRepository(Protocol):
    async def problems(self, batch_id: int) -> list[ProblemItem]: ...
    async def find_item(self, batch_id: int, key: str) -> int: ...
    async def correct_gold(
        self, batch_id: int, item_id: int, answer: str, now: float
    ) -> Review: ...
    async def drop_gold(self, batch_id: int, item_id: int, now: float) -> Review: ...
    async def restore(self, batch_id: int, item_id: int, now: float) -> Review: ...
    async def sweep(self, now: float) -> Sweep: ...


class ReviewService:
    """The coordinator's review of reports and suspect gold; also the background sweep that
    flags suspect gold."""

    def __init__(self, store: ReviewRepository, *, clock: Clock = time.time) -> None:
        self.store = store
        self.clock = clock

    async def problems(self, batch_id: int) -> list[ItemReport]:
        """Items with reports, broken items and suspect gold: those out of circulation
        first, then the most reported."""
        found = [item_report(item) for item in await self.store.problems(batch_id)]
        return sorted(found, key=lambda r: (r.state == "ok", -sum(r.reports.values()), r.item_id))

    async def correct_gold(self, batch_id: int, key: str, answer: str) -> Review:
        item_id = await self.store.find_item(batch_id, key)
        return await self.store.correct_gold(batch_id, item_id, answer, self.clock())

    async def drop_gold(self, batch_id: int, key: str) -> Review:
        item_id = await self.store.find_item(batch_id, key)
        return await self.store.drop_gold(batch_id, item_id, self.clock())

    async def restore(self, batch_id: int, key: str) -> Review:
        item_id = await self.store.find_item(batch_id, key)
        return await self.store.restore(batch_id, item_id, self.clock())

    async def sweep(self) -> Sweep:
        """Compares answers on finished items and flags suspect gold, in every open batch."""
        return await self.store.sweep(self.clock())


def format_problem(report: ItemReport) -> str:
    """One line per problem item, the same in the terminal and in Telegram."""
    name = report.external_id or f"#{report.item_id}"
    text = (report.text or "(image)").replace("\n", " ")
    text = text if len(text) <= 60 else text[:57] + "..."
    parts = [f"{name} [{report.state}]"]
    if report.reports:
        parts.append(", ".join(f"{count} {why}" for why, count in sorted(report.reports.items())))
    if report.gold is not None:
        parts.append(
            f"gold {report.gold!r}, missed by {report.gold_misses} of {report.gold_answers}"
        )
    return f"{' · '.join(parts)}: {text}"
