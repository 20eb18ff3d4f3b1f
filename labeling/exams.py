"""Training exams' rules: who must take one, which questions it asks, pass or fail, and when a
failed worker may try again. Plain code over one unit of work (`ExamUnit`): each function is
the body of one transaction, which the engine runs in its own thread, on any engine.

A change may be run again from the start when it lost a race with another replica, so these
functions act only through the unit.
"""

from __future__ import annotations

import math
from dataclasses import replace

from labeling.answering import answer_value, judge
from labeling.batch import BatchSettings
from labeling.gold import exam_questions
from labeling.models import (
    AssignmentState,
    AssignmentStatus,
    ExamQuestion,
    ExamResult,
    Problem,
    Submission,
    Verdict,
)
from labeling.ports import ExamPlace, ExamUnit, HeldQuestion
from labeling.quality import exam_pass_mark, exam_passed, is_correct
from labeling.review import may_dispute

# A worker admitted to a batch: no exam stands in their way there, and none changes their
# standing (passing does not lift a suspension; a stray attempt does not undo admission).
ADMITTED = frozenset({"active", "suspended"})


def must_take(place: ExamPlace, settings: BatchSettings) -> bool:
    """Whether an exam stands between the worker and the batch."""
    return settings.exam_size > 0 and place.status not in ADMITTED


def may_retry(retry_at: float | None, now: float) -> bool:
    """A failed worker may take the exam again once their time has come; never without one."""
    return retry_at is not None and retry_at <= now


def retry_time(settings: BatchSettings, now: float) -> float | None:
    """When a worker who fails now may try again, if ever."""
    minutes = settings.exam_retry_minutes
    return None if minutes is None else now + minutes * 60


def next_question(unit: ExamUnit, worker_id: int, now: float) -> ExamQuestion | ExamResult | None:
    """The worker's next exam question, starting an attempt where none is open; an ExamResult
    when the only exam left is one they failed and may not retry yet; None when no batch asks
    them for an exam."""
    barred: ExamResult | None = None
    for place in unit.exam_places(worker_id):
        batch_id = place.batch_id
        settings = unit.settings(batch_id)
        if not must_take(place, settings):
            continue
        attempt = unit.open_attempt(batch_id, worker_id)
        if attempt is None:
            if place.status == "failed" and not may_retry(place.retry_at, now):
                barred = barred or _barred(unit, place, worker_id, settings)
                continue
            attempt = unit.start_attempt(batch_id, worker_id, now)
        question = _first_unanswered(unit, attempt, batch_id, worker_id, settings)
        if question is not None:
            return question
    return barred


def answer(unit: ExamUnit, submission: Submission, item_id: int, now: float) -> ExamResult:
    """Records one exam answer (once: a double tap counts once) and, after the last question,
    admits the worker or not."""
    held = unit.held_question(submission.assignment_id, item_id)
    if held is None:
        return ExamResult(Verdict.NOT_FOUND)
    settings = unit.settings(held.batch_id)
    state = _state(held, item_id, settings, now)
    verdict = judge(state, submission, now)
    if verdict is not Verdict.ACCEPTED:
        return ExamResult(verdict)
    value = answer_value(state, submission)
    drawn = asked(unit, held.attempt_id, held.batch_id, held.worker_id, settings)
    if value is None or item_id not in drawn or held.gold is None:
        return ExamResult(Verdict.INVALID)  # forged: not a question of this attempt
    correct = is_correct(value, held.gold, state.kind)
    answered, score = unit.record_answer(held.attempt_id, item_id, value, correct, now)
    total = len(drawn)
    result = ExamResult(
        Verdict.ACCEPTED,
        correct,
        state.kind.shown(held.gold),
        held.explanation,
        score=score,
        total=total,
        batch_name=held.batch_name,
        pass_mark=exam_pass_mark(total, settings),
        question=_question(unit, held.attempt_id, item_id, answered, total, settings),
    )
    if answered < total:
        return result
    passed = exam_passed(score, total, settings)
    retry_at = None if passed else retry_time(settings, now)
    unit.finish_attempt(held.attempt_id, passed, now)
    if held.standing not in ADMITTED:
        status = "active" if passed else "failed"
        unit.set_standing(
            held.worker_id, held.batch_id, status, f"exam {score}/{total}", now, retry_at
        )
    return replace(result, finished=True, passed=passed, retry_at=retry_at)


def dispute(unit: ExamUnit, attempt_id: int, worker_id: int, item_id: int, now: float) -> bool:
    """Files the worker's dispute of a training answer for the coordinator (once); False when
    the question is not one they missed."""
    marked = unit.marked(attempt_id, item_id)
    if marked is None or not may_dispute(marked.worker_id == worker_id, marked.correct):
        return False
    unit.add_report(item_id, marked.batch_id, worker_id, Problem.DISPUTED, now)
    return True


def asked(
    unit: ExamUnit, attempt_id: int, batch_id: int, worker_id: int, settings: BatchSettings
) -> tuple[int, ...]:
    """The items an attempt asks, in order: drawn again from what it depends on (the batch's
    secret, the training items, the attempts before), so it needs no storing and is the same
    after a restart."""
    draw = unit.draw(attempt_id, batch_id, worker_id)
    return exam_questions(
        draw.seed, worker_id, draw.earlier, draw.pool, settings.exam_size, draw.last
    )


def _state(
    held: HeldQuestion, item_id: int, settings: BatchSettings, now: float
) -> AssignmentState:
    """The question as the rules that judge a task's answer see it: open until answered, for
    as long as the attempt is (a ban in the meantime closes the batch)."""
    done = held.answered or held.finished
    return AssignmentState(
        held.attempt_id,
        held.worker_id,
        item_id,
        held.batch_id,
        AssignmentStatus.ANSWERED if done else AssignmentStatus.OPEN,
        now,
        math.inf,
        held.batch_status,
        settings.options,
        may_work=not held.banned,
    )


def _barred(
    unit: ExamUnit, place: ExamPlace, worker_id: int, settings: BatchSettings
) -> ExamResult:
    """Why the worker must wait: their last score, and when they may try again."""
    score, total = unit.last_score(place.batch_id, worker_id)
    return ExamResult(
        Verdict.ACCEPTED,
        finished=True,
        score=score,
        total=total,
        retry_at=place.retry_at,
        batch_name=place.batch_name,
        pass_mark=exam_pass_mark(total, settings),
    )


def _first_unanswered(
    unit: ExamUnit, attempt_id: int, batch_id: int, worker_id: int, settings: BatchSettings
) -> ExamQuestion | None:
    """The attempt's first question not answered yet."""
    drawn = asked(unit, attempt_id, batch_id, worker_id, settings)
    answered = set(unit.answered_items(attempt_id))
    item_id = next((item for item in drawn if item not in answered), None)
    if item_id is None:
        return None
    return _question(unit, attempt_id, item_id, len(answered) + 1, len(drawn), settings)


def _question(
    unit: ExamUnit, attempt_id: int, item_id: int, number: int, total: int, settings: BatchSettings
) -> ExamQuestion:
    card = unit.card(item_id)
    assert settings.options is not None  # an exam needs options (BatchSettings says so)
    return ExamQuestion(
        attempt_id,
        card.batch_id,
        card.batch_name,
        card.question,
        settings.options,
        card.instructions,
        item_id,
        card.text,
        card.image,
        card.image_file_id,
        number,
        total,
        exam_pass_mark(total, settings),
    )
