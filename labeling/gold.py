"""Gold: where control items fall in each worker's stream, and what a worker's record on them
says. Pure functions over small values, so each rule is tested alone and every engine shares
them.

The schedule is a random stream per worker and batch, keyed by a secret the batch keeps: the
same worker meets the same stream after a restart, and no worker can tell from their own
stream, or anyone else's, which task is gold.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from labeling.batch import BatchSettings
from labeling.kinds import TEXT, TaskKind

# While a worker's record leans against them (a log-likelihood ratio above DOUBT), gold comes
# DOUBT_RATE of the time, so the decision either way arrives within a few dozen tasks instead
# of a few hundred. A higher DOUBT spares careful workers some gold (their share fell from
# 12.6% to 9.7% at 1.0 in bench/adversaries.py) but lets careless ones work longer.
DOUBT = 0.0
DOUBT_RATE = 0.5
# The "careful" and "below" hypotheses of the sequential test sit this far either side of the
# batch's threshold: a worker at `min_accuracy` is exactly as likely to drift either way.
MARGIN = 0.1


def new_seed() -> str:
    """A batch's secret for its workers' gold streams."""
    return secrets.token_hex(16)


def _keyed(seed: str, message: str) -> float:
    """A number in [0, 1) that only the batch's secret ties to `message`."""
    digest = hashlib.blake2b(message.encode(), key=bytes.fromhex(seed), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def stream(seed: str, worker_id: int, draw: int) -> float:
    """The `draw`-th number in [0, 1) of the worker's gold stream in a batch."""
    return _keyed(seed, f"{worker_id}:{draw}")


# Gold items sit at secret random ranks in [0, RANKS), drawn at import. Each worker walks them
# in rank order from a start of their own, wrapping around once: workers meet gold in orders
# that no one can predict, and the next gold item is one indexed read whatever the worker has
# seen (their cursor says how far along they are).
RANKS = 2**31


def new_rank() -> int:
    """A gold item's secret place in its batch's order."""
    return secrets.randbelow(RANKS)


def gold_start(seed: str, worker_id: int) -> int:
    """Where the worker's walk through the batch's gold ranks begins."""
    return int(stream(seed, worker_id, -1) * RANKS)


def gold_ranges(start: int, cursor: int) -> tuple[tuple[int, int], ...]:
    """The ranks [low, high) still ahead of a worker `cursor` steps into their walk, in the
    order they are walked."""
    low = start + cursor
    if low < RANKS:
        return ((low, RANKS), (0, start))
    return ((low - RANKS, start),)


def gold_cursor(start: int, rank: int) -> int:
    """The cursor once the worker was handed the gold item at `rank`."""
    return (rank - start) % RANKS + 1


def exam_questions(
    seed: str,
    worker_id: int,
    attempt: int,
    pool: Sequence[int],
    size: int,
    last: Sequence[int],
) -> tuple[int, ...]:
    """The training items that a worker's `attempt`-th exam in a batch asks (counted from 0),
    in the order asked. `pool` is the batch's training gold in file order, `last` what the
    attempt before asked, in its order.

    The first attempt is the coordinator's exam: the pool's first `size` items, in file order.
    A retry comes right after the answers were shown, so it asks first what the last attempt
    did not, where the pool has more, and in an order of the worker's own, keyed by the
    batch's secret (the same after a restart, another for each attempt and worker); and never
    in the last order again: answers recalled in their places would pass an exam nobody read.
    """
    if attempt == 0:
        return tuple(pool[:size])
    asked = set(last)

    def place(item: int) -> tuple[bool, float]:
        return item in asked, _keyed(seed, f"exam:{worker_id}:{attempt}:{item}")

    drawn = tuple(sorted(pool, key=place)[:size])
    if drawn == tuple(last) and len(drawn) > 1:
        drawn = drawn[1:] + drawn[:1]
    return drawn


@dataclass(frozen=True, slots=True)
class Schedule:
    """Where a worker is in a batch's gold stream."""

    draws: int = 0  # tasks the schedule has decided on
    drawn: int = 0  # of those, gold
    owed: bool = False  # gold was drawn and not answered yet: skipping never settles it

    def settled(self) -> Schedule:
        """After the worker answered the gold they owed."""
        return replace(self, owed=False)


def draw(schedule: Schedule, settings: BatchSettings, doubtful: bool, u: float) -> Schedule:
    """Decides whether the worker's next task is gold (the result's `owed`).

    Gold that is owed stays owed: a skipped or expired gold task is followed by another gold
    task. Otherwise the stream decides: during the warm-up (the first `min_gold` gold items)
    every task is gold with probability one half, and the i-th gold item is forced by task
    `min_gold + 2(i-1)` at the latest, so a worker meets at most `min_gold` ordinary tasks
    before their first gold and all `min_gold` within `3 x min_gold` tasks. After the warm-up
    gold comes at `gold_ratio` on average, and at DOUBT_RATE while the record is doubtful.
    """
    if schedule.owed:
        return schedule
    warm = schedule.drawn < settings.min_gold
    forced = warm and schedule.draws >= settings.min_gold + 2 * schedule.drawn
    rate = DOUBT_RATE if warm or doubtful else settings.gold_ratio
    gold = settings.gold_ratio > 0 and (forced or u < rate)
    return Schedule(schedule.draws + 1, schedule.drawn + gold, gold)


class Exhausted(StrEnum):
    """What happens when gold is due and the worker has seen every gold item."""

    CONTINUE = "continue"  # ordinary tasks go on, unchecked
    STOP = "stop"  # the batch has nothing more for this worker
    CLOSED = "closed"  # too few gold answers to judge the worker: the batch closes to them


def dodging(gold_answers: int, gold_returned: int, settings: BatchSettings) -> bool:
    """A worker who gives gold back unanswered as often as they answer it (and `min_gold`
    times at least) is dodging it: gold looks like any other task, so a careful worker gives
    it back as rarely as anything else. Without this, skipping every task would show a
    throwaway account the whole gold set, since owed gold comes back at once."""
    return gold_returned >= max(settings.min_gold, gold_answers + 1)


def when_exhausted(
    gold_answers: int, gold_items: int, settings: BatchSettings, *, vouched: bool = False
) -> Exhausted:
    """A worker who never answered enough gold is not let through unchecked, whatever the
    batch's `gold_exhausted` says: it applies to workers already judged, or vouched for by a
    coordinator who reinstated them."""
    if not vouched and gold_answers < min(settings.min_gold, gold_items):
        return Exhausted.CLOSED
    return Exhausted(settings.gold_exhausted)


@dataclass(frozen=True, slots=True)
class Peers:
    """What agreeing or not with other workers has said about a worker so far: on each
    finished ordinary item whose other answers (two or more) all agree, whether the worker's
    answer agreed with them. Kept as running log-likelihood ratios (as in `Evidence`), floored
    at minus the suspension limit: credit from careful work runs out, so a worker who turns
    careless after a good start is judged on what they do now."""

    below: float = 0.0
    guessing: float = 0.0
    checks: int = 0
    agreed: int = 0

    @property
    def doubtful(self) -> bool:
        """Lately the worker disagrees with others more than a careful worker would, whatever
        their earlier record: reason enough to check them on gold more often."""
        return max(self.below, self.guessing) > DOUBT


NO_PEERS = Peers()


@dataclass(frozen=True, slots=True)
class Ratio:
    """One test's log-likelihood ratio: from gold, and from agreement with other workers."""

    gold: float
    peers: float = 0.0

    @property
    def total(self) -> float:
        return self.gold + self.peers


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a worker's record in a batch says, as log-likelihood ratios against the "careful"
    hypothesis (accuracy `min_accuracy + MARGIN`): `below` for accuracy `min_accuracy -
    MARGIN`, `guessing` for picking options at random (None when that is no worse)."""

    below: Ratio
    guessing: Ratio | None
    limit: float  # either ratio reaching this suspends

    @property
    def tests(self) -> tuple[Ratio, ...]:
        return (self.below,) if self.guessing is None else (self.below, self.guessing)

    @property
    def doubtful(self) -> bool:
        """The record leans towards a worker who should not be labeling this batch."""
        return any(ratio.total > DOUBT for ratio in self.tests)

    @property
    def conclusive(self) -> bool:
        """Either ratio reached the limit, with the gold record not speaking for the worker:
        agreement with others can complete a case that gold opened, never outweigh gold, so
        workers who agree among themselves cannot vote a careful worker out."""
        return any(ratio.total >= self.limit and ratio.gold >= 0 for ratio in self.tests)

    @property
    def odds(self) -> float:
        """How many times likelier the record is under the worse hypothesis than "careful"."""
        return math.exp(max(ratio.total for ratio in self.tests))


@dataclass(frozen=True, slots=True)
class _Hypotheses:
    good: float  # a careful worker's accuracy
    bad: float  # a worker below the threshold
    guess: float | None  # picking at random, when that is worse than `bad`
    limit: float


def _hypotheses(settings: BatchSettings, options: int | None) -> _Hypotheses:
    good = min(settings.min_accuracy + MARGIN, 0.99)
    bad = min(max(settings.min_accuracy - MARGIN, 0.01), good - 0.01)
    guess = 1 / options if options is not None and 1 / options < bad else None
    return _Hypotheses(good, bad, guess, math.log(2 / settings.suspend_risk))


def _log_ratio(right: int, wrong: int, bad: float, good: float) -> float:
    return right * math.log(bad / good) + wrong * math.log((1 - bad) / (1 - good))


def evidence(
    gold_answers: int,
    gold_correct: int,
    settings: BatchSettings,
    options: int | None,
    peers: Peers | None = None,
) -> Evidence:
    """Two sequential probability ratio tests (Wald), each at half of `suspend_risk`.

    On gold alone, by Ville's inequality, a worker whose accuracy is `min_accuracy + MARGIN`
    or better reaches either limit with probability at most `suspend_risk`, however many gold
    answers they give; a worker below the threshold drifts towards it with every answer.
    Agreement with other workers (`peers`) adds its own ratios.
    """
    h = _hypotheses(settings, options)
    right, wrong = gold_correct, gold_answers - gold_correct
    peers = peers or NO_PEERS
    below = Ratio(_log_ratio(right, wrong, h.bad, h.good), peers.below)
    guessing = None
    if h.guess is not None:
        guessing = Ratio(_log_ratio(right, wrong, h.guess, h.good), peers.guessing)
    return Evidence(below, guessing, h.limit)


def agreement(accuracy: float, options: int, careful: float) -> float:
    """The chance that a worker of `accuracy` agrees with two other workers who agree with
    each other, when those two are careful: they are then right with probability
    careful² / (careful² + (1 - careful)² / (k - 1)), and wrong answers spread evenly."""
    spread = options - 1
    right = careful**2 / (careful**2 + (1 - careful) ** 2 / spread)
    return accuracy * right + (1 - accuracy) * (1 - right) / spread


def peer_step(peers: Peers, agreed: bool, settings: BatchSettings, options: int) -> Peers:
    """The record after one more check against other workers."""
    h = _hypotheses(settings, options)
    good = agreement(h.good, options, h.good)

    def step(value: float, bad: float) -> float:
        ratio = math.log(bad / good) if agreed else math.log((1 - bad) / (1 - good))
        return max(value + ratio, -h.limit)

    guessing = peers.guessing if h.guess is None else step(peers.guessing, 1 / options)
    return Peers(
        step(peers.below, agreement(h.bad, options, h.good)),
        guessing,
        peers.checks + 1,
        peers.agreed + agreed,
    )


def peer_checks(
    answers: Sequence[tuple[int, str]], kind: TaskKind = TEXT
) -> list[tuple[int, bool]]:
    """For each answer on a finished item whose other answers (two or more) all agree: the
    worker, and whether they agreed with all the others, as the task's kind compares answers
    (by default ignoring case and spacing). A split item checks no one but its minority of
    one."""
    checks: list[tuple[int, bool]] = []
    if len(answers) < 3:
        return checks
    for index, (worker, value) in enumerate(answers):
        others = [v for i, (_, v) in enumerate(answers) if i != index]
        # Every pair, not one against the rest: a tolerance (scales) is not transitive.
        if all(kind.agree(a, b) for j, a in enumerate(others) for b in others[j + 1 :]):
            checks.append((worker, all(kind.agree(value, other) for other in others)))
    return checks
