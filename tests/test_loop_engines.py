"""The labeling loop on both engines: the same rules give the same tasks, and on PostgreSQL
two replicas picking at once never hand out an item past its overlap."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from labeling import loop
from labeling.batch import BatchSettings
from labeling.models import Outcome, Problem, Submission, Verdict
from labeling.ports import Held, ItemReports
from storage.engine import Engine, Tx
from storage.tasks import SqlTaskUnit
from tests.factories import Desk, open_batch, registered

TTL = 600.0
SETTINGS = BatchSettings(name="b", question="q?", options="yes,no", overlap=1, gold_ratio=0)


async def test_answer_skip_and_next_alike_on_both_engines(engine: Engine) -> None:
    await open_batch(engine, b"text\na\nb\nc\n", SETTINGS)  # type: ignore[arg-type]
    tasks = await registered(engine, 1, 2)  # type: ignore[arg-type]
    first = (await tasks.current_or_next(1, 1.0, TTL)).task
    assert first is not None and first.text == "a"
    outcome = await tasks.submit(Submission(first.assignment_id, 1, option=0), 2.0, TTL)
    assert outcome.verdict is Verdict.ACCEPTED
    assert outcome.next_task is not None and outcome.next_task.text == "b"
    again = await tasks.submit(Submission(first.assignment_id, 1, option=0), 2.5, TTL)
    assert again.verdict is Verdict.DUPLICATE
    skipped = await tasks.skip(outcome.next_task.assignment_id, 1, 3.0, TTL)
    assert skipped.next_task is not None and skipped.next_task.text == "c"
    other = (await tasks.current_or_next(2, 3.5, TTL)).task
    assert other is not None and other.text == "b"  # given back: another worker's now
    rows = await engine.read("SELECT answers, wanted FROM items ORDER BY id")
    assert [(row["answers"], row["wanted"]) for row in rows] == [(1, 0), (0, 0), (0, 0)]


async def test_replicas_picking_at_once_never_pass_an_item_s_overlap(engine: Engine) -> None:
    if engine.engine != "postgresql":
        return  # one SQLite writer at a time: nothing to race
    from storage.postgres import PostgresDatabase

    items = "text\n" + "".join(f"item {n}\n" for n in range(10)) + ""
    await open_batch(engine, items.encode(), SETTINGS)  # type: ignore[arg-type]
    workers = list(range(1, 21))
    await registered(engine, *workers)  # type: ignore[arg-type]
    async with PostgresDatabase(engine.url) as other:  # type: ignore[attr-defined]
        replicas = [Desk(engine), Desk(other)]  # type: ignore[arg-type]
        issued = await asyncio.gather(
            *(replicas[w % 2].current_or_next(w, 1.0, TTL) for w in workers)
        )
    given = [i.task.item_id for i in issued if i.task is not None]
    assert len(given) == 10 and len(set(given)) == 10  # each item once, every item given
    rows = await engine.read("SELECT MIN(wanted) AS low, MAX(wanted) AS high FROM items")
    assert (rows[0]["low"], rows[0]["high"]) == (0, 0)


class _Pausing:
    """A unit of work that, once it has read the tapped assignment, lets a second change start
    and holds its own transaction open a moment: the interleaving of a double tap that two
    replicas (or two workers of one) handle at once."""

    def __init__(self, unit: SqlTaskUnit, read: threading.Event) -> None:
        self._unit = unit
        self._read = read

    def held(self, assignment_id: int) -> Held | None:
        held = self._unit.held(assignment_id)
        self._read.set()
        time.sleep(0.3)
        return held

    def __getattr__(self, name: str) -> Any:
        return getattr(self._unit, name)


Tap = Callable[[Any, int], Outcome]

TAPS: dict[str, Tap] = {
    "answer": lambda unit, a: loop.submit(unit, Submission(a, 1, option=0), 2.0, TTL),
    "skip": lambda unit, a: loop.skip(unit, a, 1, 2.0, TTL),
    "report": lambda unit, a: loop.report(unit, a, 1, Problem.BROKEN, 2.0, TTL),
}


@pytest.mark.parametrize(
    ("first", "second"),
    [("skip", "skip"), ("report", "report"), ("answer", "skip"), ("skip", "answer")],
)
async def test_two_taps_on_one_task_at_once_count_once(
    engine: Engine, first: str, second: str
) -> None:
    """The second tap reads the task while the first one's transaction is still open: it must
    wait for it and find the task taken, not act on it again (on PostgreSQL the first tap's
    read locks the assignment; SQLite has one writer at a time)."""
    items = "text\n" + "".join(f"item {n}\n" for n in range(5))
    await open_batch(engine, items.encode(), SETTINGS)  # type: ignore[arg-type]
    tasks = await registered(engine, 1)  # type: ignore[arg-type]
    task = (await tasks.current_or_next(1, 1.0, TTL)).task
    assert task is not None
    read = threading.Event()

    async def second_tap() -> Outcome:
        await asyncio.to_thread(read.wait, 10)
        return await tasks.run(lambda unit: TAPS[second](unit, task.assignment_id))

    outcomes = await asyncio.gather(
        tasks.run(lambda unit: TAPS[first](_Pausing(unit, read), task.assignment_id)),
        second_tap(),
    )
    assert [o.verdict is Verdict.ACCEPTED for o in outcomes] == [True, False]
    rows = await engine.read(
        "SELECT status, COUNT(*) AS n FROM assignments GROUP BY status ORDER BY status"
    )
    given_back = "answered" if first == "answer" else "skipped"
    assert {row["status"]: row["n"] for row in rows} == {given_back: 1, "open": 1}
    counts = await engine.read(
        "SELECT (SELECT COUNT(*) FROM answers) AS answers, (SELECT COUNT(*) FROM reports)"
        " AS reports, (SELECT SUM(answers) FROM items) AS counted,"
        " (SELECT SUM(wanted) FROM items) AS wanted"
    )
    answered = first == "answer"
    assert dict(counts[0]) == {
        "answers": int(answered),
        "reports": int(first == "report"),
        "counted": int(answered),
        # Five items wanted once each: one taken by the open task, one answered (or given
        # back and wanted again).
        "wanted": 5 - 1 - int(answered),
    }


class _PausingAfterCount(_Pausing):
    """Holds its transaction open once it has counted an item's reports, so that a second
    report counts before the first commits."""

    def held(self, assignment_id: int) -> Held | None:
        return self._unit.held(assignment_id)

    def reports(self, item_id: int, problem: Problem) -> ItemReports:
        counted = self._unit.reports(item_id, problem)
        self._read.set()
        time.sleep(0.3)
        return counted


async def _two_gold_tasks(engine: Engine) -> tuple[int, int, Desk]:
    """Workers 1 and 2, each holding a task on the same gold item, both trusted on gold."""
    gold = BatchSettings(
        name="g", question="q?", options="yes,no", overlap=3, gold_ratio=0.5, min_gold=1
    )
    await open_batch(engine, b"text,gold\na,yes\nb,no\nc,\n", gold)  # type: ignore[arg-type]
    tasks = await registered(engine, 1, 2)  # type: ignore[arg-type]

    def hand_out(tx: Tx) -> list[int]:
        item = tx.value("SELECT id FROM items WHERE gold = 'yes'")
        ids = [
            tx.insert(
                "INSERT INTO assignments (item_id, batch_id, worker_id, issued_at, expires_at,"
                " kind) VALUES (?, 1, ?, 1.0, 1e9, 'gold')",
                (item, worker),
            )
            for worker in (1, 2)
        ]
        # Both workers have a long, good gold record: their word on gold counts.
        tx.execute("UPDATE worker_batches SET answers = 20, gold_answers = 5, gold_correct = 5")
        return ids

    first, second = await engine.run(hand_out)
    return first, second, tasks


async def _reports_at_once(engine: Engine, pausing: type[_Pausing]) -> list[Outcome]:
    """Workers 1 and 2 report the gold item of `_two_gold_tasks` broken; worker 1's change,
    through `pausing`, holds its transaction open at its moment while worker 2's runs."""
    first, second, tasks = await _two_gold_tasks(engine)
    paused = threading.Event()

    async def second_report() -> Outcome:
        await asyncio.to_thread(paused.wait, 10)
        return await tasks.report(second, 2, Problem.BROKEN, 2.0, TTL)

    return list(
        await asyncio.gather(
            tasks.run(
                lambda unit: loop.report(pausing(unit, paused), first, 1, Problem.BROKEN, 2.0, TTL)
            ),
            second_report(),
        )
    )


async def test_two_trusted_workers_reporting_a_gold_item_at_once_withdraw_it(
    engine: Engine,
) -> None:
    """Two reports make a gold item broken; made at the same moment, each must count the
    other's, not only what was committed when it counted. (A task item's release already
    locks the item's row; a gold item's does not.)"""
    outcomes = await _reports_at_once(engine, _PausingAfterCount)
    assert [o.verdict for o in outcomes] == [Verdict.ACCEPTED, Verdict.ACCEPTED]
    rows = await engine.read("SELECT state FROM items WHERE gold = 'yes'")
    assert rows[0]["state"] == "broken"


class _PausingAfterReport(_Pausing):
    """Holds its transaction open once it has stored its report, before counting."""

    def held(self, assignment_id: int) -> Held | None:
        return self._unit.held(assignment_id)

    def add_report(
        self, item_id: int, batch_id: int, worker_id: int, problem: Problem, now: float
    ) -> None:
        self._unit.add_report(item_id, batch_id, worker_id, problem, now)
        self._read.set()
        time.sleep(0.3)


async def test_two_reports_stored_before_either_counts_do_not_deadlock(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Each report's row refers to the item, so each transaction holds a key-share lock on it
    when it comes to count: the count's lock must not wait for those (a plain FOR UPDATE
    would, both ways: PostgreSQL's deadlock detector then kills one after a second)."""
    with caplog.at_level(logging.DEBUG, logger="storage.postgres"):
        outcomes = await _reports_at_once(engine, _PausingAfterReport)
    assert [o.verdict for o in outcomes] == [Verdict.ACCEPTED, Verdict.ACCEPTED]
    assert "40P01" not in caplog.text  # no deadlock, no retry
    rows = await engine.read("SELECT state FROM items WHERE gold = 'yes'")
    assert rows[0]["state"] == "broken"
