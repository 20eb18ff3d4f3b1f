"""Gold debt, the gold stream across restarts, reports and the coordinator's review, in the
database, through the same stores the bot uses."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from labeling.batch import BatchSettings
from labeling.models import Problem, Submission, Task, WorkerProfile
from labeling.review import ItemNotFound, ReviewError, ReviewService
from storage.db import Database
from storage.engine import Engine, Params, Tx
from storage.reviews import ReviewStore
from tests.engines import replica, stored_batch
from tests.factories import Desk, registered

TTL = 600.0
OPTIONS = ("a", "b", "c", "d")
SEED = "0123456789abcdef" * 2


async def batch(engine: Engine, regular: int, gold: int, **settings: Any) -> int:
    """Gold items are `gold i` with answer "a"; ordinary items `item i`."""
    rows = [f"r{i},item {i}," for i in range(regular)]
    rows += [f"g{i},gold {i},a" for i in range(gold)]
    content = ("id,text,gold\n" + "\n".join(rows) + "\n").encode()
    settings.setdefault("options", OPTIONS)
    return await stored_batch(engine, content, BatchSettings(name="b", question="q?", **settings))


async def table(engine: Engine, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in await engine.read(sql, params)]


async def value(engine: Engine, sql: str, params: Params = ()) -> Any:
    rows = await engine.read(sql, params)
    return rows[0][0] if rows else None


async def write(engine: Engine, *statements: str) -> None:
    """Runs statements in one change, as a rule of the bot might have."""

    def change(tx: Tx) -> None:
        for statement in statements:
            tx.execute(statement)

    await engine.run(change)


def gold(task: Task | None) -> bool:
    return task is not None and (task.text or "").startswith("gold")


async def test_skipping_gold_never_settles_it(db: Database) -> None:
    """A worker who skips every gold item meets gold again at once, gets at most min_gold
    ordinary tasks, and after min_gold gold tasks given back the batch closes to them (a
    throwaway account sees three gold items, not the gold set), their few unchecked answers
    left out of the labels."""
    await batch(db, regular=200, gold=12, overlap=1)
    tasks = await registered(db, 1)
    task = (await tasks.current_or_next(1, 1.0, TTL)).task
    answered = skipped = 0
    while task is not None:
        if gold(task):
            outcome = await tasks.skip(task.assignment_id, 1, 2.0, TTL)
            skipped += 1
            assert gold(outcome.next_task) or outcome.next_task is None, "gold is owed"
        else:
            outcome = await tasks.submit(Submission(task.assignment_id, 1, option=1), 2.0, TTL)
            answered += 1
        task = outcome.next_task
    assert skipped == 3 and answered <= 3
    assert outcome.closed == "b" and outcome.shown is not None
    records = await db.read("SELECT status, cause, gold_returned FROM worker_batches")
    assert [tuple(row) for row in records] == [("suspended", "dodging", 3)]
    counts = await db.read(
        "SELECT (SELECT SUM(answers) FROM items) AS counted, (SELECT COUNT(*) FROM ledger) AS paid"
    )
    assert counts[0]["counted"] == 0  # nothing counts
    assert counts[0]["paid"] == answered  # what they did is paid
    assert (await tasks.current_or_next(1, 3.0, TTL)).task is None


async def test_an_expired_gold_task_is_still_owed(db: Database) -> None:
    await batch(db, regular=50, gold=10, overlap=1)
    tasks = await registered(db, 1)
    task = (await tasks.current_or_next(1, 1.0, TTL)).task
    while not gold(task):
        assert task is not None
        task = (await tasks.submit(Submission(task.assignment_id, 1, option=0), 2.0, TTL)).next_task
    assert await tasks.expire(2.0 + TTL) == 1
    again = (await tasks.current_or_next(1, 3.0 + TTL, TTL)).task
    assert gold(again) and again is not None and again.item_id != task.item_id  # type: ignore[union-attr]


async def kinds(db: Database, tasks: Desk, count: int, restart_at: int | None = None) -> str:
    """The kinds of the first `count` tasks worker 1 is handed ('g' gold, '.' other)."""
    seen = ""
    task = (await tasks.current_or_next(1, 1.0, TTL)).task
    for step in range(count):
        assert task is not None
        seen += "g" if gold(task) else "."
        task = (await tasks.submit(Submission(task.assignment_id, 1, option=0), 2.0, TTL)).next_task
        if step == restart_at:
            tasks = Desk(db)  # a new process reads the same state
    return seen


async def test_the_gold_stream_survives_a_restart(tmp_path: Path) -> None:
    streams = []
    for restart_at in (None, 17):
        async with Database(tmp_path / f"r{restart_at}.db") as db:
            await db.migrate()
            await batch(db, regular=100, gold=20, overlap=1, gold_ratio=0.2)
            await db.run(lambda tx: tx.execute("UPDATE batches SET gold_seed = ?", (SEED,)))
            streams.append(await kinds(db, await registered(db, 1), 60, restart_at))
    assert streams[0] == streams[1]
    assert "g" in streams[0][:4] and streams[0].count("g") >= 5


async def test_two_broken_reports_withdraw_an_item_and_count_against_no_one(
    engine: Engine,
) -> None:
    await batch(engine, regular=3, gold=0, overlap=3, gold_ratio=0.0)
    tasks = await registered(engine, 1, 2, 3)
    first = (await tasks.current_or_next(1, 1.0, TTL)).task
    assert first is not None
    outcome = await tasks.report(first.assignment_id, 1, Problem.BROKEN, 2.0, TTL)
    assert outcome.saved and outcome.next_task is not None
    assert outcome.next_task.item_id != first.item_id
    again = await tasks.report(first.assignment_id, 1, Problem.BROKEN, 2.0, TTL)
    assert not again.saved  # a double tap reports once
    second = (await tasks.current_or_next(2, 3.0, TTL)).task
    assert second is not None and second.item_id == first.item_id
    await tasks.report(second.assignment_id, 2, Problem.UNCLEAR, 4.0, TTL)
    assert await value(engine, "SELECT state FROM items WHERE id = ?", (first.item_id,)) == "ok"
    third = (await tasks.current_or_next(3, 5.0, TTL)).task
    assert third is not None and third.item_id == first.item_id
    await tasks.report(third.assignment_id, 3, Problem.BROKEN, 6.0, TTL)
    assert await value(engine, "SELECT state FROM items WHERE id = ?", (first.item_id,)) == "broken"
    assert await table(
        engine, "SELECT worker_id, status, answers, gold_answers FROM worker_batches ORDER BY 1"
    ) == [(1, "active", 0, 0), (2, "active", 0, 0), (3, "active", 0, 0)]
    review = ReviewService(ReviewStore(engine))
    problems = await review.problems(1)
    assert [(p.external_id, p.state, p.reports) for p in problems] == [
        ("r0", "broken", {"broken": 2, "unclear": 1})
    ]
    # Handed out to no one now, even though it still wants answers; restored, it is again.
    await tasks.upsert_worker(WorkerProfile(4, "w4"), 0.0)
    picked = (await tasks.current_or_next(4, 7.0, TTL)).task
    assert picked is not None and picked.item_id != first.item_id
    assert (await review.restore(1, "r0")).describe() == "no worker's record depends on it"
    with pytest.raises(ReviewError, match="in circulation already"):
        await review.restore(1, "r0")
    with pytest.raises(ItemNotFound):
        await review.restore(1, "nope")
    # labelbot's own number needs its '#': a bare number is the coordinator's id, so a typo
    # never acts on some other item.
    with pytest.raises(ItemNotFound):
        await review.restore(1, str(first.item_id))
    with pytest.raises(ReviewError, match="in circulation already"):
        await review.restore(1, f"#{first.item_id}")
    await engine.run(  # an item whose own id looks like one of labelbot's
        lambda tx: tx.execute(
            "UPDATE items SET external_id = ? WHERE id = 3", (f"#{first.item_id}",)
        )
    )
    assert await ReviewStore(engine).find_item(1, f"#{first.item_id}") == first.item_id


async def test_suspect_gold_is_flagged_and_its_victims_reinstated(engine: Engine) -> None:
    """Gold item g0's known answer is wrong: trusted workers all miss it. The sweep flags it,
    and a worker whom it helped suspend is let back in with a notice."""
    rows = [f"r{i},item {i}," for i in range(60)]
    rows += [f"g{i},gold {i},a" for i in range(1, 8)] + ["g0,gold 0,d"]  # g0 is really "a"
    content = ("id,text,gold\n" + "\n".join(rows) + "\n").encode()
    await stored_batch(
        engine,
        content,
        BatchSettings(name="b", question="q?", options=OPTIONS, gold_ratio=0.5, overlap=4),
    )
    tasks = await registered(engine, 1, 2, 3, 4, 5)
    for worker in (1, 2, 3, 4):  # trusted: right on every gold item that is right
        task = (await tasks.current_or_next(worker, 1.0, TTL)).task
        while task is not None:
            task = (
                await tasks.submit(Submission(task.assignment_id, worker, option=0), 2.0, TTL)
            ).next_task
    review = ReviewService(ReviewStore(engine), clock=lambda: 10.0)
    await write(  # worker 5 was suspended, g0 among the evidence
        engine,
        "INSERT INTO worker_batches (worker_id, batch_id, status, cause, reason,"
        " gold_answers, gold_correct) VALUES (5, 1, 'suspended', 'gold', 'x', 1, 0)",
        "INSERT INTO assignments (item_id, batch_id, worker_id, issued_at, expires_at,"
        " kind) SELECT id, 1, 5, 1, 2, 'gold' FROM items WHERE external_id = 'g0'",
        "INSERT INTO answers (assignment_id, item_id, batch_id, worker_id, value,"
        " duration_ms, created_at, correct) SELECT a.id, a.item_id, 1, 5, 'a', 10, 1, 0"
        " FROM assignments a WHERE a.worker_id = 5",
    )
    assert (await review.sweep()).flagged == 1
    assert await value(engine, "SELECT state FROM items WHERE external_id = 'g0'") == "suspect"
    assert await table(
        engine, "SELECT status, gold_answers FROM worker_batches WHERE worker_id = 5"
    ) == [("active", 0)]
    assert await table(engine, "SELECT worker_id, kind FROM notices") == [(5, "reinstated")]
    assert (await review.sweep()).flagged == 0  # flagged once
    # The coordinator corrects it: it counts again, and worker 5 was right on it after all.
    done = await review.correct_gold(1, "g0", "A")
    assert (done.reinstated, done.suspended) == (0, 0)
    assert await table(engine, "SELECT gold, state FROM items WHERE external_id = 'g0'") == [
        ("a", "ok")
    ]
    assert await value(engine, "SELECT gold_correct FROM worker_batches WHERE worker_id = 5") == 1
    with pytest.raises(ReviewError, match="one of: a, b, c, d"):
        await review.correct_gold(1, "g0", "zebra")


async def test_dropping_gold_makes_an_ordinary_item_with_its_answers(engine: Engine) -> None:
    await batch(engine, regular=4, gold=4, overlap=2, gold_ratio=0.5)
    tasks = await registered(engine, 1)
    task = (await tasks.current_or_next(1, 1.0, TTL)).task
    dropped = None
    while task is not None:
        if gold(task) and dropped is None:
            dropped = task
        task = (await tasks.submit(Submission(task.assignment_id, 1, option=1), 2.0, TTL)).next_task
    assert dropped is not None
    key = await value(engine, "SELECT external_id FROM items WHERE id = ?", (dropped.item_id,))
    review = ReviewService(ReviewStore(engine))
    await review.drop_gold(1, key)
    assert await table(
        engine, "SELECT gold, answers, wanted FROM items WHERE id = ?", (dropped.item_id,)
    ) == [(None, 1, 1)]
    assert (
        await value(engine, "SELECT correct FROM answers WHERE item_id = ?", (dropped.item_id,))
        is None
    )
    assert await value(engine, "SELECT gold_items FROM batches") == 3
    with pytest.raises(ReviewError, match="not hidden gold"):
        await review.drop_gold(1, key)


async def test_the_sweep_suspends_a_worker_who_keeps_disagreeing(engine: Engine) -> None:
    """Workers 1 and 2 answer "a" everywhere; worker 3 always "b". Finished items check each
    worker against the others; only worker 3 is ever the odd one out, and is suspended with a
    notice, their answers leaving the labels."""
    await batch(engine, regular=40, gold=0, overlap=3, gold_ratio=0.0, min_gold=1)
    tasks = await registered(engine, 1, 2, 3)
    for worker, option in ((1, 0), (2, 0), (3, 1)):
        task = (await tasks.current_or_next(worker, 1.0, TTL)).task
        while task is not None:
            submission = Submission(task.assignment_id, worker, option=option)
            task = (await tasks.submit(submission, 2.0, TTL)).next_task
    review = ReviewService(ReviewStore(engine), clock=lambda: 9.0)
    await write(  # as if each had answered the one gold item min_gold asks
        engine,
        "UPDATE worker_batches SET gold_answers = 1, gold_correct = 1",
        # worker 3 missed it: gold opened the case agreement completes
        "UPDATE worker_batches SET gold_correct = 0 WHERE worker_id = 3",
    )
    swept = await review.sweep()
    assert swept.suspended == 1
    rows = await table(
        engine, "SELECT worker_id, status, peer_checks, peer_agreed FROM worker_batches ORDER BY 1"
    )
    assert rows == [(1, "active", 0, 0), (2, "active", 0, 0), (3, "suspended", 40, 0)]
    reason = await value(engine, "SELECT reason FROM worker_batches WHERE worker_id = 3")
    assert "agreed with others on 0/40 items" in reason
    assert await table(engine, "SELECT worker_id, kind FROM notices") == [(3, "suspended")]
    assert await value(engine, "SELECT SUM(answers) FROM items") == 80
    assert (await review.sweep()).suspended == 0  # each finished item is compared once


async def test_gold_taken_out_still_stands_between_an_unjudged_worker_and_the_batch(
    db: Database,
) -> None:
    """Gold withdrawn (reported broken, suspect) is not 'no gold': a worker who never answered
    min_gold gold items meets no ordinary task beyond the warm-up's."""
    await batch(db, regular=40, gold=5, overlap=1)
    await db.run(lambda tx: tx.execute("UPDATE items SET state = 'broken' WHERE gold IS NOT NULL"))
    tasks = await registered(db, 1)
    issued = await tasks.current_or_next(1, 1.0, TTL)
    task, closed, given = issued.task, issued.closed, 0
    while task is not None:
        outcome = await tasks.submit(Submission(task.assignment_id, 1, option=1), 2.0, TTL)
        task, closed, given = outcome.next_task, outcome.closed, given + 1
    assert given <= 3 and closed == "b"
    assert (await db.read("SELECT cause FROM worker_batches"))[0]["cause"] == "unjudged"


async def test_a_worker_a_coordinator_reinstates_is_not_closed_again_at_once(
    db: Database,
) -> None:
    """Reinstated after seeing every gold item, a worker starts a fresh record with no gold
    left to build it from: the coordinator vouched for them, so the batch stays open."""
    await batch(db, regular=60, gold=3, overlap=1)
    tasks = await registered(db, 1)
    task = (await tasks.current_or_next(1, 1.0, TTL)).task
    seen_gold = 0
    while seen_gold < 3:  # "d" on everything: wrong on every gold item, until all are seen
        assert task is not None
        seen_gold += gold(task)
        task = (await tasks.submit(Submission(task.assignment_id, 1, option=3), 2.0, TTL)).next_task
    assert await tasks.expire(3.0 + TTL) == 1  # no task left open
    await db.run(  # as if a rule had stopped them once gold ran out
        lambda tx: tx.execute(
            "UPDATE worker_batches SET status = 'suspended', cause = 'gold', reason = 'x'"
        )
    )
    assert await tasks.reinstate(1, 1, 10.0 + TTL)
    # Gold falls due, and every gold item is seen.
    await db.run(lambda tx: tx.execute("UPDATE worker_batches SET gold_owed = 1"))
    issued = await tasks.current_or_next(1, 11.0 + TTL, TTL)
    assert issued.task is not None and issued.closed is None


async def test_a_worker_suspended_between_taps_is_not_left_holding_a_dead_task(
    engine: Engine,
) -> None:
    """The upkeep suspends a worker while they hold a task: the task goes back to the pool
    rather than staying theirs, unanswerable, until it expires."""
    await batch(engine, regular=40, gold=0, overlap=3, gold_ratio=0.0, min_gold=1)
    tasks = await registered(engine, 1, 2, 3)
    held = None
    for worker, option in ((1, 0), (2, 0), (3, 1)):
        task = (await tasks.current_or_next(worker, 1.0, TTL)).task
        for _ in range(40 if worker < 3 else 39):
            assert task is not None
            submission = Submission(task.assignment_id, worker, option=option)
            task = (await tasks.submit(submission, 2.0, TTL)).next_task
        held = task
    assert held is not None  # worker 3 holds their last task
    await write(engine, "UPDATE worker_batches SET gold_answers = 1, gold_correct = 0")
    assert (await ReviewService(ReviewStore(engine), clock=lambda: 9.0).sweep()).suspended == 1
    assert await table(
        engine,
        "SELECT status, wanted FROM assignments a JOIN items i ON i.id = a.item_id WHERE a.id = ?",
        (held.assignment_id,),
    ) == [("expired", 1)]
    assert (await tasks.current_or_next(3, 10.0, TTL)).task is None


async def test_gold_restored_reopens_the_batch_to_a_worker_it_closed_out(engine: Engine) -> None:
    """With a gold item taken out, a careful worker cannot give min_gold gold answers and is
    closed out; restoring the item lets them back."""
    await batch(engine, regular=40, gold=3, overlap=1)
    await write(engine, "UPDATE items SET state = 'broken' WHERE external_id = 'g0'")
    tasks = await registered(engine, 1)
    issued = await tasks.current_or_next(1, 1.0, TTL)
    task, closed = issued.task, issued.closed
    while task is not None:  # always "a": right on every gold item
        outcome = await tasks.submit(Submission(task.assignment_id, 1, option=0), 2.0, TTL)
        task, closed = outcome.next_task, outcome.closed
    assert closed == "b"
    review = await ReviewService(ReviewStore(engine), clock=lambda: 5.0).restore(1, "g0")
    assert review.reinstated == 1
    assert await value(engine, "SELECT status FROM worker_batches") == "active"
    assert (await tasks.current_or_next(1, 6.0, TTL)).task is not None


async def test_two_replicas_sweeping_at_once_compare_each_item_once(engine: Engine) -> None:
    """The sweep of the test above, run by two replicas at the same moment: each finished
    item is compared by one of them, and the odd one out is suspended once, told once."""
    await batch(engine, regular=40, gold=0, overlap=3, gold_ratio=0.0, min_gold=1)
    tasks = await registered(engine, 1, 2, 3)
    for worker, option in ((1, 0), (2, 0), (3, 1)):
        task = (await tasks.current_or_next(worker, 1.0, TTL)).task
        while task is not None:
            submission = Submission(task.assignment_id, worker, option=option)
            task = (await tasks.submit(submission, 2.0, TTL)).next_task
    await write(
        engine,
        "UPDATE worker_batches SET gold_answers = 1, gold_correct = 1",
        "UPDATE worker_batches SET gold_correct = 0 WHERE worker_id = 3",
    )
    async with replica(engine) as other:
        swept = await asyncio.gather(
            ReviewService(ReviewStore(engine), clock=lambda: 9.0).sweep(),
            ReviewService(ReviewStore(other), clock=lambda: 9.0).sweep(),
        )
    assert sum(s.suspended for s in swept) == 1
    assert await table(
        engine, "SELECT worker_id, status, peer_checks FROM worker_batches ORDER BY 1"
    ) == [(1, "active", 0), (2, "active", 0), (3, "suspended", 40)]
    assert await table(engine, "SELECT worker_id, kind FROM notices") == [(3, "suspended")]
    assert await value(engine, "SELECT SUM(answers) FROM items") == 80
    assert await value(engine, "SELECT COUNT(*) FROM items WHERE compared = 1") == 40
