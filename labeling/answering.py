"""The rules that decide whether a worker's tap or reply may be stored as an answer."""

from __future__ import annotations

from labeling.kinds import MAX_FREE_TEXT, Input
from labeling.models import (
    AssignmentState,
    AssignmentStatus,
    BatchStatus,
    Submission,
    Verdict,
)

__all__ = ["MAX_FREE_TEXT", "Verdict", "answer_value", "given", "judge"]


def judge(state: AssignmentState | None, submission: Submission, now: float) -> Verdict:
    """Decides what happens to a submission; only ACCEPTED leads to a write."""
    if state is None:
        return Verdict.NOT_FOUND
    # Ownership first: another worker's assignment reveals nothing about its state.
    if state.worker_id != submission.worker_id:
        return Verdict.NOT_YOURS
    if state.status is AssignmentStatus.ANSWERED:
        return Verdict.DUPLICATE
    if state.status is AssignmentStatus.SKIPPED:
        return Verdict.SKIPPED
    if state.status is AssignmentStatus.EXPIRED or state.expires_at <= now:
        return Verdict.EXPIRED
    if state.batch_status is not BatchStatus.OPEN or not state.may_work:
        return Verdict.BATCH_NOT_OPEN
    if too_long(state, submission):
        return Verdict.TOO_LONG
    if answer_value(state, submission) is None:
        return Verdict.INVALID
    return Verdict.ACCEPTED


def given(submission: Submission) -> Input:
    """What the worker did, as task kinds read it."""
    return Input(choice=submission.option, text=submission.text)


def too_long(state: AssignmentState, submission: Submission) -> bool:
    """An answer refused for its length: the worker is told the limit, not that it is invalid."""
    return state.kind.too_long(given(submission))


def answer_value(state: AssignmentState, submission: Submission) -> str | None:
    """The value to store, in the task kind's encoding (the chosen option's text, the
    trimmed free text); None when the submission is no answer of that kind."""
    return state.kind.value(given(submission))
