"""`labelbot demo`: the sandbox, the bot and simulated workers labeling a sample batch."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bot.cli import format_status
from bot.local import LocalBot
from bot.notifier import START
from bot.sandbox import SandboxUser
from bot.sandbox.wire import Message
from handlers.cards import NOTHING_LEFT
from labeling.aggregation import AnswerSet, majority_vote
from labeling.batch import BatchSettings

OPTIONS = ("positive", "negative", "neutral")
SAMPLE = "reviews.csv"


@dataclass(frozen=True, slots=True)
class Persona:
    """A simulated worker: how often they are right and how long they look at a task."""

    user_id: int
    name: str
    accuracy: float
    think: tuple[float, float]

    @property
    def careless(self) -> bool:
        return self.accuracy < 0.5


def personas(count: int, rng: random.Random) -> list[Persona]:
    """Mostly good workers and about one in eight clicking at random, and fast."""
    crowd = []
    for index in range(count):
        if index % 8 == 7:
            accuracy, think = 1 / len(OPTIONS), (0.02, 0.08)
        else:
            accuracy, think = rng.uniform(0.8, 0.98), (0.2, 0.9)
        crowd.append(Persona(10_000 + index, f"Worker {index + 1}", accuracy, think))
    return crowd


def sample_truth() -> tuple[bytes, dict[str, str]]:
    content = resources.files("bot.demo_data").joinpath(SAMPLE).read_bytes()
    rows = csv.DictReader(io.StringIO(content.decode("utf-8")))
    return content, {row["text"]: row["truth"] for row in rows}


def _item_text(card_text: str, truth: dict[str, str]) -> str | None:
    for paragraph in card_text.split("\n\n"):
        if paragraph in truth:
            return paragraph
    return None


STOPPED = "closed to you"


def finished(card: Message) -> bool:
    return NOTHING_LEFT in card.shown or STOPPED in card.shown


def edited(card: Message) -> Callable[[SandboxUser], bool]:
    """Holds once `card` has changed since now."""
    seen = card.edits
    return lambda _: card.edits > seen


async def label_as(
    user: SandboxUser, persona: Persona, truth: dict[str, str], rng: random.Random
) -> int:
    """Acts as one worker: waits for the announcement, then answers until nothing is left or
    gold has caught them."""
    user.send("/start")
    await user.wait_for(lambda u: any(m.find_button(START) for m in u.bot_messages), 60)
    card = next(m for m in reversed(user.bot_messages) if m.find_button(START))
    user.press(START, message_id=card.message_id)
    answers = 0
    while True:
        await user.wait_for(
            lambda u: finished(card) or card.find_button(OPTIONS[0]) is not None, 30
        )
        if finished(card):
            return answers
        item = _item_text(card.shown, truth)
        right = truth.get(item or "", rng.choice(OPTIONS))
        if rng.random() < persona.accuracy:
            choice = right
        else:
            choice = rng.choice([option for option in OPTIONS if option != right])
        await asyncio.sleep(rng.uniform(*persona.think))
        user.press(choice, message_id=card.message_id)
        await user.wait_for(edited(card), 30)
        answers += 1


def naive_accuracy(answers_path: Path, truth: dict[str, str]) -> float:
    """What a majority vote over every answer would give, careless workers included."""
    with answers_path.open(encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["is_gold"] == "False"]
    texts = {}
    labels = majority_vote(
        AnswerSet.build(
            [(int(r["item_id"]), int(r["worker_id"]), r["answer"]) for r in rows], OPTIONS
        )
    ).rows()
    content, _ = sample_truth()
    for row in csv.DictReader(io.StringIO(content.decode("utf-8"))):
        texts[row["id"]] = row["text"]
    ids = {int(r["item_id"]): r["id"] for r in rows}
    right = sum(label.label == truth[texts[ids[item]]] for item, label in labels.items())
    return right / len(labels) if labels else 0.0


async def show_progress(local: LocalBot, batch_id: int, done: asyncio.Event) -> None:
    started = time.monotonic()
    interactive = sys.stdout.isatty()
    while not done.is_set():
        summary = (await local.services.batches.status(batch_id))[0]
        elapsed = time.monotonic() - started
        bar = "#" * int(summary.progress * 30)
        line = (
            f"[{bar:<30}] {summary.progress:4.0%}"
            f"  {summary.answers_counted}/{summary.answers_needed} answers"
            f"  {summary.answers / max(elapsed, 1e-9):5.1f}/s"
            f"  {summary.workers} workers"
        )
        print(f"\r{line}" if interactive else line, end="" if interactive else "\n", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.5 if interactive else 2.0)
    print()


def fresh_database(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("demo.db*"):
        stale.unlink()
    return out / "demo.db"


async def run_demo(*, workers: int = 30, out: Path = Path("demo-output"), seed: int = 7) -> int:
    rng = random.Random(seed)
    database = fresh_database(out)
    content, truth = sample_truth()
    crowd = personas(workers, rng)
    print(
        f"labelbot demo: a sandbox Bot API on loopback, the bot, and {workers} simulated"
        f" workers ({sum(p.careless for p in crowd)} of them careless)."
    )
    started = time.monotonic()
    # Simulated workers tap faster than people; flood control would drop their taps.
    async with LocalBot(database, user_rate=100.0, user_burst=100) as local:
        print(f"sandbox listening at {local.server.base_url.removesuffix('/bot')}")
        users = [local.user(p.user_id, p.name) for p in crowd]
        for user in users:
            user.send("/start")
        await asyncio.gather(
            *(
                user.wait_for(lambda u: u.last is not None and "Welcome" in u.last.shown)
                for user in users
            )
        )
        settings = BatchSettings(
            name="Product reviews",
            question="What is the tone of this review?",
            options=OPTIONS,
            overlap=3,
            reward=0.02,
            instructions="Judge the tone of the review, not the product.",
        )
        imported = await local.services.batches.import_file(content, SAMPLE, settings)
        await local.services.batches.publish(imported.batch_id)
        print(
            f"coordinator: {imported.describe()}\ncoordinator: published it; workers are being"
            " told."
        )
        done = asyncio.Event()
        progress = asyncio.create_task(show_progress(local, imported.batch_id, done))
        counts = await asyncio.gather(
            *(
                label_as(user, persona, truth, random.Random(seed + persona.user_id))
                for user, persona in zip(users, crowd, strict=True)
            )
        )
        done.set()
        await progress
        summary = (await local.services.batches.status(imported.batch_id))[0]
        print("coordinator's status report:\n" + format_status(summary))
        paths = {}
        for what in ("labels", "answers"):
            path = out / f"batch-{imported.batch_id}-{what}.csv"
            with path.open("w", encoding="utf-8", newline="") as handle:
                await local.services.batches.export(imported.batch_id, what, "csv", handle)
            paths[what] = path
        standings = {
            row[0]: row[1]
            for row in await local.query(
                "SELECT worker_id, status FROM worker_batches WHERE batch_id = ?",
                (imported.batch_id,),
            )
        }
        naive = naive_accuracy(paths["answers"], truth)
    with paths["labels"].open(encoding="utf-8") as handle:
        labels = [row for row in csv.DictReader(handle) if not row["gold"]]
    right = sum(row["label"] == row["truth"] for row in labels)
    elapsed = time.monotonic() - started
    careless = {p.user_id for p in crowd if p.careless}
    caught = {worker for worker, status in standings.items() if status == "suspended"}
    caught_after = [str(counts[i]) for i, p in enumerate(crowd) if p.user_id in caught & careless]
    print(
        f"\nsummary: {sum(counts)} answers from {workers} workers in {elapsed:.1f}s."
        f"\n  gold caught {len(caught & careless)} of {len(careless)} careless workers"
        f" (after {', '.join(caught_after) or 'no'} tasks);"
        f" careful workers suspended by mistake: {len(caught - careless)}."
        f"\n  labels by {summary.method} match the sample's truth on {right}/{len(labels)}"
        f" items ({right / len(labels):.1%}); plain majority vote over every answer,"
        f" careless ones included: {naive:.1%}."
    )
    print(f"labels:  {paths['labels']}\nanswers: {paths['answers']}")
    return 0
