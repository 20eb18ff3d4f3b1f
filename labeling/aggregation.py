"""Turns workers' answers into one label per item, each with its confidence and support.

Four methods, all on numpy arrays built once (`AnswerSet`):

- `majority_vote`: the most frequent answer. Ties go to the option listed first in the batch;
  for free text (answers compared after normalising case and white space), to the answer
  first in alphabetical order. Confidence: the share of the item's answers that agree.
- `weighted_vote`: each worker's vote weighs log((K-1)·a/(1-a)), a being their accuracy on gold
  (smoothed towards 0.8, so workers without gold count as equals). This is the optimal weight
  when a worker errs uniformly; workers at or below chance weigh nothing.
- `one_coin`: the weighted vote with each worker's accuracy learnt from all their answers (their
  agreement with the labels, gold items at their known answers), voted again until the weights
  settle: one-coin Dawid-Skene by hard EM. A careless worker whom gold has not yet caught
  weighs little.
- `dawid_skene`: EM over a confusion matrix per worker (Dawid & Skene, 1979), started from the
  majority vote, with gold items held at their known answers. Choice batches only.

Which of them applies depends on the task kind (labeling.kinds): `label_answers` dispatches on
the kind's `Aggregation`: one class per answer (choice, free text) goes to the methods above;
a multi-select is voted on option by option; numbers (scales) take the median or the mean.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

from labeling.kinds import Tally, TaskKind, json_list, normalize_answer, number_text

Method = Literal["majority_vote", "weighted_vote", "one_coin", "dawid_skene"]
METHODS: tuple[Method, ...] = ("majority_vote", "weighted_vote", "one_coin", "dawid_skene")
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

PRIOR_ACCURACY = 0.8
PRIOR_STRENGTH = 5.0


@dataclass(frozen=True, slots=True)
class Label:
    item_id: int
    label: str
    answers: int
    agreement: float  # share of the item's answers that chose the label
    confidence: float


@dataclass(frozen=True)
class AnswerSet:
    """Answers as parallel index arrays: answer j is worker `workers[j]` giving class
    `labels[j]` to item `items[j]`; the ids and class names are kept beside them."""

    items: IntArray
    workers: IntArray
    labels: IntArray
    item_ids: IntArray
    worker_ids: IntArray
    classes: tuple[str, ...]
    ordered: bool  # classes come from the batch's options (not from free text)
    # Which class an answer falls in (the task kind's `key`); compares gold and truth too.
    key: Callable[[str], str] = normalize_answer

    @classmethod
    def of_kind(cls, answers: Iterable[tuple[int, int, str]], kind: TaskKind) -> AnswerSet:
        """The answers of a kind whose answer is one class each (`Tally.CATEGORICAL`, `OPEN`)."""
        return cls.build(answers, kind.aggregation.classes, kind.key)

    @classmethod
    def build(
        cls,
        answers: Iterable[tuple[int, int, str]],
        options: Sequence[str] | None = None,
        key: Callable[[str], str] = normalize_answer,
    ) -> AnswerSet:
        """From (item id, worker id, answer) triples; answers outside `options` are dropped."""
        rows = list(answers)
        item_ids, items = np.unique(
            np.fromiter((r[0] for r in rows), np.int64, len(rows)), return_inverse=True
        )
        worker_ids, workers = np.unique(
            np.fromiter((r[1] for r in rows), np.int64, len(rows)), return_inverse=True
        )
        normal = [key(r[2]) for r in rows]
        if options is not None:
            classes = tuple(options)
            index = {key(option): i for i, option in enumerate(options)}
            labels = np.fromiter((index.get(v, -1) for v in normal), np.int64, len(rows))
        else:
            distinct = sorted(set(normal))
            index = {value: i for i, value in enumerate(distinct)}
            shown: dict[str, str] = {}
            for row, value in zip(rows, normal, strict=True):
                shown.setdefault(value, row[2].strip())
            classes = tuple(shown[value] for value in distinct)
            labels = np.fromiter((index[v] for v in normal), np.int64, len(rows))
        keep = labels >= 0
        return cls(
            items[keep],
            workers[keep],
            labels[keep],
            item_ids,
            worker_ids,
            classes,
            options is not None,
            key,
        )

    @classmethod
    def from_arrays(
        cls, items: IntArray, workers: IntArray, labels: IntArray, classes: int
    ) -> AnswerSet:
        """For data already in index form (benchmarks, large imports)."""
        item_ids, item_index = np.unique(items, return_inverse=True)
        worker_ids, worker_index = np.unique(workers, return_inverse=True)
        return cls(
            item_index,
            worker_index,
            labels.astype(np.int64),
            item_ids,
            worker_ids,
            tuple(str(k) for k in range(classes)),
            True,
        )

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_workers(self) -> int:
        return len(self.worker_ids)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def gold_index(self, gold: Mapping[int, str]) -> tuple[IntArray, IntArray]:
        """Positions (in item order) of the gold items that have answers, and their classes."""
        if not gold:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        lookup = {self.key(name): k for k, name in enumerate(self.classes)}
        position = {int(item): i for i, item in enumerate(self.item_ids)}
        pairs = [
            (position[item], lookup[self.key(answer)])
            for item, answer in gold.items()
            if item in position and self.key(answer) in lookup
        ]
        if not pairs:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        array = np.array(pairs, dtype=np.int64)
        return array[:, 0], array[:, 1]


@dataclass(frozen=True)
class Labels:
    """One label per answered item: class index, confidence and support, in item order."""

    answers: AnswerSet
    label: IntArray
    confidence: FloatArray
    method: Method

    def accuracy(self, truth: Mapping[int, str]) -> float:
        """Share of the truth's items (that have answers) whose label matches it."""
        key = self.answers.key
        lookup = {key(name): k for k, name in enumerate(self.answers.classes)}
        hits = total = 0
        for position, item in enumerate(self.answers.item_ids):
            if int(item) in truth:
                total += 1
                hits += lookup.get(key(truth[int(item)]), -1) == self.label[position]
        return hits / total if total else float("nan")

    def rows(self) -> dict[int, Label]:
        data = self.answers
        support = np.bincount(data.items, minlength=data.n_items)
        agree = np.bincount(
            data.items, weights=(data.labels == self.label[data.items]), minlength=data.n_items
        )
        return {
            int(item): Label(
                int(item),
                data.classes[self.label[i]],
                int(support[i]),
                float(agree[i] / support[i]) if support[i] else 0.0,
                float(self.confidence[i]),
            )
            for i, item in enumerate(data.item_ids)
        }


def _best_per_item(
    data: AnswerSet, scores: FloatArray
) -> tuple[IntArray, IntArray, FloatArray, npt.NDArray[np.intp]]:
    """Sums `scores` per (item, class) pair without a dense items x classes matrix (free text
    may have thousands of classes). Returns the pairs' items, classes and totals, and for each
    item the position of its best pair (ties: lowest class index)."""
    keys = data.items * data.n_classes + data.labels
    pairs, inverse = np.unique(keys, return_inverse=True)
    totals = np.bincount(inverse, weights=scores)
    pair_items, pair_classes = pairs // data.n_classes, pairs % data.n_classes
    # Best pair per item: sort by item, then score descending, then class ascending.
    order = np.lexsort((pair_classes, -totals, pair_items))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pair_items[order][1:] != pair_items[order][:-1]
    # numpy's stubs type index arithmetic loosely; these are int64 arrays.
    return (
        cast(IntArray, pair_items),
        cast(IntArray, pair_classes),
        cast(FloatArray, totals),
        order[first],
    )


def majority_vote(data: AnswerSet) -> Labels:
    pair_items, pair_classes, totals, best = _best_per_item(
        data, np.ones(len(data.items), dtype=np.float64)
    )
    support = np.bincount(data.items, minlength=data.n_items).astype(np.float64)
    label = np.zeros(data.n_items, dtype=np.int64)
    label[pair_items[best]] = pair_classes[best]
    confidence = np.zeros(data.n_items)
    confidence[pair_items[best]] = totals[best] / support[pair_items[best]]
    return Labels(data, label, confidence, "majority_vote")


def worker_accuracy(data: AnswerSet, gold: Mapping[int, str]) -> FloatArray:
    """Each worker's accuracy on gold, smoothed towards PRIOR_ACCURACY."""
    positions, classes = data.gold_index(gold)
    known = np.full(data.n_items, -1, dtype=np.int64)
    known[positions] = classes
    on_gold = known[data.items] >= 0
    seen = np.bincount(data.workers[on_gold], minlength=data.n_workers)
    right = np.bincount(
        data.workers[on_gold],
        weights=(data.labels[on_gold] == known[data.items[on_gold]]),
        minlength=data.n_workers,
    )
    return (right + PRIOR_ACCURACY * PRIOR_STRENGTH) / (seen + PRIOR_STRENGTH)


def vote_weights(accuracy: FloatArray, n_classes: int) -> FloatArray:
    accuracy = np.clip(accuracy, 1e-3, 1 - 1e-3)
    return np.maximum(np.log(max(n_classes - 1, 1) * accuracy / (1 - accuracy)), 0.0)


def weighted_vote(data: AnswerSet, gold: Mapping[int, str] | None = None) -> Labels:
    return _weighted(data, worker_accuracy(data, gold or {}), "weighted_vote")


def one_coin(
    data: AnswerSet, gold: Mapping[int, str] | None = None, *, max_rounds: int = 50
) -> Labels:
    """The weighted vote with weights learnt from all of a worker's answers, not gold alone
    (one-coin Dawid-Skene, hard EM): vote, take each worker's agreement with the labels
    (gold items at their known answers) as their accuracy, vote again, until no weight moves.
    A careless worker whom gold has not yet caught weighs little."""
    positions, classes = data.gold_index(gold or {})
    accuracy = worker_accuracy(data, gold or {})
    seen = np.bincount(data.workers, minlength=data.n_workers)
    for _ in range(max_rounds):
        labels = _weighted(data, accuracy, "one_coin")
        truth = labels.label.copy()
        truth[positions] = classes
        right = np.bincount(
            data.workers, weights=(data.labels == truth[data.items]), minlength=data.n_workers
        )
        updated = (right + PRIOR_ACCURACY * PRIOR_STRENGTH) / (seen + PRIOR_STRENGTH)
        if np.allclose(updated, accuracy, atol=1e-9):
            break
        accuracy = updated
    return labels


def _weighted(data: AnswerSet, accuracy: FloatArray, method: Method) -> Labels:
    weights = vote_weights(accuracy, max(data.n_classes, 2))
    scores = weights[data.workers]
    pair_items, pair_classes, totals, best = _best_per_item(data, scores)
    # Posterior of the best class under the one-coin model: exp(score) normalised over the
    # classes; classes nobody chose have score 0 (only counted when the options are known).
    exp_totals = np.exp(totals - totals.max(initial=0.0))
    normaliser = np.bincount(pair_items, weights=exp_totals, minlength=data.n_items)
    if data.ordered:
        chosen = np.bincount(pair_items, minlength=data.n_items)
        normaliser += (data.n_classes - chosen) * np.exp(-totals.max(initial=0.0))
    label = np.zeros(data.n_items, dtype=np.int64)
    label[pair_items[best]] = pair_classes[best]
    confidence = np.zeros(data.n_items)
    confidence[pair_items[best]] = exp_totals[best] / normaliser[pair_items[best]]
    return Labels(data, label, confidence, method)


def dawid_skene(
    data: AnswerSet,
    gold: Mapping[int, str] | None = None,
    *,
    max_iterations: int = 100,
    tolerance: float = 1e-8,
    smoothing: float = 0.01,
) -> Labels:
    """Dawid-Skene EM, stopping when the log-likelihood per answer changes by less than
    `tolerance`. The answers are sorted once by item and once by (worker, answer), so each
    step is one gather and one segmented sum (numpy's reduceat) over the answers."""
    if not data.ordered:
        raise ValueError("Dawid-Skene needs a fixed set of options; free text is voted on")
    n, k, w = data.n_items, data.n_classes, data.n_workers
    gold_positions, gold_classes = data.gold_index(gold or {})
    # Two orders of the answers, built once; the intermediate arrays are dropped as soon as
    # they are used, since at a million answers each one is 8 MB.
    worker_label = data.workers * k + data.labels
    order = np.argsort(data.items, kind="stable")
    item_starts = _segment_starts(data.items[order])
    item_keys = worker_label[order]
    order = np.argsort(worker_label, kind="stable")
    pair_items = data.items[order]
    worker_label = worker_label[order]
    del order
    pair_starts = _segment_starts(worker_label)
    pair_keys = worker_label[pair_starts]
    del worker_label
    # Start from the majority vote, as a soft assignment.
    posterior = np.bincount(data.items * k + data.labels, minlength=n * k).reshape(n, k)
    posterior = posterior / posterior.sum(axis=1, keepdims=True)
    posterior[gold_positions] = np.eye(k)[gold_classes]
    previous = -np.inf
    for _ in range(max_iterations):
        # M-step: class priors and each worker's confusion matrix P(answer l | truth c),
        # kept as rows (worker, answer) x columns (truth) for the E-step's gather.
        priors = np.maximum(posterior.mean(axis=0), 1e-12)
        counts = np.zeros((w * k, k))
        # np.take gathers rows about three times faster than fancy indexing, and float32
        # halves the memory the per-answer rows stream through.
        gathered = np.take(posterior.astype(np.float32), pair_items, axis=0)
        counts[pair_keys] = np.add.reduceat(gathered, pair_starts, axis=0)
        confusion = counts.reshape(w, k, k) + smoothing  # [worker, answer, truth]
        confusion /= confusion.sum(axis=1, keepdims=True)
        log_confusion = np.log(confusion).reshape(w * k, k).astype(np.float32)
        # E-step: each item's posterior over true classes given its answers.
        per_answer = np.take(log_confusion, item_keys, axis=0)
        log_post = np.log(priors) + np.add.reduceat(per_answer, item_starts, axis=0)
        top = log_post.max(axis=1, keepdims=True)
        updated = np.exp(log_post - top)
        total = updated.sum(axis=1, keepdims=True)
        updated /= total
        updated[gold_positions] = np.eye(k)[gold_classes]
        posterior = updated
        likelihood = float(np.sum(top + np.log(total))) / max(len(data.items), 1)
        if likelihood - previous < tolerance:
            break
        previous = likelihood
    label = posterior.argmax(axis=1)
    return Labels(data, label, posterior[np.arange(n), label], "dawid_skene")


def _segment_starts(sorted_keys: IntArray) -> IntArray:
    """Where each run of equal keys begins in a sorted array."""
    if len(sorted_keys) == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    return np.concatenate(([0], change))


def aggregate(data: AnswerSet, method: Method, gold: Mapping[int, str] | None = None) -> Labels:
    """Labels by `method`; free-text batches fall back from Dawid-Skene to the weighted vote."""
    if method == "majority_vote":
        return majority_vote(data)
    if method == "one_coin":
        return one_coin(data, gold)
    if method == "weighted_vote" or not data.ordered:
        return weighted_vote(data, gold)
    return dawid_skene(data, gold)


def label_answers(
    answers: Sequence[tuple[int, int, str]],
    kind: TaskKind,
    method: str,
    gold: Mapping[int, str] | None = None,
) -> tuple[dict[int, Label], float]:
    """Each item's label from (item id, worker id, stored value) triples, as the task kind
    aggregates (`kind.aggregation`), and the answers' agreement (Krippendorff's alpha, NaN
    where it is not computed). `method` must be one the kind allows."""
    spec = kind.aggregation
    if method not in spec.methods:
        raise ValueError(f"{kind.name} answers cannot be aggregated by {method}")
    if not answers:
        return {}, float("nan")
    match spec.tally:
        case Tally.CATEGORICAL | Tally.OPEN:
            data = AnswerSet.of_kind(answers, kind)
            return aggregate(data, cast(Method, method), gold).rows(), krippendorff_alpha(data)
        case Tally.PER_OPTION:
            assert spec.classes is not None
            return per_option(answers, spec.classes, cast(Method, method), gold), float("nan")
        case Tally.NUMERIC:
            return numeric(answers, method, spec.tolerance), float("nan")
    return {}, float("nan")  # Tally.NONE: kept and exported, not aggregated


def per_option(
    answers: Sequence[tuple[int, int, str]],
    options: Sequence[str],
    method: Method,
    gold: Mapping[int, str] | None = None,
) -> dict[int, Label]:
    """Multi-select: each option is a yes/no question of its own, aggregated by `method`
    (values are JSON lists of chosen options). An item's label is the options voted in; its
    confidence that of the least sure option, its agreement the share of answers that chose
    exactly the label's set."""
    chosen = [(item, worker, frozenset(_names(value))) for item, worker, value in answers]
    golden = {item: frozenset(_names(value)) for item, value in (gold or {}).items()}
    per: list[dict[int, Label]] = []
    for option in options:

        def vote(picked: frozenset[str], option: str = option) -> str:
            return "yes" if option in picked else "no"

        data = AnswerSet.build(((i, w, vote(c)) for i, w, c in chosen), ("yes", "no"))
        known = {item: vote(picked) for item, picked in golden.items()}
        per.append(aggregate(data, method, known).rows())
    sets: dict[int, list[frozenset[str]]] = {}
    for item, _, picked in chosen:
        sets.setdefault(item, []).append(picked)
    labels = {}
    for item, given in sets.items():
        voted = [
            option for option, rows in zip(options, per, strict=True) if rows[item].label == "yes"
        ]
        agree = sum(picked == frozenset(voted) for picked in given) / len(given)
        confidence = min(rows[item].confidence for rows in per)
        labels[item] = Label(item, json_list(voted), len(given), agree, confidence)
    return labels


def numeric(
    answers: Sequence[tuple[int, int, str]], method: str, tolerance: float = 0.0
) -> dict[int, Label]:
    """Scales: each item's median (or mean) answer; agreement and confidence are the share
    of answers within `tolerance` of it. Values that are no number are left out."""
    values: dict[int, list[float]] = {}
    for item, _, value in answers:
        number = _number(value)
        if number is not None:
            values.setdefault(item, []).append(number)
    average = statistics.median if method == "median" else statistics.fmean
    labels = {}
    for item, numbers in values.items():
        label = float(average(numbers))
        near = sum(abs(n - label) <= tolerance + 1e-9 for n in numbers) / len(numbers)
        labels[item] = Label(item, number_text(label), len(numbers), near, near)
    return labels


def _names(value: str) -> list[str]:
    """The options a multi-select value names; none when it is not a JSON list of names."""
    try:
        names = json.loads(value)
    except ValueError:
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if np.isfinite(number) else None


def krippendorff_alpha(data: AnswerSet) -> float:
    """Krippendorff's alpha for nominal data: 1 - observed / expected disagreement, over the
    items that have at least two answers. NaN when there is nothing to compare."""
    if len(data.items) == 0:
        return float("nan")
    keys = data.items * data.n_classes + data.labels
    pairs, counts = np.unique(keys, return_counts=True)
    return _alpha(pairs // data.n_classes, pairs % data.n_classes, counts, data.n_classes)


def alpha_of_votes(
    votes: Iterable[tuple[int, str, int]],
    options: Sequence[str] | None,
    key: Callable[[str], str] = normalize_answer,
) -> float:
    """Krippendorff's alpha from (item, answer, how many gave it) rows: the same figure as
    `krippendorff_alpha` over the answers, without one row per answer."""
    rows = [(item, key(value), count) for item, value, count in votes]
    if options is not None:
        index = {key(option): i for i, option in enumerate(options)}
    else:
        index = {value: i for i, value in enumerate(sorted({r[1] for r in rows}))}
    rows = [r for r in rows if r[1] in index]
    if not rows:
        return float("nan")
    n_classes = max(len(index), 1)
    items = np.unique(np.fromiter((r[0] for r in rows), np.int64, len(rows)), return_inverse=True)[
        1
    ]
    classes = np.fromiter((index[r[1]] for r in rows), np.int64, len(rows))
    # Free text that differs only in case or spacing is one answer: merge those rows.
    pairs, where = np.unique(items * n_classes + classes, return_inverse=True)
    counts = np.bincount(where, weights=np.fromiter((r[2] for r in rows), np.float64, len(rows)))
    return _alpha(pairs // n_classes, pairs % n_classes, counts, n_classes)


def _alpha(
    pair_items: IntArray, pair_classes: IntArray, counts: npt.NDArray[Any], n_classes: int
) -> float:
    """Alpha from how many answers gave each class to each item (one entry per pair)."""
    per_item = np.bincount(pair_items, weights=counts)
    m = per_item[pair_items].astype(np.float64)
    pairable = m >= 2
    if not pairable.any():
        return float("nan")
    counts, m, pair_classes = counts[pairable], m[pairable], pair_classes[pairable]
    # Coincidences within an item: sum over classes of n_c (n_c - 1) / (m - 1) agree.
    agreeing = np.sum(counts * (counts - 1) / (m - 1))
    total = np.sum(counts)  # n: all pairable values
    # Marginals n_c over the pairable values.
    marginal = np.bincount(pair_classes, weights=counts, minlength=n_classes)
    disagree_observed = total - agreeing
    disagree_expected = (total * total - np.sum(marginal * marginal)) / (total - 1)
    if disagree_expected == 0:
        return 1.0
    return float(1 - disagree_observed / disagree_expected)
