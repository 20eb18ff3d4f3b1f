"""The rules that decide whether a worker's tap or reply may be stored as an answer."""

from __future__ import annotations

from labeling.models import (
    AssignmentState,
    AssignmentStatus,
    BatchStatus,
    Submission,
    Verdict,
)

__all__ = ["MAX_FREE_TEXT", "Verdict", "answer_value", "judge"]

MAX_FREE_TEXT = 1000


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


def too_long(state: AssignmentState, submission: Submission) -> bool:
    """A typed answer over the limit: the worker is told the limit, not that it is invalid."""
    text = submission.text
    return state.options is None and text is not None and len(text.strip()) > MAX_FREE_TEXT


def answer_value(state: AssignmentState, submission: Submission) -> str | None:
    """The value to store: the chosen option's text, or the trimmed free text."""
    if state.options is not None:
        option = submission.option
        if option is None or not 0 <= option < len(state.options):
            return None
        return state.options[option]
    if submission.text is None:
        return None
    text = submission.text.strip()
    if not text or len(text) > MAX_FREE_TEXT:
        return None
    return text
