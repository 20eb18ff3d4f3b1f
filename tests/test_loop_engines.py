"""The labeling loop on both engines: the same rules give the same tasks, and on PostgreSQL
two replicas picking at once never hand out an item past its overlap."""

from __future__ import annotations

import asyncio

from labeling.batch import BatchSettings
from labeling.models import Submission, Verdict
from storage.engine import Engine
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
