"""Training exams in the database, on both engines: who is asked, what an answer stores, who is
admitted, disputes, and replicas answering or starting the same exam at once."""

from __future__ import annotations

import asyncio
import threading
from functools import partial
from typing import Any

from labeling import exams
from labeling.batch import BatchSettings
from labeling.models import ExamQuestion, ExamResult, Submission, Verdict
from labeling.ports import HeldQuestion
from storage.engine import Engine, Tx
from storage.exams import ExamStore, SqlExamUnit
from storage.postgres import PostgresDatabase
from storage.settings import SettingsCache
from tests.factories import open_batch, registered

OPTIONS = ("a", "b", "c", "d")  # every training item's answer is "a": option 0
RIGHT, WRONG = 0, 1


async def exam_batch(engine: Engine, training: int = 2, regular: int = 2, **rules: Any) -> int:
    """An open batch, imported by the bot's own store, whose first `training` items are its
    training questions; returns its id."""
    rows = [f"item {n},a,It is an a." for n in range(1, training + 1)]
    rows += [f"item {n},," for n in range(training + 1, training + regular + 1)]
    content = ("text,gold,explanation\n" + "\n".join(rows) + "\n").encode()
    pool = {"exam_pool": training} if training else {}
    settings = BatchSettings(name="b", question="q?", options=OPTIONS, overlap=1, **pool, **rules)
    return await open_batch(engine, content, settings)


def question(shown: ExamQuestion | ExamResult | None) -> ExamQuestion:
    assert isinstance(shown, ExamQuestion), shown
    return shown


async def tap(store: ExamStore, shown: ExamQuestion, worker: int, option: int, now: float) -> Any:
    return await store.answer(
        Submission(shown.attempt_id, worker, option=option), shown.item_id, now
    )


async def take(store: ExamStore, worker: int, options: list[int], now: float) -> ExamResult:
    """Answers the worker's exam question by question; returns the last result."""
    result = None
    for option in options:
        result = await tap(
            store, question(await store.next_question(worker, now)), worker, option, now
        )
    assert result is not None
    return result


async def standing(engine: Engine, worker: int) -> list[tuple[Any, ...]]:
    rows = await engine.read(
        "SELECT status, reason, retry_at FROM worker_batches WHERE worker_id = ?", (worker,)
    )
    return [tuple(row) for row in rows]


async def test_the_exam_admits_those_who_pass_and_bars_the_rest(engine: Engine) -> None:
    await exam_batch(engine, training=4, exam_size=2, exam_pass=1.0, exam_retry_minutes=1.0)
    tasks, store = await registered(engine, 1, 2), ExamStore(engine)
    assert (await tasks.current_or_next(1, 1.0, 600)).task is None  # not admitted before it
    first = question(await store.next_question(1, 1.0))
    assert (first.number, first.total, first.text, first.pass_mark) == (1, 2, "item 1", 2)
    assert first.options == OPTIONS and type(first.attempt_id) is int
    missed = await tap(store, first, 1, WRONG, 2.0)
    assert (missed.correct, missed.right_answer, missed.explanation) == (False, "a", "It is an a.")
    assert (missed.finished, missed.score, missed.question.number) == (False, 0, 1)
    again = await tap(store, first, 1, RIGHT, 2.0)
    assert again.verdict is Verdict.DUPLICATE  # a double tap counts once
    second = question(await store.next_question(1, 3.0))
    assert second.number == 2 and second.attempt_id == first.attempt_id
    failed = await tap(store, second, 1, RIGHT, 4.0)
    assert (failed.finished, failed.passed, failed.score, failed.total) == (True, False, 1, 2)
    assert failed.retry_at == 64.0 and type(failed.retry_at) is float
    assert await standing(engine, 1) == [("failed", "exam 1/2", 64.0)]

    barred = await store.next_question(1, 10.0)
    assert isinstance(barred, ExamResult)
    assert (barred.retry_at, barred.score, barred.total, barred.pass_mark) == (64.0, 1, 2, 2)
    retry = question(await store.next_question(1, 64.0))  # from its very time
    assert retry.number == 1 and retry.attempt_id != first.attempt_id
    passed = await take(store, 1, [RIGHT, RIGHT], 66.0)
    assert (passed.passed, passed.score, passed.retry_at) == (True, 2, None)
    assert await standing(engine, 1) == [("active", "exam 2/2", None)]
    assert await store.next_question(1, 67.0) is None  # nothing more to take
    task = (await tasks.current_or_next(1, 68.0, 600)).task
    assert task is not None and task.text == "item 5"  # training items stay out of the work
    rows = await engine.read("SELECT answered, correct, passed FROM exam_attempts ORDER BY id")
    assert [tuple(row) for row in rows] == [(2, 1, 0), (2, 2, 1)]

    # Another worker's attempt cannot be answered by worker 1's taps.
    other = question(await store.next_question(2, 70.0))
    assert (await tap(store, other, 1, RIGHT, 71.0)).verdict is Verdict.NOT_YOURS


async def test_a_failed_exam_without_retries_bars_the_worker_for_good(engine: Engine) -> None:
    await exam_batch(engine, exam_size=1)
    await registered(engine, 1)
    store = ExamStore(engine)
    failed = await take(store, 1, [WRONG], 1.0)
    assert (failed.finished, failed.passed, failed.retry_at) == (True, False, None)
    later = await store.next_question(1, 10.0**9)
    assert isinstance(later, ExamResult) and later.retry_at is None and later.score == 0


async def test_only_batches_with_an_exam_ask_and_only_those_not_admitted(engine: Engine) -> None:
    await exam_batch(engine, training=0)  # no exam
    await exam_batch(engine, exam_size=1)
    await registered(engine, 1, 2, 3)
    store = ExamStore(engine)
    assert question(await store.next_question(1, 1.0)).batch_id == 2

    def standings(tx: Tx) -> None:
        tx.execute(
            "INSERT INTO worker_batches (worker_id, batch_id, status) VALUES (2, 2, 'suspended')"
        )
        tx.execute("UPDATE workers SET status = 'banned' WHERE id = 3")

    await engine.run(standings)
    assert await store.next_question(2, 1.0) is None  # suspended after admission: no exam
    assert await store.next_question(3, 1.0) is None  # banned
    # A ban closes an attempt already begun.
    shown = question(await store.next_question(1, 2.0))
    await engine.run(lambda tx: tx.execute("UPDATE workers SET status = 'banned' WHERE id = 1"))
    assert (await tap(store, shown, 1, RIGHT, 3.0)).verdict is Verdict.BATCH_NOT_OPEN
    assert await engine.read("SELECT * FROM exam_answers") == []


async def test_forged_answers_store_nothing(engine: Engine) -> None:
    await exam_batch(engine, training=3, exam_size=2)
    other = await exam_batch(engine, training=2, exam_size=1)
    await registered(engine, 1)
    store = ExamStore(engine)
    shown = question(await store.next_question(1, 1.0))
    attempt = shown.attempt_id

    async def forged(item_id: int, option: int = RIGHT) -> Verdict:
        result = await store.answer(Submission(attempt, 1, option=option), item_id, 2.0)
        return result.verdict

    assert await forged(3) is Verdict.INVALID  # training, but not drawn for this attempt
    assert await forged(4) is Verdict.INVALID  # an ordinary item of the batch
    other_item = (
        await engine.read("SELECT MIN(id) AS id FROM items WHERE batch_id = ?", (other,))
    )[0]["id"]
    assert await forged(other_item) is Verdict.NOT_FOUND  # another batch's
    assert await forged(shown.item_id, option=9) is Verdict.INVALID  # no such option
    assert await engine.read("SELECT * FROM exam_answers") == []


async def test_an_exam_never_changes_a_standing_already_won(engine: Engine) -> None:
    batch_id = await exam_batch(engine, exam_size=1)
    await registered(engine, 1)
    store = ExamStore(engine)
    shown = question(await store.next_question(1, 1.0))
    # Admitted meanwhile (by another replica's attempt, say): this attempt's verdict stands
    # alone and the worker stays admitted.
    await engine.run(
        lambda tx: tx.execute(
            "INSERT INTO worker_batches (worker_id, batch_id, status, reason) VALUES (1, ?,"
            " 'active', 'exam 1/1')",
            (batch_id,),
        )
    )
    failed = await tap(store, shown, 1, WRONG, 2.0)
    assert failed.finished and not failed.passed
    assert await standing(engine, 1) == [("active", "exam 1/1", None)]


async def test_a_worker_disputes_only_a_question_they_missed_and_once(engine: Engine) -> None:
    batch_id = await exam_batch(engine, exam_size=2)
    await registered(engine, 1, 2)
    store = ExamStore(engine)
    first = question(await store.next_question(1, 1.0))
    await tap(store, first, 1, WRONG, 2.0)
    second = question(await store.next_question(1, 3.0))
    assert not await store.dispute(second.attempt_id, 1, second.item_id, 4.0)  # not answered
    await tap(store, second, 1, RIGHT, 5.0)
    assert not await store.dispute(second.attempt_id, 1, second.item_id, 6.0)  # right
    assert not await store.dispute(first.attempt_id, 2, first.item_id, 6.0)  # not theirs
    assert not await store.dispute(first.attempt_id + 99, 1, first.item_id, 6.0)  # no attempt
    assert await store.dispute(first.attempt_id, 1, first.item_id, 7.0)
    assert await store.dispute(first.attempt_id, 1, first.item_id, 8.0)  # again: one report
    rows = await engine.read("SELECT item_id, batch_id, worker_id, reason, created_at FROM reports")
    assert [tuple(row) for row in rows] == [(first.item_id, batch_id, 1, "disputed", 7.0)]


# -- replicas at once ------------------------------------------------------------------------


class Gate:
    """Holds the first two changes that reach it until both have (where two connections can
    run at once), so that both read before either writes; later runs pass straight through."""

    def __init__(self, racing: bool) -> None:
        self.racing = racing
        self.arrivals = 0
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(2, timeout=10)

    def meet(self) -> None:
        with self._lock:
            self.arrivals += 1
            first_run = self.arrivals <= 2
        if self.racing and first_run:
            self._barrier.wait()


class GatedUnit(SqlExamUnit):
    def __init__(self, tx: Tx, settings: SettingsCache, gate: Gate) -> None:
        super().__init__(tx, settings)
        self.gate = gate


class StartingUnit(GatedUnit):
    """Meets the gate once it has read whether an attempt is open."""

    def open_attempt(self, batch_id: int, worker_id: int) -> int | None:
        attempt = super().open_attempt(batch_id, worker_id)
        self.gate.meet()
        return attempt


class AnsweringUnit(GatedUnit):
    """Meets the gate before it reads the question answered."""

    def held_question(self, attempt_id: int, item_id: int) -> HeldQuestion | None:
        self.gate.meet()
        return super().held_question(attempt_id, item_id)


def racing(engine: Engine) -> bool:
    """Whether two changes run at once: on PostgreSQL's pool; SQLite has one writer."""
    return isinstance(engine, PostgresDatabase)


async def both(engine: Engine, unit: type[GatedUnit], gate: Gate, *changes: Any) -> list[Any]:
    settings = SettingsCache()

    def run(change: Any) -> Any:
        return engine.run(lambda tx: change(unit(tx, settings, gate)))

    return list(await asyncio.gather(*(run(change) for change in changes)))


async def test_two_replicas_starting_one_exam_start_one_attempt(engine: Engine) -> None:
    await exam_batch(engine, exam_size=2)
    await registered(engine, 1)
    gate = Gate(racing(engine))
    ask = partial(exams.next_question, worker_id=1, now=1.0)
    first, second = await both(engine, StartingUnit, gate, ask, ask)
    assert question(first) == question(second)
    assert len(await engine.read("SELECT id FROM exam_attempts")) == 1
    if gate.racing:  # the loser saw no attempt, was refused its own and ran again
        assert gate.arrivals == 3


async def test_the_same_tap_on_two_replicas_counts_once(engine: Engine) -> None:
    await exam_batch(engine, exam_size=2)
    await registered(engine, 1)
    store = ExamStore(engine)
    shown = question(await store.next_question(1, 1.0))
    submission = Submission(shown.attempt_id, 1, option=RIGHT)
    answer = partial(exams.answer, submission=submission, item_id=shown.item_id, now=2.0)
    gate = Gate(racing(engine))
    results = await both(engine, AnsweringUnit, gate, answer, answer)
    assert sorted(result.verdict for result in results) == [Verdict.ACCEPTED, Verdict.DUPLICATE]
    if gate.racing:  # the second waited for the first to end and saw its answer: no rerun
        assert gate.arrivals == 2
    rows = await engine.read("SELECT answered, correct FROM exam_attempts")
    assert [tuple(row) for row in rows] == [(1, 1)]


async def test_the_last_two_questions_answered_at_once_finish_the_exam_once(
    engine: Engine,
) -> None:
    await exam_batch(engine, exam_size=2)
    await registered(engine, 1)
    store = ExamStore(engine)
    shown = question(await store.next_question(1, 1.0))
    submission = Submission(shown.attempt_id, 1, option=RIGHT)
    # A first attempt asks the first training items in file order: both are known.
    changes = [
        partial(exams.answer, submission=submission, item_id=item, now=2.0)
        for item in (shown.item_id, shown.item_id + 1)
    ]
    results = await both(engine, AnsweringUnit, Gate(racing(engine)), *changes)
    assert sorted((r.verdict, r.finished, r.score) for r in results) == [
        (Verdict.ACCEPTED, False, 1),
        (Verdict.ACCEPTED, True, 2),
    ]
    rows = await engine.read("SELECT answered, correct, passed FROM exam_attempts")
    assert [tuple(row) for row in rows] == [(2, 2, 1)]
    assert await standing(engine, 1) == [("active", "exam 2/2", None)]
