"""The labeling loop's rules: what an answer, a skip or a report changes, and who gets which
task next. Plain code over one unit of work (`TaskUnit`): each function is the body of one
transaction, which the engine runs in its own thread, so the answer, its bookkeeping and the
next task commit together, on any engine.

A change may be run again from the start when it lost a race with another replica, so these
functions act only through the unit.
"""

from __future__ import annotations

from labeling.answering import answer_value, judge
from labeling.assign import Plan, Situation, Step, plan, without_gold
from labeling.batch import BatchSettings
from labeling.gold import gold_cursor, gold_ranges, gold_start, stream
from labeling.models import (
    AssignmentStatus,
    Issued,
    Outcome,
    Problem,
    Submission,
    Verdict,
)
from labeling.ports import Answered, Candidate, Held, NewAnswer, TaskUnit, WorkerBatch
from labeling.quality import is_correct, is_fast, label_confidence, needs_more_answers, suspension
from labeling.review import WITHDRAWING, withdrawn

# Accuracy on gold is smoothed towards 0.8 (4 of 5) for dynamic overlap, so that workers
# without gold count alike.
_PRIOR_RIGHT, _PRIOR_SEEN = 4.0, 5.0


def current_or_next(unit: TaskUnit, worker_id: int, now: float, ttl: float) -> Issued:
    """The worker's open task if there is one, else a newly issued one."""
    for held in unit.open_tasks(worker_id):
        if held.task.expires_at > now and held.batch_open:
            return Issued(held.task)
        # A stale task blocks the worker's single open slot: hand it back first.
        task = held.task
        unit.close(task.assignment_id, task.item_id, held.kind, AssignmentStatus.EXPIRED, now)
    return issue(unit, worker_id, now, ttl)


def submit(unit: TaskUnit, submission: Submission, now: float, ttl: float) -> Outcome:
    """Records an answer, applies the quality rules and issues the next task. A rejected
    submission writes nothing."""
    if submission.source is not None and unit.answered_from(submission.source):
        return Outcome(Verdict.DUPLICATE)  # the same message, delivered again
    held = unit.held(submission.assignment_id)
    state = None if held is None else held.state
    card = None if held is None else held.card
    verdict = judge(state, submission, now)
    if verdict is not Verdict.ACCEPTED:
        return Outcome(verdict, card=card)
    assert held is not None and state is not None
    settings = unit.settings(state.batch_id)
    value = answer_value(state, submission)
    assert value is not None
    duration_ms = max(0, round((now - state.issued_at) * 1000))
    # Suspect gold counts in no one's record (gold reported broken still does: a report takes
    # an item out of circulation, it does not judge anyone).
    counts = held.gold is not None and held.item_state != "suspect"
    correct = is_correct(value, held.gold, state.kind) if counts and held.gold is not None else None
    unit.insert_answer(
        NewAnswer(
            state=state,
            value=value,
            duration_ms=duration_ms,
            created_at=now,
            correct=correct,
            fast=is_fast(duration_ms, held.median_ms, settings.fast_ratio),
            source=submission.source,
        )
    )
    # Storage's bookkeeping closes the assignment, pays the reward and counts the answer on
    # its item and in the worker's trust counters; issue() reads those counters back.
    answered = Answered(state.batch_id, state.item_id, held.kind)
    issued = issue(unit, submission.worker_id, now, ttl, answered)
    return Outcome(verdict, issued.task, issued.suspended, issued.closed, card)


def skip(unit: TaskUnit, assignment_id: int, worker_id: int, now: float, ttl: float) -> Outcome:
    """Gives a task back to the pool (never to this worker again) and issues the next."""
    verdict, _, card = _give_back(unit, assignment_id, worker_id, now)
    if verdict is not Verdict.ACCEPTED:
        return Outcome(verdict, card=card)
    issued = issue(unit, worker_id, now, ttl)
    return Outcome(verdict, issued.task, closed=issued.closed, card=card)


def report(
    unit: TaskUnit, assignment_id: int, worker_id: int, problem: Problem, now: float, ttl: float
) -> Outcome:
    """Gives a task back like a skip, recording the worker's report; an item enough credible
    workers report broken is handed out no more (and, if gold, counts in no one's record).
    Out until a coordinator looks: the answers already given on it keep counting, so a report
    cannot get anyone reinstated or suspended."""
    verdict, held, card = _give_back(unit, assignment_id, worker_id, now)
    if verdict is not Verdict.ACCEPTED:
        return Outcome(verdict, card=card)
    assert held is not None
    item_id = held.state.item_id
    unit.add_report(item_id, held.state.batch_id, worker_id, problem, now)
    if problem in WITHDRAWING:
        reports = unit.reports(item_id, problem)
        if reports.item_state == "ok" and withdrawn(problem, reports.gold, reports.reporters):
            unit.set_item_state(item_id, "broken")
    issued = issue(unit, worker_id, now, ttl)
    return Outcome(verdict, issued.task, closed=issued.closed, card=card)


def withdraw_unshowable(unit: TaskUnit, assignment_id: int, now: float) -> None:
    """Marks the assignment's item broken and, if the assignment is still open, releases it
    as expired: not a skip in the worker's counts, and a gold task is not counted as given
    back (WorkService.unshowable says why)."""
    held = unit.held(assignment_id)
    if held is None:
        return
    state = held.state
    if state.status is AssignmentStatus.OPEN:
        unit.close(assignment_id, state.item_id, held.kind, AssignmentStatus.EXPIRED, now)
        if held.kind == "gold":
            unit.forget_gold_returned(state.worker_id, state.batch_id)
    if held.item_state == "ok":  # suspect gold stays suspect: it must keep not counting
        unit.set_item_state(state.item_id, "broken")


def issue(
    unit: TaskUnit, worker_id: int, now: float, ttl: float, answered: Answered | None = None
) -> Issued:
    """Hands the worker their next task: gold when their gold stream says so (or while they
    owe gold), else the next item of the first open batch they may work on. After an answer,
    first applies the trust rules to its batch (and dynamic overlap to its item)."""
    suspended = closed = None
    for place in unit.worker_batches(worker_id):
        batch_id = place.batch_id
        settings = unit.settings(batch_id)
        options = settings.option_count
        if answered is not None and answered.batch_id == batch_id:
            verdict = suspension(place.trust, settings, options)
            if verdict is not None:
                unit.suspend(worker_id, batch_id, verdict, now)
                suspended = place.batch_name
                continue
            if answered.kind == "task" and settings.dynamic_overlap:
                _maybe_widen(unit, answered.item_id, settings)
        if not (place.status == "active" or (place.status is None and settings.exam_size == 0)):
            continue
        step, candidate = _next_step(unit, place, settings, options, worker_id)
        if step.step is Step.CLOSE:
            assert step.reason is not None
            # Unchecked answers must not count: the few ordinary answers given before the
            # first gold leave the labels, as a suspension's do.
            unit.suspend(worker_id, batch_id, step.reason, now)
            closed = closed or place.batch_name
            continue
        if step.step is Step.NONE:
            continue
        if candidate is None:
            candidate = _next_item(unit, batch_id, worker_id, place.task_cursor)
        if candidate is not None:
            task = unit.assign(worker_id, candidate, step.step.value, now, ttl, place.answers)
            # The stream moves on only when a task was handed out: the same draw decides
            # again next time, so asking twice changes nothing.
            task_cursor, gold = place.task_cursor, place.gold_cursor
            if candidate.gold_rank is None:
                task_cursor = max(task_cursor, candidate.item_id)
            else:
                gold = gold_cursor(gold_start(place.gold_seed, worker_id), candidate.gold_rank)
            if (step.schedule, task_cursor, gold) != (
                place.schedule,
                place.task_cursor,
                place.gold_cursor,
            ):
                unit.save_place(worker_id, batch_id, step.schedule, task_cursor, gold)
            return Issued(task, suspended, closed)
    return Issued(None, suspended, closed)


def _next_step(
    unit: TaskUnit,
    place: WorkerBatch,
    settings: BatchSettings,
    options: int | None,
    worker_id: int,
) -> tuple[Plan, Candidate | None]:
    """The plan for the worker in one batch, with the gold item it hands out, if gold."""
    situation = Situation(
        place.trust,
        place.schedule,
        place.gold_total,
        place.gold_returned,
        vouched=place.cause == "coordinator",
    )
    u = stream(place.gold_seed, worker_id, place.schedule.draws)
    step = plan(situation, settings, options, u)
    if step.step is not Step.GOLD:
        return step, None
    start = gold_start(place.gold_seed, worker_id)
    # Ahead of the cursor first; then the whole walk again, for gold that came back behind
    # it (restored after a review) or that the worker skipped past while it was out.
    walks = [gold_ranges(start, place.gold_cursor)]
    if place.gold_cursor:
        walks.append(gold_ranges(start, 0))
    for walk in walks:
        for low, high in walk:
            candidate = unit.pick_gold(place.batch_id, worker_id, low, high)
            if candidate is not None:
                return step, candidate
    return without_gold(step, situation, settings), None


def _next_item(unit: TaskUnit, batch_id: int, worker_id: int, cursor: int) -> Candidate | None:
    """The next ordinary item for the worker: the first wanted one past the last they were
    handed (never seen, so one indexed read however long their history), else one that came
    back to the pool behind them (given back or timed out by others, or asked again)."""
    ahead = unit.pick_task(batch_id, worker_id, after=cursor)
    if ahead is not None or cursor == 0:
        return ahead
    return unit.pick_task(batch_id, worker_id, after=0, upto=cursor)


def _maybe_widen(unit: TaskUnit, item_id: int, settings: BatchSettings) -> None:
    """Dynamic overlap: once every answer asked for is in, ask one more worker if the label
    is still below the confidence target."""
    tally = unit.tally(item_id)
    if tally.answers < tally.target or tally.wanted > 0:
        return
    accuracies = [(right + _PRIOR_RIGHT) / (seen + _PRIOR_SEEN) for _, right, seen in tally.votes]
    kind = settings.kind
    classes = kind.aggregation.classes
    n_classes = len(classes) if classes else len(tally.votes) + 1
    values = [value for value, _, _ in tally.votes]
    confidence = label_confidence(values, accuracies, n_classes, kind)
    if needs_more_answers(settings, tally.target, confidence):
        unit.widen(item_id)


def _give_back(
    unit: TaskUnit, assignment_id: int, worker_id: int, now: float
) -> tuple[Verdict, Held | None, int | None]:
    """Closes the worker's open assignment as skipped, if it is theirs to give back; also
    returns the worker's live card."""
    held = unit.held(assignment_id)
    state = None if held is None else held.state
    verdict = judge(state, Submission(assignment_id, worker_id), now)
    if verdict is Verdict.INVALID:  # giving back carries no answer to be invalid
        verdict = Verdict.ACCEPTED
    if verdict is Verdict.ACCEPTED:
        assert held is not None
        unit.close(assignment_id, held.state.item_id, held.kind, AssignmentStatus.SKIPPED, now)
    return verdict, held, None if held is None else held.card
