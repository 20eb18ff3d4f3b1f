"""The domain's rules: callback data, judging a submission, majority vote, batch settings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from handlers.callbacks import (
    MAX_ID,
    AnswerTap,
    DisputeTap,
    ExamTap,
    NextTap,
    ReportTap,
    SkipTap,
    Tap,
    decode,
    encode,
)
from labeling.answering import MAX_FREE_TEXT, Verdict, judge
from labeling.batch import BatchSettings, normalize_answer
from labeling.models import AssignmentState, AssignmentStatus, BatchStatus, Submission

ids = st.integers(min_value=0, max_value=MAX_ID - 1)
taps = st.one_of(
    st.builds(AnswerTap, ids, st.integers(0, 999)),
    st.builds(SkipTap, ids),
    st.builds(ReportTap, ids, st.none() | st.integers(0, 9)),
    st.just(NextTap()),
    st.builds(ExamTap, ids, ids, st.integers(0, 999)),
    st.builds(DisputeTap, ids, ids),
)


@given(taps)
def test_callback_data_round_trips_within_64_bytes(tap: Tap) -> None:
    data = encode(tap)
    assert 1 <= len(data.encode()) <= 64
    assert decode(data) == tap


@given(st.text(max_size=100))
def test_any_callback_data_decodes_or_is_refused(data: str) -> None:
    tap = decode(data)
    assert tap is None or encode(tap) == data


def state(**changes: object) -> AssignmentState:
    base = {
        "assignment_id": 1,
        "worker_id": 7,
        "item_id": 3,
        "batch_id": 1,
        "status": AssignmentStatus.OPEN,
        "issued_at": 0.0,
        "expires_at": 100.0,
        "batch_status": BatchStatus.OPEN,
        "options": ("yes", "no"),
    }
    return AssignmentState(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("current", "submission", "now", "verdict"),
    [
        (state(), Submission(1, 7, option=1), 5.0, Verdict.ACCEPTED),
        (None, Submission(1, 7, option=1), 5.0, Verdict.NOT_FOUND),
        (state(), Submission(1, 8, option=1), 5.0, Verdict.NOT_YOURS),
        (
            state(status=AssignmentStatus.ANSWERED),
            Submission(1, 8, option=0),
            5.0,
            Verdict.NOT_YOURS,
        ),
        (
            state(status=AssignmentStatus.ANSWERED),
            Submission(1, 7, option=0),
            5.0,
            Verdict.DUPLICATE,
        ),
        (state(status=AssignmentStatus.SKIPPED), Submission(1, 7, option=0), 5.0, Verdict.SKIPPED),
        (state(status=AssignmentStatus.EXPIRED), Submission(1, 7, option=0), 5.0, Verdict.EXPIRED),
        (state(), Submission(1, 7, option=0), 100.0, Verdict.EXPIRED),
        (
            state(batch_status=BatchStatus.PAUSED),
            Submission(1, 7, option=0),
            5.0,
            Verdict.BATCH_NOT_OPEN,
        ),
        (state(), Submission(1, 7, option=2), 5.0, Verdict.INVALID),
        (state(), Submission(1, 7, text="yes"), 5.0, Verdict.INVALID),
        (state(options=None), Submission(1, 7, text="  a cat "), 5.0, Verdict.ACCEPTED),
        (state(options=None), Submission(1, 7, text="   "), 5.0, Verdict.INVALID),
        (
            state(options=None),
            Submission(1, 7, text="x" * (MAX_FREE_TEXT + 1)),
            5.0,
            Verdict.TOO_LONG,
        ),
    ],
)
def test_judging_a_submission(
    current: AssignmentState | None, submission: Submission, now: float, verdict: Verdict
) -> None:
    assert judge(current, submission, now) is verdict


def test_normalize_answer() -> None:
    assert normalize_answer("  Hello\tWORLD \n") == "hello world"


def test_batch_settings_parse_and_check_options() -> None:
    settings = BatchSettings(name=" b ", question="q?", options="Yes, No ,Maybe")
    assert settings.name == "b" and settings.options == ("Yes", "No", "Maybe")
    assert settings.canonical_option(" yes ") == "Yes"
    assert BatchSettings(name="b", question="q", options="a, b|c,d").options == ("a, b", "c,d")
    assert BatchSettings(name="b", question="q", options="").options is None
    for bad in ("only", "a,A", "a,,b", ",".join(str(i) for i in range(21)), "a," + "x" * 65):
        with pytest.raises(ValidationError):
            BatchSettings(name="b", question="q", options=bad)
    for field, value in (("overlap", 0), ("gold_ratio", 0.9), ("reward", -1), ("name", "")):
        with pytest.raises(ValidationError):
            BatchSettings(**{"name": "b", "question": "q", field: value})  # type: ignore[arg-type]
