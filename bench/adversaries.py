"""How quality control holds against workers who game it.

A batch of 2,000 items (5% gold, overlap 3) is labeled by 100 simulated workers through the
same stores the bot uses (no Telegram: the rules live below it): honest workers right 65-95%
of the time, and 30% adversaries, an equal share of each strategy:

- random: taps a random option;
- first: always taps the first option;
- dodger: knows which items are gold and skips them, taps at random elsewhere;
- rhythm: knows the rules, not the random stream: answers with care during the warm-up, where
  gold is most likely, and at random after it;
- fast: taps at random, far faster than people read;
- sleeper: honest for 30 tasks, random after.

Workers act on a simulated clock (honest ones take 3-12 s per task), so a run takes seconds.
It runs once with 4 options and once with 2, and each once more with the honest workers alone,
for the accuracy the adversaries cost. Per strategy it prints the share suspended, tasks until
suspended (median, p90; for sleepers, counted from when they turn), the share of its answers
counted in the labels, and pay earned.

    python bench/adversaries.py [--items 2000] [--workers 100] [--seeds 3]

Each figure pools several runs (seeds), five workers of a strategy per run being few.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import heapq
import io
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labeling.batch import BatchSettings  # noqa: E402
from labeling.batches import BatchService  # noqa: E402
from labeling.models import Submission, Task, WorkerProfile  # noqa: E402
from labeling.review import ReviewService  # noqa: E402
from labeling.work import WorkService  # noqa: E402
from storage.batches import BatchStore  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.exams import ExamStore  # noqa: E402
from storage.reviews import ReviewStore  # noqa: E402
from storage.tasks import TaskStore  # noqa: E402
from storage.workers import WorkerStore  # noqa: E402

STRATEGIES = ("random", "first", "dodger", "rhythm", "fast", "sleeper")
TTL = 600.0
SLEEPER_TURNS = 30  # tasks a sleeper works honestly before turning
WARM_UP = 9  # 3 x min_gold: the rhythm follower's careful stretch
UPKEEP = 10.0  # seconds between the bot's background rounds


@dataclass
class Worker:
    worker_id: int
    strategy: str  # "honest" or one of STRATEGIES
    accuracy: float
    rng: random.Random
    tasks: int = 0  # answers and skips
    suspended_after: int | None = None
    done: bool = False

    def think(self) -> float:
        if self.strategy == "fast":
            return self.rng.uniform(0.2, 0.6)
        return self.rng.uniform(3.0, 12.0)

    def careful(self) -> bool:
        if self.strategy == "honest":
            return True
        if self.strategy == "sleeper":
            return self.tasks < SLEEPER_TURNS
        if self.strategy == "rhythm":
            return self.tasks < WARM_UP
        return False

    def choose(self, truth: int, options: int) -> int:
        if self.strategy == "first":
            return 0
        accuracy = self.accuracy if self.strategy == "honest" else 0.9
        if self.careful():
            if self.rng.random() < accuracy:
                return truth
            return self.rng.choice([o for o in range(options) if o != truth])
        return self.rng.randrange(options)


@dataclass
class Run:
    options: int
    adversaries: bool
    workers: list[Worker] = field(default_factory=list)
    accuracy: float = 0.0
    counted: dict[str, tuple[int, int]] = field(default_factory=dict)  # strategy: counted, all
    gold: dict[str, tuple[int, int]] = field(default_factory=dict)  # strategy: gold, answers
    pay: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def crowd(count: int, adversaries: bool, rng: random.Random) -> list[Worker]:
    bad = round(count * 0.3) if adversaries else 0
    per = bad // len(STRATEGIES)
    workers = []
    for index in range(count - per * len(STRATEGIES) if adversaries else count):
        workers.append(Worker(1000 + index, "honest", rng.uniform(0.65, 0.95), rng))
    if adversaries:
        for strategy in STRATEGIES:
            for _ in range(per):
                worker_rng = random.Random(rng.random())
                workers.append(Worker(1000 + len(workers), strategy, 0.0, worker_rng))
    return workers


def batch_file(items: int, options: int, rng: random.Random) -> tuple[bytes, dict[str, int]]:
    truth, rows = {}, ["id,text,gold"]
    gold = items // 20
    for index in range(items):
        answer = rng.randrange(options)
        key = f"i{index}"
        truth[key] = answer
        rows.append(f"{key},item {index},{f'o{answer}' if index % 20 == 0 else ''}")
    assert sum(1 for r in rows[1:] if not r.endswith(",")) == gold
    return ("\n".join(rows) + "\n").encode(), truth


async def simulate(items: int, count: int, options: int, adversaries: bool, seed: int) -> Run:
    rng = random.Random(seed * 10 + options)
    run = Run(options, adversaries, crowd(count, adversaries, rng))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        async with Database(Path(folder) / "adversaries.db", synchronous="OFF") as db:
            await db.migrate()
            content, truth = batch_file(items, options, rng)
            settings = BatchSettings(
                name="adversaries",
                question="Which class?",
                options=tuple(f"o{i}" for i in range(options)),
                overlap=3,
                gold_ratio=0.05,
                reward=0.01,
            )
            clock = [0.0]
            service = BatchService(BatchStore(db), clock=lambda: clock[0])
            imported = await service.import_file(content, "adversaries.csv", settings)
            await service.publish(imported.batch_id)
            # A fixed secret, so that a seed gives the same run every time.
            secret = f"{seed:032x}"
            await db.run(lambda tx: tx.execute("UPDATE batches SET gold_seed = ?", (secret,)))
            keys = {
                row["id"]: (row["external_id"], row["gold"] is not None)
                for row in await db.read("SELECT id, external_id, gold FROM items")
            }
            tasks = WorkService(
                WorkerStore(db),
                TaskStore(db),
                ExamStore(db),
                assignment_ttl=TTL,
                clock=lambda: clock[0],
            )
            review = ReviewService(ReviewStore(db), clock=lambda: clock[0])
            await label(run, tasks, review, keys, truth, clock)
            await tally(run, service, db, imported.batch_id, truth)
    run.seconds = time.perf_counter() - started
    return run


async def task_for(work: WorkService, worker_id: int) -> Task | None:
    """The worker's open or next task (these batches hold no training exam)."""
    shown = await work.next_task(worker_id)
    return shown if isinstance(shown, Task) else None


async def label(
    run: Run,
    tasks: WorkService,
    review: ReviewService,
    keys: dict[int, tuple[str, bool]],
    truth: dict[str, int],
    clock: list[float],
) -> None:
    """Every worker takes a task, thinks, answers (or skips), until nothing is left for them."""
    queue = [(w.think(), w.worker_id) for w in run.workers]
    heapq.heapify(queue)
    by_id = {w.worker_id: w for w in run.workers}
    current: dict[int, Task | None] = {}
    for worker in run.workers:
        await tasks.register(WorkerProfile(worker.worker_id, worker.strategy))
        current[worker.worker_id] = await task_for(tasks, worker.worker_id)
    upkeep = UPKEEP
    while queue:
        now, worker_id = heapq.heappop(queue)
        clock[0] = now
        if now >= upkeep:  # the bot's upkeep: typical answer times, comparing answers
            await tasks.refresh_medians()
            await review.sweep()
            upkeep = now + UPKEEP
        worker, task = by_id[worker_id], current[worker_id]
        if task is None:
            task = await task_for(tasks, worker_id)
            if task is None:
                worker.done = True
                continue
        key, gold = keys[task.item_id]
        worker.tasks += 1
        if worker.strategy == "dodger" and gold:
            outcome = await tasks.skip(task.assignment_id, worker_id)
        else:
            option = worker.choose(truth[key], run.options)
            submission = Submission(task.assignment_id, worker_id, option=option)
            outcome = await tasks.answer(submission)
        if outcome.suspended or outcome.closed:
            worker.suspended_after = worker.tasks
        elif not outcome.saved and worker.suspended_after is None:
            # Suspended between taps (by the upkeep's comparison of answers): this tap was
            # the first the worker could not give.
            worker.suspended_after = worker.tasks - 1
        current[worker_id] = outcome.next_task
        if outcome.next_task is not None:
            heapq.heappush(queue, (now + worker.think(), worker_id))
        else:
            worker.done = True


async def tally(
    run: Run, service: BatchService, db: Database, batch_id: int, truth: dict[str, int]
) -> None:
    answers = io.StringIO()
    await service.export(batch_id, "answers", "csv", answers)
    strategy = {w.worker_id: w.strategy for w in run.workers}
    counted: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    gold: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in csv.DictReader(io.StringIO(answers.getvalue())):
        name = strategy[int(row["worker_id"])]
        gold[name][0] += row["is_gold"] == "True"
        gold[name][1] += 1
        if row["is_gold"] == "True":
            continue
        counted[name][1] += 1
        counted[name][0] += row["excluded"] == ""
    run.counted = {name: (c[0], c[1]) for name, c in counted.items()}
    run.gold = {name: (g[0], g[1]) for name, g in gold.items()}
    for row in await db.read(
        "SELECT worker_id, SUM(amount) AS earned FROM ledger GROUP BY worker_id"
    ):
        name = strategy[row["worker_id"]]
        run.pay[name] = run.pay.get(name, 0.0) + row["earned"]
    labels = io.StringIO()
    await service.export(batch_id, "labels", "csv", labels)
    rows = [r for r in csv.DictReader(io.StringIO(labels.getvalue())) if not r["gold"]]
    right = sum(r["label"] == f"o{truth[r['id']]}" for r in rows)
    run.accuracy = right / len(rows)


def quantiles(values: list[int]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{statistics.median(ordered):.0f} / {p90}"


def pooled(runs: list[Run], table: str, name: str) -> tuple[int, int]:
    pairs = [getattr(run, table).get(name, (0, 0)) for run in runs]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def report(runs: list[Run], alone: list[Run]) -> tuple[float, float, float]:
    """Prints one batch's table over its runs; returns the largest counted share of any
    strategy but the sleeper, the honest workers' share suspended, and the accuracy lost in
    points."""
    accuracy = statistics.mean(run.accuracy for run in runs)
    baseline = statistics.mean(run.accuracy for run in alone)
    print(
        f"\n{runs[0].options} options, {len(runs)} runs: labels {accuracy:.1%} right with"
        f" adversaries, {baseline:.1%} with honest workers alone"
        f" ({statistics.mean(run.seconds for run in runs):.0f} s a run)"
    )
    header = (
        f"{'strategy':<9} {'workers':>7} {'suspended':>9} {'tasks to stop':>13}"
        f" {'counted':>8} {'gold':>6} {'pay each':>8}"
    )
    print(header + "\n" + "-" * len(header))
    worst = 0.0
    honest_suspended = 0.0
    for name in ("honest", *STRATEGIES):
        group = [w for run in runs for w in run.workers if w.strategy == name]
        stopped = [w.suspended_after for w in group if w.suspended_after is not None]
        after = [t - (SLEEPER_TURNS if name == "sleeper" else 0) for t in stopped]
        counted, total = pooled(runs, "counted", name)
        gold, answers = pooled(runs, "gold", name)
        share = counted / total if total else 0.0
        if name == "honest":
            honest_suspended = len(stopped) / len(group)
        elif name != "sleeper":
            worst = max(worst, share)
        pay = sum(run.pay.get(name, 0.0) for run in runs) / len(group)
        print(
            f"{name:<9} {len(group):>7} {len(stopped) / len(group):>9.0%}"
            f" {quantiles(after):>13} {share:>8.1%} {gold / max(answers, 1):>6.1%} {pay:>8.2f}"
        )
    return worst, honest_suspended, (baseline - accuracy) * 100


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    summary = []
    honest_only = round(args.workers * 0.7)
    for options in (4, 2):
        runs, alone = [], []
        for seed in range(1, args.seeds + 1):
            runs.append(await simulate(args.items, args.workers, options, True, seed))
            alone.append(await simulate(args.items, honest_only, options, False, seed))
        summary.append(report(runs, alone))
    counted = max(s[0] for s in summary)
    honest = max(s[1] for s in summary)
    drop = max(s[2] for s in summary)
    print(
        "\n'tasks to stop' is median / p90 of answers and skips before suspension (for the"
        " sleeper, after turning); 'counted' is the share of the strategy's answers on ordinary"
        " items that count in the labels; 'gold' the share of its answers that were gold."
    )
    rest = f"honest_suspended={honest:.3f} accuracy_drop_points={drop:.2f}"
    print(f"adversaries: max_counted_share={counted:.3f} {rest}")


if __name__ == "__main__":
    asyncio.run(main())
