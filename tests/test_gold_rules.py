"""The gold rules alone: the per-worker stream, gold debt, and the sequential test's error
rates, computed exactly (the test reads only how many gold answers were right, so the chance
of a suspension is a sum over binomial paths, not a simulation)."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeling.batch import BatchSettings
from labeling.gold import (
    DOUBT_RATE,
    RANKS,
    Exhausted,
    Peers,
    Schedule,
    dodging,
    draw,
    evidence,
    gold_cursor,
    gold_ranges,
    gold_start,
    new_seed,
    peer_checks,
    peer_step,
    stream,
    when_exhausted,
)
from labeling.models import Problem
from labeling.quality import Trust, suspension
from labeling.review import Reporter, withdrawn

SETTINGS = BatchSettings(name="b", question="q", options="a,b,c,d", gold_ratio=0.05)


def choice_settings(options: int, **changes: object) -> BatchSettings:
    names = ",".join(f"o{i}" for i in range(options))
    return BatchSettings(name="b", question="q", options=names, fast_suspend=None, **changes)


def gold_positions(seed: str, worker: int, draws: int, settings: BatchSettings) -> list[int]:
    """Where gold falls for a worker who answers every task, gold ones included."""
    schedule, positions = Schedule(), []
    for position in range(draws):
        schedule = draw(schedule, settings, False, stream(seed, worker, schedule.draws))
        if schedule.owed:
            positions.append(position)
            schedule = schedule.settled()
    return positions


def test_the_stream_is_fixed_by_its_secret_and_differs_between_workers() -> None:
    seed = new_seed()
    assert stream(seed, 7, 3) == stream(seed, 7, 3)
    assert stream(seed, 7, 3) != stream(seed, 8, 3)
    assert stream(seed, 7, 3) != stream(new_seed(), 7, 3)
    assert gold_start(seed, 7) != gold_start(seed, 8)
    values = [stream(seed, worker, 0) for worker in range(20_000)]
    assert all(0 <= v < 1 for v in values)
    assert statistics.mean(values) == pytest.approx(0.5, abs=0.01)


@given(
    st.sets(st.integers(0, RANKS - 1), max_size=40),
    st.integers(0, RANKS - 1),
)
def test_a_worker_walks_every_gold_rank_once_from_their_own_start(
    ranks: set[int], start: int
) -> None:
    walked, cursor = [], 0
    while True:
        ahead = [
            min(r for r in ranks if low <= r < high)
            for low, high in gold_ranges(start, cursor)
            if any(low <= r < high for r in ranks)
        ]
        if not ahead:
            break
        walked.append(ahead[0])
        cursor = gold_cursor(start, ahead[0])
    assert walked == sorted(ranks, key=lambda r: (r - start) % RANKS)


@given(st.integers(1, 12), st.integers(0, 2**40))
def test_the_warm_up_gold_is_never_late(min_gold: int, worker: int) -> None:
    settings = SETTINGS.model_copy(update={"min_gold": min_gold})
    positions = gold_positions("ab" * 16, worker, 3 * min_gold, settings)
    assert len(positions) >= min_gold, "all warm-up gold within 3 x min_gold tasks"
    for i, position in enumerate(positions[:min_gold]):
        assert position <= min_gold + 2 * i
    assert positions[0] <= min_gold, "at most min_gold ordinary tasks before the first gold"


@pytest.mark.parametrize("min_gold", [1, 3, 8])
def test_the_warm_up_gold_comes_within_twice_min_gold_tasks_on_average(min_gold: int) -> None:
    settings = SETTINGS.model_copy(update={"min_gold": min_gold})
    seed = new_seed()
    last_warm_up = [
        gold_positions(seed, worker, 3 * min_gold, settings)[min_gold - 1] + 1
        for worker in range(4000)
    ]
    assert statistics.mean(last_warm_up) <= 2 * min_gold


@pytest.mark.parametrize("ratio", [0.05, 0.1, 0.3])
def test_after_the_warm_up_gold_keeps_its_ratio_on_average(ratio: float) -> None:
    settings = SETTINGS.model_copy(update={"gold_ratio": ratio})
    seed = new_seed()
    later = [
        len([p for p in gold_positions(seed, worker, 2000, settings) if p >= 100]) / 1900
        for worker in range(100)
    ]
    assert statistics.mean(later) == pytest.approx(ratio, rel=0.05)


def test_gold_positions_leave_no_rhythm_to_learn() -> None:
    """Two workers of one batch, or one worker in two batches, meet gold in different places;
    the gaps between gold items vary as a memoryless stream's do."""
    seed = new_seed()
    first, second = (gold_positions(seed, w, 3000, SETTINGS) for w in (1, 2))
    assert first != second
    assert gold_positions(new_seed(), 1, 3000, SETTINGS) != first
    gaps = [b - a for a, b in itertools.pairwise(first)]
    assert statistics.pstdev(gaps) > 0.5 * statistics.mean(gaps)


def test_owed_gold_stays_owed_and_doubt_brings_gold_more_often() -> None:
    owed = Schedule(draws=10, drawn=4, owed=True)
    assert draw(owed, SETTINGS, False, 0.99) == owed, "skipping never settles gold that is due"
    assert owed.settled() == Schedule(10, 4, False)
    judged = Schedule(draws=40, drawn=5)
    u = (SETTINGS.gold_ratio + DOUBT_RATE) / 2
    assert not draw(judged, SETTINGS, False, u).owed
    assert draw(judged, SETTINGS, True, u).owed
    no_gold = SETTINGS.model_copy(update={"gold_ratio": 0.0})
    assert not draw(Schedule(), no_gold, True, 0.0).owed


def test_giving_gold_back_as_often_as_answering_it_is_dodging() -> None:
    assert not dodging(0, 2, SETTINGS)  # a skip or two stays free
    assert dodging(0, 3, SETTINGS)
    assert not dodging(20, 3, SETTINGS)  # careful workers skip now and then
    assert dodging(5, 6, SETTINGS)


def test_reports_count_from_credible_workers_and_on_gold_from_trusted_ones() -> None:
    careful = Reporter(True, answers=40, gold_answers=5, gold_correct=5, reports=1)
    sloppy = Reporter(True, answers=40, gold_answers=5, gold_correct=2, reports=1)
    spammer = Reporter(True, answers=9, gold_answers=3, gold_correct=3, reports=3)
    stopped = Reporter(False, answers=40, gold_answers=5, gold_correct=5, reports=1)
    broken, unclear = Problem.BROKEN, Problem.UNCLEAR
    assert withdrawn(broken, False, [careful, sloppy])
    assert not withdrawn(unclear, False, [careful, careful])
    assert not withdrawn(broken, False, [careful, spammer])  # reports a third of all they see
    assert not withdrawn(broken, False, [careful, stopped])
    assert not withdrawn(broken, True, [careful, sloppy])  # gold needs trusted reporters
    assert withdrawn(broken, True, [careful, careful])


def test_a_worker_short_of_gold_answers_is_never_let_through_unchecked() -> None:
    assert when_exhausted(2, 50, SETTINGS) is Exhausted.CLOSED
    assert when_exhausted(3, 50, SETTINGS) is Exhausted.CONTINUE
    stop = SETTINGS.model_copy(update={"gold_exhausted": "stop"})
    assert when_exhausted(3, 50, stop) is Exhausted.STOP
    # A batch with fewer gold items than min_gold judges on what it has.
    assert when_exhausted(2, 2, SETTINGS) is Exhausted.CONTINUE


def suspended_by(accuracy: float, answers: int, settings: BatchSettings, options: int | None):
    """The chance that a worker right with probability `accuracy` on each gold item is
    suspended by their n-th gold answer, for n = 1..answers (exact, by dynamic programming
    over the number right)."""
    alive, total, by = {0: 1.0}, 0.0, []
    for n in range(1, answers + 1):
        grown: dict[int, float] = {}
        for right, chance in alive.items():
            grown[right + 1] = grown.get(right + 1, 0.0) + chance * accuracy
            grown[right] = grown.get(right, 0.0) + chance * (1 - accuracy)
        alive = {}
        for right, chance in grown.items():
            if suspension(Trust(n, n, right), settings, options) is not None:
                total += chance
            else:
                alive[right] = chance
        by.append(total)
    return by


def quantile(by: list[float], share: float) -> int:
    return next(n for n, chance in enumerate(by, start=1) if chance >= share)


@pytest.mark.parametrize("options", [2, 3, 4, 10, None])
def test_an_honest_worker_is_rarely_suspended(options: int | None) -> None:
    """Right 70% of the time against a threshold of 60%: at most 2% within 50 gold answers
    (and, by Ville's inequality, at most 2% ever)."""
    settings = (
        choice_settings(options) if options else SETTINGS.model_copy(update={"options": None})
    )
    assert suspended_by(0.70, 50, settings, options)[-1] <= 0.02
    assert suspended_by(0.70, 1000, settings, options)[-1] <= 0.02
    assert suspended_by(0.80, 50, settings, options)[-1] <= 0.001


@pytest.mark.parametrize(("options", "median", "p95"), [(4, 10, 24), (3, 14, 36), (2, 46, 126)])
def test_a_random_tapper_is_stopped_as_fast_as_the_evidence_allows(
    options: int, median: int, p95: int
) -> None:
    by = suspended_by(1 / options, 300, choice_settings(options), options)
    assert quantile(by, 0.5) <= median and quantile(by, 0.95) <= p95
    below = suspended_by(0.45, 300, choice_settings(options), options)
    assert quantile(below, 0.95) <= 80, "a worker well below the threshold is stopped too"


@pytest.mark.parametrize(("options", "within"), [(2, 8), (4, 5)])
def test_no_test_on_gold_alone_stops_guessers_that_fast_and_spares_the_honest(
    options: int, within: int
) -> None:
    """Why the test does not stop a guesser within `within` gold answers with 95% certainty:
    by the Neyman-Pearson lemma the rule that does so while suspending the fewest honest
    workers (70% right) suspends on the fewest right answers, and even it suspends far more
    than 2% of them."""
    from math import comb

    def chance(p: float, right: int) -> float:
        return comb(within, right) * p**right * (1 - p) ** (within - right)

    guess, honest, cover, cost = 1 / options, 0.70, 0.0, 0.0
    for right in range(within + 1):
        take = min(1.0, (0.95 - cover) / chance(guess, right))
        cover += take * chance(guess, right)
        cost += take * chance(honest, right)
        if cover >= 0.95 - 1e-12:
            break
    assert cost > 0.3


@pytest.mark.parametrize("seed", range(3))
def test_simulated_workers_meet_the_stated_error_rates(seed: int) -> None:
    """The same figures by simulation, through the schedule and the test together: honest
    workers answering 500 tasks, random tappers on a four-option batch."""
    rng = random.Random(seed)
    settings = choice_settings(4, gold_ratio=0.05)
    batch_seed = f"{seed:032x}"

    def tasks_until_suspended(worker: int, accuracy: float, tasks: int) -> int | None:
        schedule, right, answered = Schedule(), 0, 0
        for task in range(tasks):
            record = evidence(answered, right, settings, 4)
            u = stream(batch_seed, worker, schedule.draws)
            schedule = draw(schedule, settings, record.doubtful, u)
            if schedule.owed:
                answered += 1
                right += rng.random() < accuracy
                schedule = schedule.settled()
                if suspension(Trust(task, answered, right), settings, 4):
                    return task + 1
        return None

    honest = [tasks_until_suspended(w, 0.7, 500) for w in range(300)]
    assert sum(t is not None for t in honest) <= 0.02 * 300 + 3
    tappers = [tasks_until_suspended(1000 + w, 0.25, 500) for w in range(300)]
    stopped = sorted(t for t in tappers if t is not None)
    assert len(stopped) >= 297
    assert statistics.median(stopped) <= 25, "doubt brings gold every other task"


def test_a_worker_is_checked_only_against_others_who_agree() -> None:
    assert peer_checks([(1, "a"), (2, "a"), (3, "A ")]) == [(1, True), (2, True), (3, True)]
    assert peer_checks([(1, "b"), (2, "a"), (3, "a")]) == [(1, False)]  # the minority of one
    assert peer_checks([(1, "a"), (2, "b"), (3, "c")]) == []
    assert peer_checks([(1, "a"), (2, "a")]) == []  # one other answer is no consensus


def test_agreement_moves_the_record_and_its_credit_runs_out() -> None:
    settings = choice_settings(4)
    peers = Peers()
    for _ in range(50):
        peers = peer_step(peers, True, settings, 4)
    limit = evidence(0, 0, settings, 4).limit
    assert (peers.checks, peers.agreed) == (50, 50)
    assert peers.below == peers.guessing == -limit, "credit is capped at one limit"
    for _ in range(20):
        peers = peer_step(peers, False, settings, 4)
    assert evidence(3, 1, settings, 4, peers).conclusive
    # Agreement with others completes a case gold opened, never outweighs gold.
    assert not evidence(3, 3, settings, 4, peers).conclusive
    two = choice_settings(2)
    assert peer_step(Peers(), False, two, 2).guessing == 0.0  # guessing is "below" on two


def simulate_peers(accuracy: float, options: int, items: int, trials: int, seed: int) -> float:
    """The share of workers of `accuracy` suspended within `items` ordinary items (one gold
    answer every 20, and every other item while the record is in doubt), checked against two
    other workers of accuracy 0.65-0.95."""
    rng = random.Random(seed)
    settings = choice_settings(options)

    def answer(skill: float) -> int:
        return 0 if rng.random() < skill else rng.randrange(1, options)

    suspended = 0
    for _ in range(trials):
        peers, gold_answers, gold_right = Peers(), 0, 0
        for item in range(items):
            mine = answer(accuracy)
            first, second = answer(rng.uniform(0.65, 0.95)), answer(rng.uniform(0.65, 0.95))
            if first == second:
                peers = peer_step(peers, mine == first, settings, options)
            doubtful = evidence(gold_answers, gold_right, settings, options, peers).doubtful
            if item % 20 == 0 or (doubtful and rng.random() < DOUBT_RATE):
                gold_answers += 1
                gold_right += rng.random() < accuracy
            trust = Trust(item, gold_answers, gold_right, peers=peers)
            if gold_answers >= 3 and suspension(trust, settings, options):
                suspended += 1
                break
    return suspended / trials


@pytest.mark.parametrize("options", [2, 4])
def test_checks_against_others_spare_honest_workers_over_a_long_batch(options: int) -> None:
    assert simulate_peers(0.70, options, 1000, 300, seed=options) <= 0.02


def test_checks_against_others_stop_a_guesser_within_sixty_items() -> None:
    """On four options; on two, guessing (50%) and care (70%) differ too little for that."""
    assert simulate_peers(0.25, 4, 60, 200, seed=9) >= 0.95


def test_the_plan_for_the_next_task() -> None:
    from labeling.assign import DODGING, UNJUDGED, Plan, Situation, Step, plan, without_gold

    fresh = Situation(Trust(), Schedule(), gold_total=5, gold_returned=0, vouched=False)
    assert plan(fresh, SETTINGS, 4, 0.1).step is Step.GOLD  # u below one half: warm-up gold
    assert plan(fresh, SETTINGS, 4, 0.9) == Plan(Step.TASK, Schedule(1, 0, False))
    no_gold = Situation(Trust(), Schedule(), gold_total=0, gold_returned=0, vouched=False)
    assert plan(no_gold, SETTINGS, 4, 0.0) == Plan(Step.TASK, Schedule())
    owing = Situation(Trust(), Schedule(3, 1, True), 5, gold_returned=3, vouched=False)
    assert plan(owing, SETTINGS, 4, 0.9) == Plan(Step.CLOSE, Schedule(3, 1, True), DODGING)
    short = Situation(Trust(2, 2, 2), Schedule(4, 3, True), 5, gold_returned=1, vouched=False)
    assert without_gold(plan(short, SETTINGS, 4, 0.9), short, SETTINGS).reason == UNJUDGED
    vouched = Situation(Trust(), Schedule(4, 3, True), 5, gold_returned=0, vouched=True)
    assert without_gold(plan(vouched, SETTINGS, 4, 0.9), vouched, SETTINGS) == Plan(
        Step.TASK, Schedule(4, 3, False)
    )
