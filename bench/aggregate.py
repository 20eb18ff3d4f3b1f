"""How fast and how well labelbot aggregates answers, next to crowd-kit on the same data.

Data: a synthetic set of one million answers (100,000 items with 10 answers each from a pool
of 2,000 workers of varied accuracy, spammers included, 4 classes, fixed seed) and the two
real sets in shared/data/crowd. For each method: seconds, peak memory of the call (traced
allocations) and accuracy against the truth. When crowd-kit is installed in this environment
(never a dependency of labelbot: `pip install crowd-kit`), its MajorityVote and DawidSkene
run on the same data in the same run, and the ratios are printed.

    python bench/aggregate.py [--items 100000] [--skip-crowd-kit]
"""

from __future__ import annotations

import argparse
import csv
import gc
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labeling.aggregation import (  # noqa: E402
    AnswerSet,
    dawid_skene,
    majority_vote,
    one_coin,
    weighted_vote,
)

CROWD = ROOT.parent / "shared" / "data" / "crowd"


@dataclass
class Dataset:
    name: str
    items: np.ndarray
    workers: np.ndarray
    labels: np.ndarray
    truth: np.ndarray  # the true class of each item id (items are 0..n-1)
    classes: int


@dataclass
class Result:
    dataset: str
    method: str
    seconds: float
    peak_mb: float
    accuracy: float


def synthetic(
    items: int, per_item: int = 10, pool: int = 2000, classes: int = 4, seed: int = 20261127
) -> Dataset:
    rng = np.random.default_rng(seed)
    truth = rng.integers(classes, size=items)
    # Each item's workers: a walk through the pool with a stride coprime to its size, so the
    # ten are distinct without drawing from the whole pool per item.
    base = rng.integers(pool, size=items)
    strides = np.array([s for s in range(1, 400) if np.gcd(s, pool) == 1])
    stride = rng.choice(strides, size=items)
    workers = (base[:, None] + stride[:, None] * np.arange(per_item)) % pool
    # The crowd: 70% diligent (70-95% right), 15% sloppy (45-70%), 10% spammers answering at
    # random, 5% who always give the same answer.
    kind = rng.choice(4, size=pool, p=[0.70, 0.15, 0.10, 0.05])
    accuracy = np.where(
        kind == 0,
        rng.uniform(0.70, 0.95, pool),
        np.where(kind == 1, rng.uniform(0.45, 0.70, pool), 1.0 / classes),
    )
    fixed = rng.integers(classes, size=pool)
    item_index = np.repeat(np.arange(items), per_item)
    flat_workers = workers.ravel()
    true = truth[item_index]
    right = rng.random(items * per_item) < accuracy[flat_workers]
    wrong = (true + rng.integers(1, classes, size=items * per_item)) % classes
    labels = np.where(right, true, wrong)
    labels = np.where(kind[flat_workers] == 3, fixed[flat_workers], labels)
    return Dataset(
        f"synthetic {items * per_item:,} answers", item_index, flat_workers, labels, truth, classes
    )


def real(name: str) -> Dataset:
    folder = CROWD / name
    with (folder / "answers.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    with (folder / "truth.csv").open() as handle:
        truth_rows = {row["question"]: int(row["truth"]) for row in csv.DictReader(handle)}
    questions = {q: i for i, q in enumerate(sorted({r["question"] for r in rows}))}
    workers = {w: i for i, w in enumerate(sorted({r["worker"] for r in rows}))}
    truth = np.full(len(questions), -1)
    for question, label in truth_rows.items():
        if question in questions:
            truth[questions[question]] = label
    return Dataset(
        name,
        np.array([questions[r["question"]] for r in rows]),
        np.array([workers[r["worker"]] for r in rows]),
        np.array([int(r["answer"]) for r in rows]),
        truth,
        2,
    )


def measure(
    run: Callable[[], np.ndarray], truth: np.ndarray, repeats: int
) -> tuple[float, float, float]:
    """Seconds (the best of `repeats` runs without tracing, as timeit does: the minimum is the
    run least disturbed by the rest of the machine), traced peak MB, and accuracy."""
    seconds = float("inf")
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        predicted = run()
        seconds = min(seconds, time.perf_counter() - started)
    gc.collect()
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    known = truth >= 0
    accuracy = float(np.mean(predicted[known] == truth[known]))
    return seconds, peak, accuracy


def labelbot_methods(data: Dataset) -> dict[str, Callable[[], np.ndarray]]:
    def labels_by(method: Callable[[AnswerSet], Any]) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            answers = AnswerSet.from_arrays(data.items, data.workers, data.labels, data.classes)
            result = method(answers)
            predicted = np.full(len(data.truth), -1)
            predicted[answers.item_ids] = result.label
            return predicted

        return run

    return {
        "majority_vote": labels_by(majority_vote),
        "weighted_vote": labels_by(weighted_vote),
        "one_coin": labels_by(one_coin),
        "dawid_skene": labels_by(dawid_skene),
    }


def crowd_kit_methods(data: Dataset) -> dict[str, Callable[[], np.ndarray]]:
    try:
        import pandas as pd
        from crowdkit.aggregation import DawidSkene, MajorityVote
    except ImportError:
        return {}
    frame = pd.DataFrame({"task": data.items, "worker": data.workers, "label": data.labels})

    def labels_by(model: Any) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            result = model().fit_predict(frame)
            predicted = np.full(len(data.truth), -1)
            predicted[result.index.to_numpy()] = result.to_numpy().astype(int)
            return predicted

        return run

    return {
        "crowd-kit MajorityVote": labels_by(MajorityVote),
        "crowd-kit DawidSkene": labels_by(DawidSkene),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--skip-crowd-kit", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method")
    args = parser.parse_args()
    datasets = [synthetic(args.items)]
    datasets += [
        real(name) for name in ("d_duck_identification", "d_jn_product") if (CROWD / name).is_dir()
    ]
    results: list[Result] = []
    for data in datasets:
        methods = labelbot_methods(data)
        if not args.skip_crowd_kit:
            methods |= crowd_kit_methods(data)
        for method, run in methods.items():
            seconds, peak, accuracy = measure(run, data.truth, args.repeats)
            results.append(Result(data.name, method, seconds, peak, accuracy))
            print(f"  {data.name}: {method} {seconds:.2f}s", file=sys.stderr, flush=True)
    print(f"\n{'data set':<28}{'method':<24}{'seconds':>9}{'peak MB':>9}{'accuracy':>10}")
    for r in results:
        print(f"{r.dataset:<28}{r.method:<24}{r.seconds:>9.3f}{r.peak_mb:>9.1f}{r.accuracy:>10.4f}")
    by_key = {(r.dataset, r.method): r for r in results}
    if not any(r.method.startswith("crowd-kit") for r in results):
        print("\ncrowd-kit is not installed here: pip install crowd-kit to compare.")
    else:
        compare(datasets, by_key)
    first = datasets[0].name  # the synthetic million answers
    one_coin = by_key[(first, "one_coin")].accuracy
    rest = " ".join(
        [
            f"weighted_vote_accuracy={by_key[(first, 'weighted_vote')].accuracy:.4f}",
            f"dawid_skene_accuracy={by_key[(first, 'dawid_skene')].accuracy:.4f}",
            f"dawid_skene_seconds={by_key[(first, 'dawid_skene')].seconds:.3f}",
        ]
    )
    print(f"aggregate: one_coin_accuracy={one_coin:.4f} {rest}")


def compare(datasets: list[Dataset], by_key: dict[tuple[str, str], Result]) -> None:
    """labelbot's Dawid-Skene and majority vote beside crowd-kit's, on the same data."""
    print(
        "\nlabelbot Dawid-Skene against crowd-kit's (target: accuracy >=, 2x faster, less memory)"
    )
    for data in datasets:
        ours = by_key[(data.name, "dawid_skene")]
        theirs = by_key[(data.name, "crowd-kit DawidSkene")]
        mv, theirs_mv = (
            by_key[(data.name, "majority_vote")],
            by_key[(data.name, "crowd-kit MajorityVote")],
        )
        print(
            f"{data.name:<28} accuracy {ours.accuracy:.4f} vs {theirs.accuracy:.4f};"
            f" {theirs.seconds / ours.seconds:5.1f}x faster;"
            f" memory {ours.peak_mb / max(theirs.peak_mb, 1e-9):.2f} of theirs;"
            f" majority vote {theirs_mv.seconds / mv.seconds:.1f}x faster"
        )


if __name__ == "__main__":
    main()
