"""The quality rules alone: gold schedule, trust, fast answers, confidence, exam marks."""

from __future__ import annotations

from dataclasses import replace

import pytest

from labeling.batch import BatchSettings
from labeling.models import BatchStatus, BatchSummary
from labeling.quality import (
    Trust,
    exam_passed,
    is_fast,
    label_confidence,
    median,
    needs_more_answers,
    suspension,
)
from labeling.report import pace

SETTINGS = BatchSettings(name="b", question="q", options="a,b,c,d")


def test_trust_accuracy_and_its_wilson_interval() -> None:
    trust = Trust(answers=20, gold_answers=10, gold_correct=8)
    assert trust.accuracy == 0.8
    low, high = trust.interval() or (0, 0)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert Trust().accuracy is None and Trust().interval() is None


@pytest.mark.parametrize(
    ("trust", "cause"),
    [
        (Trust(answers=5, gold_answers=2, gold_correct=0), None),  # fewer than min_gold
        (Trust(answers=5, gold_answers=3, gold_correct=0), None),  # 0 of 3 is not yet proof
        (Trust(answers=9, gold_answers=6, gold_correct=0), "gold"),  # six misses in a row: guessing
        (Trust(answers=60, gold_answers=40, gold_correct=26), None),  # 65%: above 60%
        (Trust(answers=60, gold_answers=40, gold_correct=16), "gold"),  # 40%: clearly below
        (Trust(answers=30, fast_answers=5, judged=10), "fast"),  # half of those judged
        (Trust(answers=30, fast_answers=5, judged=11), None),
        (Trust(answers=8, fast_answers=4, judged=8), None),
    ],
)
def test_suspension_rule(trust: Trust, cause: str | None) -> None:
    verdict = suspension(trust, SETTINGS, 4)
    assert (verdict.cause if verdict else None) == cause


def test_the_reason_says_why_and_rules_can_be_turned_off() -> None:
    verdict = suspension(Trust(answers=6, gold_answers=6, gold_correct=0), SETTINGS, 4)
    assert verdict is not None
    assert verdict.reason == "gold accuracy 0/6: below 60% at odds 244 to 1"
    relaxed = SETTINGS.model_copy(update={"min_accuracy": 0.0, "fast_suspend": None})
    assert suspension(Trust(10, 10, 0, fast_answers=10, judged=10), relaxed, 4) is None


def test_fast_answers_are_judged_against_the_median() -> None:
    assert is_fast(100, 1000, 0.25) and not is_fast(300, 1000, 0.25)
    assert not is_fast(1, None, 0.25)  # too few answers yet to know what is typical
    assert median([5, 1, 3]) == 3 and median([4, 1, 3, 2]) == 2 and median([]) is None


def test_confidence_grows_with_agreement_and_with_trusted_workers() -> None:
    two = label_confidence(["a", "a"], [0.8, 0.8], 4)
    three = label_confidence(["a", "a", "a"], [0.8, 0.8, 0.8], 4)
    split = label_confidence(["a", "b"], [0.8, 0.8], 4)
    assert split < two < three < 1
    assert label_confidence(["a", "b"], [0.95, 0.6], 4) > split
    assert label_confidence([], [], 4) == 0.0


def test_dynamic_overlap_asks_for_more_only_while_unsure_and_under_the_cap() -> None:
    dynamic = SETTINGS.model_copy(update={"confidence_target": 0.9, "max_overlap": 5})
    assert needs_more_answers(dynamic, target=3, confidence=0.7)
    assert not needs_more_answers(dynamic, target=3, confidence=0.95)
    assert not needs_more_answers(dynamic, target=5, confidence=0.5)
    assert not needs_more_answers(SETTINGS, target=3, confidence=0.1)


def test_exam_pass_mark() -> None:
    assert exam_passed(4, 5, SETTINGS)  # 80% is the default mark
    assert not exam_passed(3, 5, SETTINGS)
    assert not exam_passed(0, 0, SETTINGS)


def test_settings_check_their_quality_fields() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_overlap must be at least overlap"):
        BatchSettings(name="b", question="q", overlap=3, max_overlap=2)
    with pytest.raises(ValidationError, match="needs a max_overlap"):
        BatchSettings(name="b", question="q", confidence_target=0.9)
    with pytest.raises(ValidationError, match="an exam needs options"):
        BatchSettings(name="b", question="q", exam_size=2)
    assert BatchSettings(name="b", question="q").aggregation == "one_coin"
    with pytest.raises(ValidationError, match="Dawid-Skene needs options"):
        BatchSettings(name="b", question="q", aggregation="dawid_skene")


def test_pace_reports_the_rate_and_the_time_left() -> None:
    summary = BatchSummary(
        1,
        "b",
        BatchStatus.OPEN,
        "q",
        None,
        3,
        0.0,
        items=100,
        gold_items=0,
        items_done=10,
        answers=75,
        answers_counted=75,
        answers_needed=300,
        workers=5,
        open_tasks=2,
        created_at=0.0,
        recent_answers=75,
    )
    assert summary.rate_per_hour == 300
    assert pace(summary) == "300 answers per hour lately; about 45 min to finish"
    assert pace(replace(summary, recent_answers=0)) == "no answers in the last 15 minutes"
    assert pace(replace(summary, answers_counted=300)) == "every item has its answers"
