"""What a review of gold changes, and the sweep: answers graded again, every record in the batch
recomputed and applied, workers compared with each other, suspect gold flagged. Plain code over
one unit of work (`ReviewUnit`): each function below is the body of one transaction.

A change may be run again from the start when it lost a race with another replica, so these
functions act only through the unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from labeling.batch import BatchSettings
from labeling.gold import Peers, peer_checks, peer_step
from labeling.kinds import TEXT, TaskKind
from labeling.quality import Suspension, Trust, is_correct, suspension
from labeling.review import Change, GoldAnswer, Review, ReviewError, restanding, suspect_gold

# Finished items compared per batch in one sweep's transaction: the rest wait for the next.
COMPARED_AT_ONCE = 2000


@dataclass(frozen=True, slots=True)
class ReviewedItem:
    """An item as a review reads it."""

    item_id: int
    batch_id: int
    gold: str | None
    state: str  # 'ok', 'broken' or 'suspect'
    exam: bool  # a training question, not hidden gold
    settings: BatchSettings


@dataclass(frozen=True, slots=True)
class Standing:
    """A worker's place in a batch and their record there."""

    worker_id: int
    status: str  # 'active' or 'suspended'
    cause: str | None
    trust: Trust


class ReviewUnit(Protocol):
    """The reads and writes of a review or a sweep, inside one transaction. What a rule reads
    to decide, the unit holds for it until the transaction ends (another replica waits)."""

    def item(self, item_id: int) -> ReviewedItem: ...
    def settings(self, batch_id: int) -> BatchSettings: ...
    def standings(self, batch_id: int) -> Sequence[Standing]:
        """Every worker active or suspended in the batch."""
        ...

    def standing(self, worker_id: int, batch_id: int) -> Standing: ...
    def answer_values(self, item_id: int) -> Sequence[str]:
        """The different answers given on the item."""
        ...

    def gold_answers(self, batch_id: int) -> Sequence[GoldAnswer]:
        """The graded answers on the batch's gold in circulation since a coordinator last
        looked at it, each counting in its worker's current record."""
        ...

    def finished_items(self, batch_id: int, limit: int) -> Sequence[int]:
        """Ordinary items with all their answers, not yet compared (none another sweep is
        comparing right now)."""
        ...

    def votes(self, item_ids: Sequence[int]) -> Sequence[tuple[int, int, str]]:
        """(item, worker, answer) of the answers that count on these items, in order."""
        ...

    def set_gold(self, item_id: int, answer: str) -> None: ...
    def make_ordinary(self, item_id: int) -> None:
        """Turns a gold item into an ordinary one: its answers count towards its label, its
        assignments fill it like any, and the batch has one gold item fewer."""
        ...

    def set_item_state(self, item_id: int, state: str, reviewed: float | None = None) -> None: ...
    def grade(self, item_id: int, value: str, correct: bool | None) -> None:
        """Marks the answers `value` on the item right, wrong or (None) not graded."""
        ...

    def rebuild_records(self, batch_id: int) -> None:
        """Counts every worker's gold record in the batch again from their graded answers
        (since a coordinator last reinstated them)."""
        ...

    def reinstate(self, worker_id: int, batch_id: int, now: float) -> None: ...
    def suspend(self, worker_id: int, batch_id: int, verdict: Suspension, now: float) -> None: ...
    def notify(self, worker_id: int, batch_id: int, change: Change, now: float) -> None:
        """Queues a message telling the worker their standing changed outside their taps."""
        ...

    def mark_compared(self, item_ids: Sequence[int]) -> None: ...
    def save_peers(self, worker_id: int, batch_id: int, peers: Peers) -> None: ...


def grade(gold: str | None, state: str, value: str, kind: TaskKind = TEXT) -> bool | None:
    """An answer on an item, right or wrong against its gold answer now; nothing for an item
    that is not gold, or suspect gold (it counts in no one's record)."""
    if gold is None or state == "suspect":
        return None
    return is_correct(value, gold, kind)


def regrade(unit: ReviewUnit, item_id: int) -> None:
    """Grades every answer on the item again, as it stands now."""
    item = unit.item(item_id)
    kind = item.settings.kind
    for value in unit.answer_values(item_id):
        unit.grade(item_id, value, grade(item.gold, item.state, value, kind))


def recompute(unit: ReviewUnit, batch_id: int, now: float) -> Review:
    """Rebuilds every worker's gold record in the batch, then applies what the new records
    say (labeling.review.restanding); each worker whose standing changes is told."""
    unit.rebuild_records(batch_id)
    settings = unit.settings(batch_id)
    reinstated = suspended = 0
    for standing in unit.standings(batch_id):
        change = restanding(
            standing.status, standing.cause, standing.trust, settings, settings.option_count
        )
        if change == "reinstate":
            unit.reinstate(standing.worker_id, batch_id, now)
            reinstated += 1
        elif change == "suspend":
            verdict = Suspension("gold", "gold record recomputed after a review")
            unit.suspend(standing.worker_id, batch_id, verdict, now)
            suspended += 1
        else:
            continue
        unit.notify(standing.worker_id, batch_id, change, now)
    return Review(reinstated, suspended)


def correct_gold(unit: ReviewUnit, item_id: int, answer: str, now: float) -> Review:
    """Sets a gold item's known answer (one of the batch's options) and lets it count."""
    item = unit.item(item_id)
    if item.gold is None:
        raise ReviewError("that item is not gold")
    kind = item.settings.kind
    gold = kind.gold(answer)
    if gold is None:
        raise ReviewError(f"the answer must be {kind.expected}")
    unit.set_gold(item_id, gold)
    unit.set_item_state(item_id, "ok", now)
    regrade(unit, item_id)
    return recompute(unit, item.batch_id, now)


def drop_gold(unit: ReviewUnit, item_id: int, now: float) -> Review:
    """Turns a gold item into an ordinary one: its answers so far count towards its label and
    no one's record."""
    item = unit.item(item_id)
    if item.gold is None or item.exam:
        raise ReviewError("that item is not hidden gold")
    unit.make_ordinary(item_id)
    unit.set_item_state(item_id, "ok", now)
    regrade(unit, item_id)
    return recompute(unit, item.batch_id, now)


def restore(unit: ReviewUnit, item_id: int, now: float) -> Review:
    """Puts a broken item, or suspect gold judged right after all, back into circulation."""
    item = unit.item(item_id)
    if item.state == "ok":
        raise ReviewError("that item is in circulation already")
    unit.set_item_state(item_id, "ok", now)
    if item.gold is None:
        return Review(recomputed=False)
    regrade(unit, item_id)
    return recompute(unit, item.batch_id, now)


def compare_answers(unit: ReviewUnit, batch_id: int, settings: BatchSettings, now: float) -> int:
    """Checks each worker against the others on the batch's newly finished items, and
    suspends those whose record now says so; returns how many were suspended."""
    kind = settings.kind
    options = kind.outcomes
    if not kind.peer_checked or options is None:
        return 0  # e.g. typed answers differ in wording without being wrong: no fair comparison
    item_ids = unit.finished_items(batch_id, COMPARED_AT_ONCE)
    if not item_ids:
        return 0
    by_item: dict[int, list[tuple[int, str]]] = {}
    for item_id, worker_id, value in unit.votes(item_ids):
        by_item.setdefault(item_id, []).append((worker_id, value))
    checks: dict[int, list[bool]] = {}
    for answers in by_item.values():
        for worker_id, agreed in peer_checks(answers, kind):
            checks.setdefault(worker_id, []).append(agreed)
    unit.mark_compared(item_ids)
    suspended = 0
    for worker_id in sorted(checks):  # one order on every replica: no deadlock between two
        standing = unit.standing(worker_id, batch_id)
        peers = standing.trust.peers
        for agreed in checks[worker_id]:
            peers = peer_step(peers, agreed, settings, options)
        unit.save_peers(worker_id, batch_id, peers)
        verdict = suspension(replace(standing.trust, peers=peers), settings, options)
        if standing.status == "active" and verdict is not None:
            unit.suspend(worker_id, batch_id, verdict, now)
            unit.notify(worker_id, batch_id, "suspend", now)
            suspended += 1
    return suspended


def flag_suspects(unit: ReviewUnit, batch_id: int, now: float) -> int:
    """Takes the gold items trusted workers keep missing out of circulation (suspect: counted
    in no one's record until a coordinator looks) and recomputes the records they counted
    in; returns how many were flagged."""
    suspects = suspect_gold(unit.gold_answers(batch_id))
    for item_id in sorted(suspects):
        unit.set_item_state(item_id, "suspect")
        regrade(unit, item_id)
    if suspects:
        recompute(unit, batch_id, now)
    return len(suspects)
