"""Aggregation: each method's rules on small cases, and accuracy on real crowd answers."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from labeling.aggregation import (
    AnswerSet,
    Labels,
    aggregate,
    dawid_skene,
    krippendorff_alpha,
    majority_vote,
    one_coin,
    weighted_vote,
)
from tests.shared_data import shared_data

YES_NO = ("yes", "no")
# crowd-kit 1.4.2's accuracies on these files (shared/data/crowd/README.md).
CROWD_KIT = {
    "d_duck_identification": {"majority_vote": 0.7593, "dawid_skene": 0.8889},
    "d_jn_product": {"majority_vote": 0.8966, "dawid_skene": 0.9397},
}


def labels_of(result: Labels) -> dict[int, tuple[str, int, float, float]]:
    return {
        item: (row.label, row.answers, round(row.agreement, 3), round(row.confidence, 3))
        for item, row in result.rows().items()
    }


def test_majority_vote_counts_support_and_agreement() -> None:
    data = AnswerSet.build([(1, 10, "yes"), (1, 11, "yes"), (1, 12, "no"), (2, 10, "no")], YES_NO)
    assert labels_of(majority_vote(data)) == {
        1: ("yes", 3, 0.667, 0.667),
        2: ("no", 1, 1.0, 1.0),
    }


def test_majority_vote_ties_go_to_the_option_listed_first() -> None:
    data = AnswerSet.build(
        [(1, 10, "no"), (1, 11, "yes"), (2, 10, "maybe"), (2, 11, "no")],
        ("yes", "no", "maybe"),
    )
    result = labels_of(majority_vote(data))
    assert result[1][0] == "yes" and result[2][0] == "no" and result[1][2] == 0.5


def test_free_text_is_compared_after_normalising_case_and_space() -> None:
    data = AnswerSet.build(
        [(1, 10, "A  cat"), (1, 11, "a cat"), (1, 12, "dog"), (2, 10, "b"), (2, 11, "a")]
    )
    result = labels_of(majority_vote(data))
    assert result[1][:2] == ("A  cat", 3) and result[1][2] == 0.667
    assert result[2][0] == "a"  # a free-text tie goes to the first in alphabetical order
    assert labels_of(aggregate(data, "dawid_skene"))[1][0] == "A  cat"  # voted on instead


def test_answers_outside_the_options_are_dropped() -> None:
    data = AnswerSet.build([(1, 10, "yes"), (1, 11, "perhaps")], YES_NO)
    assert len(data.items) == 1


@pytest.mark.parametrize("method", ["majority_vote", "weighted_vote", "one_coin", "dawid_skene"])
def test_a_single_answer_is_the_label(method: str) -> None:
    data = AnswerSet.build([(7, 1, "no")], YES_NO)
    (row,) = aggregate(data, method).rows().values()  # type: ignore[arg-type]
    assert (row.item_id, row.label, row.answers, row.agreement) == (7, "no", 1, 1.0)
    assert 0.5 <= row.confidence <= 1.0


def test_weighted_vote_trusts_workers_who_are_right_on_gold() -> None:
    # Worker 1 is right on all gold; workers 2 and 3 are wrong on all of it.
    answers = [(g, 1, "yes") for g in range(100, 110)]
    answers += [(g, w, "no") for g in range(100, 110) for w in (2, 3)]
    answers += [(1, 1, "yes"), (1, 2, "no"), (1, 3, "no")]
    gold = {g: "yes" for g in range(100, 110)}
    data = AnswerSet.build(answers, YES_NO)
    assert majority_vote(data).rows()[1].label == "no"
    weighted = weighted_vote(data, gold).rows()[1]
    assert weighted.label == "yes" and weighted.confidence > 0.9


def test_without_gold_the_weighted_vote_is_the_majority_vote() -> None:
    rng = np.random.default_rng(1)
    answers = [(i, w, str(rng.integers(3))) for i in range(50) for w in range(5)]
    data = AnswerSet.build(answers, ("0", "1", "2"))
    assert np.array_equal(weighted_vote(data).label, majority_vote(data).label)


def test_the_one_coin_vote_learns_who_is_careless_without_gold() -> None:
    """Two careful workers and three random tappers answer every item: the majority follows
    the tappers a quarter of the time, the one-coin vote learns their accuracy and follows the
    careful pair."""
    rng = np.random.default_rng(3)
    truth = rng.integers(4, size=400)
    classes = ("a", "b", "c", "d")
    answers = []
    for item, label in enumerate(truth):
        for worker in (1, 2):
            right = rng.random() < 0.9
            answers.append((item, worker, classes[label if right else (label + 1) % 4]))
        answers += [(item, worker, classes[rng.integers(4)]) for worker in (3, 4, 5)]
    data = AnswerSet.build(answers, classes)
    truth_map = {i: classes[t] for i, t in enumerate(truth)}
    learnt = one_coin(data)
    assert learnt.accuracy(truth_map) > 0.85  # the careful pair disagree on 18% of items
    assert learnt.accuracy(truth_map) > majority_vote(data).accuracy(truth_map) + 0.1
    assert labels_of(one_coin(AnswerSet.build([(1, 1, "Cat"), (1, 2, "cat ")], None)))[1][0]


def test_dawid_skene_learns_a_worker_who_always_answers_the_same() -> None:
    rng = np.random.default_rng(7)
    truth = rng.integers(2, size=300)
    answers = []
    for item, label in enumerate(truth):
        for worker in (1, 2, 3):  # good workers: right 85% of the time
            right = rng.random() < 0.85
            answers.append((item, worker, YES_NO[label if right else 1 - label]))
        answers.append((item, 4, "yes"))  # always "yes", whatever the item
        answers.append((item, 5, "yes"))
    data = AnswerSet.build(answers, YES_NO)
    truth_map = {i: YES_NO[t] for i, t in enumerate(truth)}
    ds = dawid_skene(data)
    assert ds.accuracy(truth_map) > majority_vote(data).accuracy(truth_map) + 0.05
    assert ds.accuracy(truth_map) > 0.9


def test_dawid_skene_holds_gold_at_its_known_answer_when_everyone_is_wrong() -> None:
    answers = [(g, w, "no") for g in range(5) for w in (1, 2, 3)]
    answers += [(10, 1, "no"), (10, 2, "no"), (10, 3, "yes")]
    gold = {g: "yes" for g in range(5)}
    data = AnswerSet.build(answers, YES_NO)
    rows = dawid_skene(data, gold).rows()
    assert all(rows[g].label == "yes" and rows[g].confidence == 1.0 for g in range(5))
    # Workers who say "no" to every "yes" are learned to flip: item 10 becomes "yes".
    assert rows[10].label == "yes"
    assert weighted_vote(data, gold).rows()[10].label == "yes"  # only worker 3 has weight


def test_dawid_skene_is_deterministic() -> None:
    rng = np.random.default_rng(3)
    answers = [(i, w, YES_NO[rng.integers(2)]) for i in range(100) for w in range(4)]
    data = AnswerSet.build(answers, YES_NO)
    first, second = dawid_skene(data), dawid_skene(data)
    assert np.array_equal(first.label, second.label)
    assert np.allclose(first.confidence, second.confidence)


def test_krippendorffs_alpha_matches_the_published_example() -> None:
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: four
    # observers, twelve units, missing values; nominal alpha = 0.743.
    table = {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    }
    answers = [
        (unit, ord(observer), str(value))
        for observer, values in table.items()
        for unit, value in enumerate(values)
        if value is not None
    ]
    data = AnswerSet.build(answers, ("1", "2", "3", "4", "5"))
    assert krippendorff_alpha(data) == pytest.approx(0.743, abs=5e-4)


def test_alpha_is_one_for_perfect_agreement_and_nan_without_pairs() -> None:
    perfect = AnswerSet.build([(1, 1, "yes"), (1, 2, "yes"), (2, 1, "no"), (2, 2, "no")], YES_NO)
    assert krippendorff_alpha(perfect) == 1.0
    lonely = AnswerSet.build([(1, 1, "yes"), (2, 1, "no")], YES_NO)
    assert np.isnan(krippendorff_alpha(lonely))


def load_crowd(name: str) -> tuple[AnswerSet, dict[int, str]]:
    folder = shared_data("crowd", name)
    with (folder / "answers.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    with (folder / "truth.csv").open() as handle:
        truth = {row["question"]: row["truth"] for row in csv.DictReader(handle)}
    items = {q: i for i, q in enumerate(sorted({r["question"] for r in rows} | set(truth)))}
    workers = {w: i for i, w in enumerate(sorted({r["worker"] for r in rows}))}
    data = AnswerSet.build(
        [(items[r["question"]], workers[r["worker"]], r["answer"]) for r in rows], ("0", "1")
    )
    return data, {items[q]: label for q, label in truth.items()}


@pytest.mark.parametrize("name", sorted(CROWD_KIT))
def test_real_crowd_answers_reach_crowd_kits_accuracy(name: str) -> None:
    data, truth = load_crowd(name)
    assert majority_vote(data).accuracy(truth) >= CROWD_KIT[name]["majority_vote"] - 0.005
    assert dawid_skene(data).accuracy(truth) >= CROWD_KIT[name]["dawid_skene"]
