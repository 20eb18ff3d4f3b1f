"""Quality control as workers meet it, through the sandbox: gold, suspension, training."""

from __future__ import annotations

import asyncio
import csv
import io

from bot.sandbox import SandboxUser
from handlers.cards import CONTINUE, DISPUTE, NOTHING_LEFT
from tests.harness import Harness

OPTIONS = ("cat", "dog", "bird", "fish")


def animal_batch(regular: int, gold: int) -> tuple[str, dict[str, str]]:
    """Items whose text names their answer: honest workers can read it, the test can check."""
    truth, rows = {}, ["id,text,gold,explanation"]
    for i in range(regular + gold):
        animal = OPTIONS[i % 4]
        text = f"Photo {i}: a {animal} sits here"
        truth[text] = animal
        if i < gold:
            rows.append(f"g{i},{text},{animal},It shows a {animal}.")
        else:
            rows.append(f"r{i},{text},,")
    return "\n".join(rows) + "\n", truth


def item_of(card_text: str, truth: dict[str, str]) -> str:
    return next(text for text in truth if text in card_text)


async def work(worker: SandboxUser, choose, limit: int = 1000) -> int:  # type: ignore[no-untyped-def]
    """Answers cards until nothing is left, the worker is stopped, or `limit` answers."""
    card = next(m for m in reversed(worker.bot_messages) if m.buttons)
    answered = 0
    while answered < limit:
        if NOTHING_LEFT in card.shown or "closed to you" in card.shown:
            return answered
        edits = card.edits
        worker.press(choose(card.shown), message_id=card.message_id)
        await worker.wait_for(lambda u, e=edits: card.edits > e)
        answered += 1
    return answered


def wrong(text: str, truth: dict[str, str]) -> str:
    return OPTIONS[(OPTIONS.index(truth[item_of(text, truth)]) + 1) % len(OPTIONS)]


async def test_a_careless_worker_is_caught_by_gold_and_left_out_of_the_labels(
    harness: Harness,
) -> None:
    content, truth = animal_batch(regular=24, gold=8)
    batch = await harness.add_batch(
        content, options=",".join(OPTIONS), overlap=3, gold_ratio=0.2, question="Which animal?"
    )
    honest = [await harness.join(uid) for uid in (1, 2, 3)]
    tapper = await harness.join(9)
    await harness.first_task(tapper)
    tapped = await work(tapper, lambda text: wrong(text, truth))
    # Six gold misses in a row suspend; gold comes every other task once a worker is in doubt.
    assert tapped <= 20, "the careless worker is stopped within the first tasks"
    card = tapper.last
    assert card is not None and "closed to you" in card.shown
    assert any("closed to you" in n.text for n in tapper.notices)
    for worker in honest:
        await harness.first_task(worker)
        await work(worker, lambda text: truth[item_of(text, truth)])

    answers = io.StringIO()
    await harness.services.batches.export(batch, "answers", "csv", answers)
    rows = list(csv.DictReader(io.StringIO(answers.getvalue())))
    tapper_rows = [r for r in rows if r["worker_id"] == "9"]
    assert len(tapper_rows) == tapped
    assert all(r["excluded"] == "suspended" for r in tapper_rows)
    assert all(r["excluded"] == "" for r in rows if r["worker_id"] != "9")
    labels = io.StringIO()
    summary = await harness.services.batches.export(batch, "labels", "csv", labels)
    assert summary.answers_excluded == tapped
    for row in csv.DictReader(io.StringIO(labels.getvalue())):
        assert row["label"] == truth[row["text"]]
        if not row["gold"]:
            assert row["answers"] == "3"  # the three honest workers, the tapper left out
    status = (await harness.services.batches.status(batch))[0]
    assert status.suspended == 1 and status.alpha == 1.0


async def test_training_explains_misses_and_admits_on_a_pass(harness: Harness) -> None:
    content, truth = animal_batch(regular=3, gold=4)
    await harness.add_batch(
        content,
        options=",".join(OPTIONS),
        overlap=1,
        exam_size=2,
        exam_pass=1.0,
        exam_retry_minutes=0.002,
        question="Which animal?",
        instructions="Name the animal.",
    )
    worker = await harness.join(5)
    await harness.first_task(worker)
    card = worker.last
    assert card is not None and card.shown.startswith("Training 1 of 2")
    assert "Name the animal." in card.shown
    assert card.buttons == [["cat", "dog"], ["bird", "fish"]]  # no Skip in training
    worker.press("fish")  # wrong: the first exam item is a cat
    await worker.wait_for(lambda u: "Not quite" in card.shown)
    assert "the right answer is “cat”" in card.shown and "It shows a cat." in card.shown
    worker.press(CONTINUE)
    await worker.wait_for(lambda u: card.shown.startswith("Training 2 of 2"))
    worker.press("dog")
    await worker.wait_for(lambda u: "1 of 2 right; you need 2 to pass" in card.shown)
    assert "try again in under a minute" in card.shown

    await asyncio.sleep(0.2)  # the retry wait (0.12 s) passes
    worker.send("/next")
    await worker.wait_for(lambda u: u.last is not card and "Training 1 of 2" in u.last.shown)
    retry = worker.last
    assert retry is not None
    # The retry asks in a new order (tests/test_training.py): answer what each card shows.
    for step in ("Training 2 of 2", "Welcome to Reviews"):
        worker.press(truth[item_of(retry.shown, truth)], message_id=retry.message_id)
        await worker.wait_for(lambda u, s=step: s in retry.shown)
    worker.press("Start labeling ▶", message_id=retry.message_id)
    await worker.wait_for(lambda u: "Photo" in retry.shown and "Training" not in retry.shown)
    assert item_of(retry.shown, truth) not in {
        "Photo 0: a cat sits here",
        "Photo 1: a dog sits here",
    }


async def test_a_worker_disputes_a_training_answer_they_think_is_wrong(
    harness: Harness,
) -> None:
    content, _ = animal_batch(regular=3, gold=3)
    content = content.replace("g0,Photo 0: a cat sits here,cat", "g0,Photo 0: a cat sits here,dog")
    await harness.add_batch(
        content, options=",".join(OPTIONS), overlap=1, exam_size=2, question="Which animal?"
    )
    worker = await harness.join(6)
    await harness.first_task(worker)
    card = worker.last
    assert card is not None and card.shown.startswith("Training 1 of 2")
    worker.press("cat")  # right, but the file says "dog"
    await worker.wait_for(lambda u: "Not quite" in card.shown)
    assert card.buttons == [[CONTINUE], [DISPUTE]]
    worker.press(DISPUTE, message_id=card.message_id)
    await worker.wait_for(lambda u: card.buttons == [[CONTINUE]])
    assert any("a coordinator will look" in n.text and n.alert for n in worker.notices)
    assert await harness.query("SELECT worker_id, reason FROM reports") == [(6, "disputed")]
    # A forged dispute of a question the worker did not miss, or of someone else's, is refused.
    attempt = (await harness.query("SELECT id FROM exam_attempts"))[0][0]
    other = (await harness.query("SELECT id FROM items WHERE external_id = 'g1'"))[0][0]
    worker.tap(card, f"d:{attempt}:{other}")
    stranger = await harness.join(7)
    stranger.tap(card, f"d:{attempt}:{other}")
    await worker.wait_for(lambda u: any("no longer valid" in n.text for n in u.notices))
    await stranger.wait_for(lambda u: any("no longer valid" in n.text for n in u.notices))
    assert await harness.query("SELECT COUNT(*) FROM reports") == [(1,)]
