"""Quality control in the database: gold mixing, suspension, fast answers, dynamic overlap
and reinstatement, through the same stores the bot uses (exams: tests/test_exam_storage.py)."""

from __future__ import annotations

from typing import Any

from labeling.batch import BatchSettings
from labeling.models import Submission, Task
from storage.engine import Engine, Params
from tests.engines import stored_batch
from tests.factories import Desk, registered

TTL = 600.0
OPTIONS = ("a", "b", "c", "d")


async def batch(engine: Engine, regular: int, gold: int, **settings: Any) -> int:
    rows = [f"item {i}," for i in range(regular)]
    rows += [f"gold {i},a" for i in range(gold)]  # every gold item's answer is "a"
    content = ("text,gold\n" + "\n".join(rows) + "\n").encode()
    return await stored_batch(
        engine, content, BatchSettings(name="b", question="q?", options=OPTIONS, **settings)
    )


async def table(engine: Engine, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in await engine.read(sql, params)]


async def value(engine: Engine, sql: str, params: Params = ()) -> Any:
    rows = await engine.read(sql, params)
    return rows[0][0] if rows else None


async def is_gold(engine: Engine, task: Task) -> bool:
    return bool(
        await value(engine, "SELECT gold IS NOT NULL FROM items WHERE id = ?", (task.item_id,))
    )


async def answer(tasks: Desk, task: Task, worker: int, option: int, now: float = 5.0) -> Any:
    return await tasks.submit(Submission(task.assignment_id, worker, option=option), now, TTL)


async def test_gold_comes_early_and_each_gold_item_once(engine: Engine) -> None:
    await batch(engine, regular=40, gold=5, gold_ratio=0.1)
    tasks = await registered(engine, 1)
    task = (await tasks.current_or_next(1, 1.0, TTL)).task
    kinds, gold_items = [], []
    while task is not None:
        gold = await is_gold(engine, task)
        kinds.append(gold)
        if gold:
            gold_items.append(task.item_id)
        task = (await answer(tasks, task, 1, 0)).next_task
    positions = [k for k, gold in enumerate(kinds) if gold]
    assert all(position <= 3 + 2 * i for i, position in enumerate(positions[:3]))
    assert len(set(gold_items)) == len(gold_items) <= 5  # each gold item once at most
    assert len(kinds) == 40 + len(gold_items)


async def test_gold_cards_look_like_any_other(engine: Engine) -> None:
    await batch(engine, regular=6, gold=3)
    tasks = await registered(engine, 1)
    task = (await tasks.current_or_next(1, 1.0, TTL)).task
    seen: dict[bool, Task] = {}
    while task is not None and len(seen) < 2:
        seen.setdefault(await is_gold(engine, task), task)
        task = (await answer(tasks, task, 1, 0)).next_task
    # Same fields, same kind of values: nothing on a card says "gold".
    for field in ("batch_id", "batch_name", "question", "options", "instructions", "image"):
        assert getattr(seen[True], field) == getattr(seen[False], field)


async def test_when_gold_runs_out_the_batch_decides(engine: Engine) -> None:
    for policy in ("stop", "continue"):
        await batch(engine, regular=6, gold=2, gold_ratio=0.5, gold_exhausted=policy)
    tasks = await registered(engine, 1)
    done = {}
    for batch_id in (1, 2):
        await engine.run(
            lambda tx, b=batch_id: tx.execute(
                "UPDATE batches SET status = CASE WHEN id = ? THEN 'open' ELSE 'paused' END",
                (b,),
            )
        )
        task, count = (await tasks.current_or_next(1, 1.0, TTL)).task, 0
        while task is not None:
            count += 1
            outcome = await answer(tasks, task, 1, 0)
            task = outcome.next_task
        assert outcome.closed is None  # judged on both gold items: nothing to close
        done[batch_id] = count
    # "stop": once both gold items are answered and gold is due again, nothing more.
    assert done[1] < 8 and done[2] == 8
    assert await value(engine, "SELECT gold_answers FROM worker_batches WHERE batch_id = 1") == 2


async def answer_until_suspended(tasks: Desk, worker: int, option: int) -> int:
    """Answers with the same option until the worker is stopped; returns the answers given."""
    task = (await tasks.current_or_next(worker, 1.0, TTL)).task
    given = 0
    while task is not None:
        outcome = await answer(tasks, task, worker, option)
        given += 1
        if outcome.suspended:
            assert outcome.next_task is None and outcome.suspended == "b"
            return given
        task = outcome.next_task
    raise AssertionError("never suspended")


async def test_a_guessing_worker_is_suspended_and_their_items_return_to_the_pool(
    engine: Engine,
) -> None:
    await batch(engine, regular=30, gold=8, overlap=1)
    tasks = await registered(engine, 1, 2)
    given = await answer_until_suspended(tasks, 1, 3)  # always "d": wrong on every gold item
    # Six misses on four options: 244 times likelier from a guesser, past 100:1.
    assert await table(engine, "SELECT status, reason FROM worker_batches WHERE worker_id = 1") == [
        ("suspended", "gold accuracy 0/6: below 60% at odds 244 to 1")
    ]
    # The ordinary items worker 1 answered want an answer again; worker 2 gets them.
    assert await value(engine, "SELECT SUM(answers) FROM items WHERE gold IS NULL") == 0
    assert await value(engine, "SELECT SUM(wanted) FROM items WHERE gold IS NULL") == 30
    assert (await tasks.current_or_next(1, 6.0, TTL)).task is None
    # Their stored answers stay, and cannot be answered further.
    assert await value(engine, "SELECT COUNT(*) FROM answers WHERE worker_id = 1") == given


async def test_reinstating_counts_the_answers_again(engine: Engine) -> None:
    await batch(engine, regular=30, gold=8, overlap=1)
    tasks = await registered(engine, 1)
    given = await answer_until_suspended(tasks, 1, 3)
    assert await tasks.reinstate(1, 1, 10.0)
    assert not await tasks.reinstate(1, 1, 10.0)  # only a suspended worker is reinstated
    assert await value(engine, "SELECT SUM(answers) FROM items WHERE gold IS NULL") == given - 6
    assert await table(engine, "SELECT status, gold_answers, trust_since FROM worker_batches") == [
        ("active", 0, 10.0)
    ]  # their record starts afresh
    assert (await tasks.current_or_next(1, 11.0, TTL)).task is not None


async def test_fast_answers_are_flagged_against_the_batch_median(engine: Engine) -> None:
    await batch(engine, regular=60, gold=0, overlap=1, fast_suspend=None)
    tasks = await registered(engine, 1)
    task = (await tasks.current_or_next(1, 0.0, TTL)).task
    clock = 0.0
    for _ in range(30):  # typical answers take two seconds
        assert task is not None
        clock += 2.0
        task = (await answer(tasks, task, 1, 0, now=clock)).next_task
    await tasks.refresh_medians()
    assert await value(engine, "SELECT median_ms FROM batches") == 2000
    assert task is not None
    await answer(tasks, task, 1, 0, now=clock + 0.2)
    assert await table(engine, "SELECT fast FROM answers ORDER BY id DESC LIMIT 2") == [(1,), (0,)]
    assert await value(engine, "SELECT fast_answers FROM worker_batches") == 1


async def test_a_worker_racing_through_is_suspended(engine: Engine) -> None:
    await batch(engine, regular=60, gold=0, overlap=1)
    tasks = await registered(engine, 1, 2)
    task = (await tasks.current_or_next(2, 0.0, TTL)).task
    for step in range(30):
        assert task is not None
        task = (await answer(tasks, task, 2, 0, now=2.0 * (step + 1))).next_task
    await tasks.refresh_medians()
    task = (await tasks.current_or_next(1, 100.0, TTL)).task
    clock, suspended = 100.0, None
    for _ in range(10):
        assert task is not None
        clock += 0.1
        outcome = await answer(tasks, task, 1, 0, now=clock)
        if outcome.suspended:
            suspended = await value(engine, "SELECT reason FROM worker_batches WHERE worker_id = 1")
            break
        task = outcome.next_task
    assert suspended == "5 of 5 answers far faster than usual"


async def test_dynamic_overlap_asks_more_workers_only_where_they_disagree(engine: Engine) -> None:
    await batch(
        engine, regular=2, gold=0, overlap=2, max_overlap=4, confidence_target=0.95, gold_ratio=0.0
    )
    tasks = await registered(engine, 1, 2, 3, 4, 5)
    # Item 1: everyone says "a". Item 2: workers split between "a" and "b".
    choice = {1: {1: 0, 2: 0, 3: 0, 4: 0, 5: 0}, 2: {1: 0, 2: 1, 3: 0, 4: 1, 5: 0}}
    answered: dict[int, list[int]] = {1: [], 2: []}
    for worker in (1, 2, 3, 4, 5):
        task = (await tasks.current_or_next(worker, 1.0, TTL)).task
        while task is not None:
            answered[task.item_id].append(worker)
            task = (await answer(tasks, task, worker, choice[task.item_id][worker])).next_task
    assert answered[1] == [1, 2] and answered[2] == [1, 2, 3, 4]
    assert await table(engine, "SELECT target, answers, wanted FROM items ORDER BY id") == [
        (2, 2, 0),
        (4, 4, 0),  # item 2 grew to the cap without reaching the target
    ]
