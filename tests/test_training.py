"""Training exams as a worker meets them: the pass mark said first, feedback beside the item it
explains, retries that ask anew, and a clear time to come back; and the draw behind retries."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.sandbox import SandboxUser
from bot.sandbox.wire import Message
from handlers.cards import CONTINUE, DISPUTE, come_back
from labeling.batch import BatchSettings
from labeling.gold import exam_questions, new_seed
from labeling.quality import exam_pass_mark, exam_passed
from tests.harness import Harness
from tests.test_quality_flow import OPTIONS, animal_batch, item_of, wrong

TRAINING = {"options": ",".join(OPTIONS), "overlap": 1, "question": "Which animal?"}
FAILED = "you need"  # in the verdict of a failed exam, and nowhere else


async def take_exam(
    worker: SandboxUser, card: Message, truth: dict[str, str], right: int
) -> list[str]:
    """Answers the training on `card`, the first `right` questions rightly and the rest
    wrongly (going on after each miss); returns the items asked, in order."""
    asked: list[str] = []
    while True:
        item = item_of(card.shown, truth)
        asked.append(item)
        answer = truth[item] if len(asked) <= right else wrong(card.shown, truth)
        edits = card.edits
        worker.press(answer, message_id=card.message_id)
        await worker.wait_for(lambda u, e=edits: card.edits > e)
        if "Training done" in card.shown or FAILED in card.shown:
            return asked
        if card.find_button(CONTINUE) is not None:
            edits = card.edits
            worker.press(CONTINUE, message_id=card.message_id)
            await worker.wait_for(lambda u, e=edits: card.edits > e)


async def retry_when_allowed(harness: Harness, worker: SandboxUser) -> Message:
    """Waits out a short retry time and asks for the exam again; returns its card."""
    await asyncio.sleep(0.2)  # the retry time (0.12 s) passes
    card = await harness.first_task(worker)
    assert card.shown.startswith("Training 1 of")
    return card


# -- the pass mark, said at the start --------------------------------------------------------


async def test_training_says_its_pass_mark_before_the_first_question(harness: Harness) -> None:
    content, truth = animal_batch(regular=2, gold=5)
    await harness.add_batch(content, exam_size=5, exam_pass=0.8, **TRAINING)
    worker = await harness.join(1)
    card = await harness.first_task(worker)
    assert card.shown.startswith("Training 1 of 5")
    assert "Training: 5 questions; pass with 4 right." in card.shown
    worker.press(truth[item_of(card.shown, truth)], message_id=card.message_id)
    await worker.wait_for(lambda u: "Training 2 of 5" in card.shown)
    assert "pass with" not in card.shown  # said once, at the start


def test_the_pass_mark_is_the_fewest_right_answers_that_pass() -> None:
    for total, share, mark in ((5, 0.8, 4), (2, 1.0, 2), (3, 0.5, 2), (10, 0.7, 7), (1, 0.1, 1)):
        rules = BatchSettings(name="b", question="q", options=("a", "b"), exam_pass=share)
        assert exam_pass_mark(total, rules) == mark
        assert exam_passed(mark, total, rules) and not exam_passed(mark - 1, total, rules)


# -- feedback beside its item ------------------------------------------------------------------


async def test_a_missed_question_keeps_its_item_above_the_answer_and_explanation(
    harness: Harness,
) -> None:
    content, _ = animal_batch(regular=2, gold=2)
    await harness.add_batch(content, exam_size=2, **TRAINING)
    worker = await harness.join(2)
    card = await harness.first_task(worker)
    sent = len(worker.bot_messages)
    worker.press("fish", message_id=card.message_id)  # wrong: a cat
    await worker.wait_for(lambda u: "Not quite" in card.shown)
    shown = card.shown
    assert "Training 1 of 2" in shown and "Which animal?" in shown
    assert (
        shown.index("Photo 0: a cat sits here")
        < shown.index("the right answer is “cat”")
        < shown.index("It shows a cat.")
    )
    assert card.buttons == [[CONTINUE], [DISPUTE]]
    assert len(worker.bot_messages) == sent  # the same card, not a new message
    worker.press(CONTINUE, message_id=card.message_id)
    await worker.wait_for(lambda u: card.shown.startswith("Training 2 of 2"))


async def test_a_missed_picture_stays_on_the_card_with_its_feedback(
    harness: Harness, images: str
) -> None:
    content = (
        "image,text,gold,explanation\n"
        f"{images}/a.jpg,a pet,cat,Whiskers and pointed ears.\n"
        f"{images}/b.jpg,a pet,dog,A wagging tail.\n"
        f"{images}/c.jpg,a pet,,\n"
    )
    await harness.add_batch(content, exam_size=2, **TRAINING)
    worker = await harness.join(3)
    card = await harness.first_task(worker)
    assert card.photo is not None
    picture = card.photo.file_id
    worker.press("bird", message_id=card.message_id)
    await worker.wait_for(lambda u: "Not quite" in card.shown)
    assert card.photo is not None and card.photo.file_id == picture
    assert "a pet" in card.shown and "Whiskers and pointed ears." in card.shown
    assert card.buttons == [[CONTINUE], [DISPUTE]]


async def test_feedback_too_long_for_a_caption_follows_the_picture(
    harness: Harness, images: str
) -> None:
    long = "Look at the ears. " * 60  # over a caption's 1024 characters
    content = (
        "image,text,gold,explanation\n"
        f"{images}/a.jpg,a pet,cat,{long}\n"
        f"{images}/b.jpg,a pet,dog,A wagging tail.\n"
    )
    await harness.add_batch(content, exam_size=2, **TRAINING)
    worker = await harness.join(7)
    card = await harness.first_task(worker)
    worker.press("bird", message_id=card.message_id)
    await worker.wait_for(lambda u: "Not quite" in u.last.shown)
    feedback = worker.last
    assert feedback is not card and long.strip() in feedback.shown
    assert feedback.buttons == [[CONTINUE], [DISPUTE]]
    assert card.photo is not None and "a pet" in card.shown and card.buttons == []


# -- retries ask anew ----------------------------------------------------------------------------


async def test_a_retry_asks_its_questions_in_a_new_order(harness: Harness) -> None:
    content, truth = animal_batch(regular=2, gold=3)
    await harness.add_batch(
        content, exam_size=3, exam_pass=1.0, exam_retry_minutes=0.002, **TRAINING
    )
    worker = await harness.join(4)
    first = await take_exam(worker, await harness.first_task(worker), truth, right=0)
    assert first == [f"Photo {i}: a {OPTIONS[i]} sits here" for i in range(3)]  # file order
    card = await retry_when_allowed(harness, worker)
    second = await take_exam(worker, card, truth, right=3)
    assert sorted(second) == sorted(first) and second != first
    assert "Training done: 3 of 3 right" in card.shown


async def test_a_retry_draws_other_training_items_and_keeps_its_draw_over_a_restart(
    harness: Harness,
) -> None:
    content, truth = animal_batch(regular=2, gold=5)
    batch = await harness.add_batch(
        content,
        exam_size=2,
        exam_pool=4,
        exam_pass=1.0,
        exam_retry_minutes=0.002,
        **TRAINING,
    )
    # The fifth gold item stays hidden gold: training never shows it.
    assert await harness.query("SELECT gold_items FROM batches WHERE id = ?", (batch,)) == [(1,)]
    worker = await harness.join(5)
    first = await take_exam(worker, await harness.first_task(worker), truth, right=0)
    assert first == ["Photo 0: a cat sits here", "Photo 1: a dog sits here"]
    card = await retry_when_allowed(harness, worker)
    asked = item_of(card.shown, truth)
    assert asked in {"Photo 2: a bird sits here", "Photo 3: a fish sits here"}

    await harness.stop_bot()
    await harness.start_bot()
    again = await harness.first_task(worker)
    assert again.shown.startswith("Training 1 of 2") and asked in again.shown

    # A forged answer to a training item this attempt did not draw is refused.
    attempt = (await harness.query("SELECT MAX(id) FROM exam_attempts"))[0][0]
    g0 = (await harness.query("SELECT id FROM items WHERE external_id = 'g0'"))[0][0]
    worker.tap(again, f"x:{attempt}:{g0}:0")
    await worker.wait_for(lambda u: any("not one of the options" in n.text for n in u.notices))
    assert await harness.query(
        "SELECT COUNT(*) FROM exam_answers WHERE attempt_id = ?", (attempt,)
    ) == [(0,)]

    second = await take_exam(worker, again, truth, right=2)
    assert set(second) == {"Photo 2: a bird sits here", "Photo 3: a fish sits here"}
    assert "Training done: 2 of 2 right" in again.shown


def test_a_first_attempt_asks_the_first_training_items_in_file_order() -> None:
    assert exam_questions(new_seed(), 7, 0, (11, 12, 13, 14), 2, ()) == (11, 12)


def test_a_retry_asks_items_the_last_attempt_did_not_first() -> None:
    seed, pool = new_seed(), tuple(range(1, 11))
    first = exam_questions(seed, 7, 0, pool, 4, ())
    second = exam_questions(seed, 7, 1, pool, 4, first)
    assert not set(first) & set(second)
    assert second == exam_questions(seed, 7, 1, pool, 4, first)  # the same after a restart
    # Fewer fresh items than questions: the fresh ones first, then some asked before.
    third = exam_questions(seed, 7, 2, pool[:6], 4, pool[:4])
    assert set(third[:2]) == {5, 6} and set(third[2:]) < set(pool[:4])


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=2**40),
    st.integers(min_value=1, max_value=20),
    st.integers(min_value=2, max_value=8),
)
def test_a_retry_of_the_same_items_never_repeats_the_last_order(
    worker: int, attempt: int, size: int
) -> None:
    seed, pool = "ab" * 16, tuple(range(100, 100 + size))
    last = exam_questions(seed, worker, attempt - 1, pool, size, pool)
    drawn = exam_questions(seed, worker, attempt, pool, size, last)
    assert sorted(drawn) == list(pool) and drawn != last


def test_a_time_to_come_back_is_said_in_words_and_as_a_utc_clock() -> None:
    noon = datetime(2025, 5, 6, 12, 0, 10, tzinfo=UTC).timestamp()
    assert come_back(noon + 30 * 60, noon) == "in about 30 minutes (at 12:31 UTC)"
    assert come_back(noon + 20, noon) == "in under a minute (at 12:01 UTC)"
    assert come_back(noon + 13 * 3600, noon) == "in about 13 hours (tomorrow at 01:01 UTC)"
    assert come_back(noon + 3 * 86400, noon) == "in about 3 days (on Fri 9 May at 12:01 UTC)"
    assert come_back(noon - 1, noon) == "now"


# -- an early /next ----------------------------------------------------------------------------


async def test_an_early_next_keeps_the_score_and_says_when_to_come_back(
    harness: Harness,
) -> None:
    content, truth = animal_batch(regular=2, gold=2)
    await harness.add_batch(content, exam_size=2, exam_pass=1.0, exam_retry_minutes=30, **TRAINING)
    worker = await harness.join(6)
    card = await harness.first_task(worker)
    await take_exam(worker, card, truth, right=1)
    # The last item stays in view with its feedback and the verdict.
    assert "Photo 1: a dog sits here" in card.shown and "Not quite" in card.shown
    assert "1 of 2 right; you need 2 to pass" in card.shown
    assert card.buttons == [[DISPUTE]]
    (retry_at,) = (await harness.query("SELECT retry_at FROM worker_batches"))[0]
    clock = datetime.fromtimestamp(math.ceil(retry_at / 60) * 60, UTC).strftime("%H:%M")
    assert f"{clock} UTC" in card.shown

    early = await harness.first_task(worker)
    assert "1 of 2 right; you need 2 to pass" in early.shown
    assert "try again in about 30 minutes" in early.shown and f"{clock} UTC" in early.shown
    assert early.buttons == []  # no button that could only repeat the wait
    # A Next task button from before (an announcement's, say) gets the same answer.
    edits = card.edits
    worker.tap(card, "n")
    await worker.wait_for(lambda u: card.edits > edits)
    assert card.buttons == [] and "try again in about 30 minutes" in card.shown
