"""One live card per worker, the batch's instructions on every way in, and an answer that helps
for every message: acted out through the sandbox as a worker on a phone would."""

from __future__ import annotations

from bot.sandbox import SandboxUser
from bot.sandbox.wire import Message
from handlers.cards import NEXT, SKIP
from tests.harness import BOSS, Harness, press, say

REVIEWS = "id,text\nr1,Great phone\nr2,Broke in a day\nr3,It is fine\n"
START = "Start labeling ▶"
RULES = "Judge the tone, not the grammar."


async def announcement(worker: SandboxUser) -> Message:
    """Waits for the batch's announcement and returns it."""
    await worker.wait_for(lambda u: any(m.find_button(START) for m in u.bot_messages))
    return next(m for m in worker.bot_messages if m.find_button(START))


def data(card: Message, label: str) -> str:
    button = card.find_button(label)
    assert button is not None, f"no {label!r} on {card.shown!r}"
    return str(button["callback_data"])


# -- item 1: one live card -------------------------------------------------------------------


async def test_next_again_retires_the_older_card(harness: Harness) -> None:
    await harness.add_batch(REVIEWS, options="yes,no", overlap=1)
    worker = await harness.join(11)
    older = await harness.first_task(worker)
    newer = await harness.first_task(worker)
    assert newer.message_id != older.message_id and "Great phone" in newer.shown
    await harness.idle()
    assert older.buttons == [], "the older card still offers buttons for the same task"
    assert newer.find_button("yes") is not None and newer.find_button(SKIP) is not None


async def test_an_old_card_tapped_after_the_task_was_answered_leads_to_the_current_task(
    harness: Harness,
) -> None:
    """The issue's case: /next, then the announcement's button, then an answer on one card
    and a tap on the other (a phone that scrolled back)."""
    worker = await harness.join(12)
    await harness.add_batch(REVIEWS, options="yes,no", overlap=1)
    announced = await announcement(worker)
    card = await harness.first_task(worker)
    await harness.idle()  # the /next card is recorded as live before the next tap
    skip = data(card, SKIP)
    worker.press(START, message_id=announced.message_id)
    await worker.wait_for(lambda u: "Great phone" in announced.shown)
    await harness.idle()
    assert card.buttons == [], "showing the task on the announcement left the /next card live"
    await press(worker, announced, "yes")
    assert "Broke in a day" in announced.shown

    # A phone that never saw the card retired still shows its Skip: the worker taps it, and
    # is offered the way on; it brings the current task to this card.
    assert await tap_stale(harness, worker, card, skip) == "Already saved. Thanks!"
    assert card.buttons == [[NEXT]], "a stale card must offer a way on"
    await press(worker, card, NEXT)
    await harness.idle()
    assert "Broke in a day" in card.shown and card.find_button("yes") is not None
    assert announced.buttons == [], "the card that showed the task before is retired"
    # The card tapped is the live one now: answering there goes on as usual.
    await press(worker, card, "no")
    assert "It is fine" in card.shown


async def tap_stale(harness: Harness, worker: SandboxUser, card: Message, data: str) -> str:
    """Taps a button a phone still shows on an old card; returns what the bot answered."""
    notices = len(worker.notices)
    worker.tap(card, data)
    await worker.wait_for(lambda u: len(u.notices) > notices)
    await harness.idle()
    return worker.notices[-1].text


async def test_an_old_card_with_nothing_left_offers_the_next_task_button(harness: Harness) -> None:
    await harness.add_batch("id,text\nr1,Great phone\n", options="yes,no", overlap=1)
    worker = await harness.join(13)
    older = await harness.first_task(worker)
    answer = data(older, "yes")
    newer = await harness.first_task(worker)
    await press(worker, newer, "yes")
    assert await tap_stale(harness, worker, older, answer) == "Already saved. Thanks!"
    assert older.buttons == [[NEXT]], "a stale card must offer a way on"


async def test_a_card_sent_anew_for_a_photo_becomes_the_live_card(
    harness: Harness, images: str
) -> None:
    """A text card cannot be edited into a photo: the answer sends a new card, and that one is
    the card the next /next retires."""
    await harness.add_batch(
        f"text,image\nfirst,\nsecond,{images}/b.jpg\n", options="yes,no", overlap=1
    )
    worker = await harness.join(16)
    text_card = await harness.first_task(worker)
    worker.press("yes", message_id=text_card.message_id)
    await worker.wait_for(lambda u: u.last is not None and u.last.photo is not None)
    photo_card = worker.last
    assert photo_card is not None and "second" in photo_card.shown
    await harness.first_task(worker)
    await harness.idle()
    assert text_card.buttons == [] and photo_card.buttons == []
    assert worker.last is not None and worker.last.find_button("yes") is not None


async def test_the_live_card_is_known_after_a_restart(harness: Harness) -> None:
    await harness.add_batch(REVIEWS, options="yes,no", overlap=1)
    worker = await harness.join(14)
    older = await harness.first_task(worker)
    await harness.stop_bot()
    await harness.start_bot()
    await harness.first_task(worker)
    await harness.idle()
    assert older.buttons == [], "the card shown before the restart is still live"


async def test_answering_on_the_live_card_writes_nothing_more(harness: Harness) -> None:
    """The answer path stays as cheap as before: a tap on the live card does not rewrite the
    worker's row."""
    await harness.add_batch(REVIEWS, options="yes,no", overlap=1)
    worker = await harness.join(15)
    card = await harness.first_task(worker)
    await harness.idle()
    before = await harness.query("SELECT * FROM workers WHERE id = 15")
    await press(worker, card, "yes")
    await press(worker, card, "no")
    await harness.idle()
    assert await harness.query("SELECT * FROM workers WHERE id = 15") == before


# -- item 2: instructions on every way in ----------------------------------------------------


async def test_the_announcement_button_shows_the_instructions_once_and_they_can_be_reread(
    harness: Harness,
) -> None:
    worker = await harness.join(21)
    await harness.add_batch(REVIEWS, options="yes,no", overlap=1, instructions=RULES)
    announced = await announcement(worker)
    worker.press(START, message_id=announced.message_id)
    await worker.wait_for(lambda u: "Great phone" in announced.shown)
    assert RULES in announced.shown and "/instructions" in announced.shown
    await press(worker, announced, "yes")
    assert "Broke in a day" in announced.shown and RULES not in announced.shown

    reread = await say(worker, "/instructions", RULES)
    assert "Reviews" in reread and "Is this review positive?" in reread


async def test_the_next_task_button_shows_a_new_batchs_instructions(harness: Harness) -> None:
    worker = await harness.join(22)
    await say(worker, "/next", "Nothing left")
    nothing = worker.last
    assert nothing is not None
    await harness.add_batch(REVIEWS, options="yes,no", overlap=1, instructions=RULES)
    await press(worker, nothing, NEXT)
    assert "Great phone" in nothing.shown and RULES in nothing.shown


async def test_the_first_task_after_training_shows_the_instructions(harness: Harness) -> None:
    await harness.add_batch(
        "id,text,gold\ng0,A cat,cat\ng1,A dog,dog\nr1,A bird,\nr2,A fish,\n",
        options="cat,dog,bird,fish",
        overlap=1,
        exam_size=1,
        exam_pass=1.0,
        question="Which animal?",
        instructions=RULES,
    )
    worker = await harness.join(23)
    exam = await harness.first_task(worker)
    assert "Training" in exam.shown
    await press(worker, exam, "cat")
    await worker.wait_for(lambda u: any(m.find_button(START) for m in u.bot_messages))
    before = len(worker.bot_messages)
    passed = next(m for m in reversed(worker.bot_messages) if m.find_button(START))
    edits = passed.edits
    worker.press(START, message_id=passed.message_id)
    await worker.wait_for(lambda u: passed.edits > edits or len(u.bot_messages) > before)
    await harness.idle()
    card = next(m for m in reversed(worker.bot_messages) if m.find_button("bird"))
    assert "Training" not in card.shown and RULES in card.shown


async def test_instructions_without_a_task_or_without_instructions(harness: Harness) -> None:
    worker = await harness.join(24)
    await say(worker, "/instructions", "/next")
    await harness.add_batch(REVIEWS, options="yes,no", overlap=1)
    await harness.first_task(worker)
    reply = await say(worker, "/instructions", "no instructions")
    assert "Is this review positive?" in reply


# -- item 3: every message gets an answer that helps -----------------------------------------


async def test_a_typed_answer_over_the_limit_is_told_the_limit(harness: Harness) -> None:
    await harness.add_batch("id,text\nr1,Describe this phone\n", overlap=1)
    worker = await harness.join(31)
    await harness.first_task(worker)
    reply = await say(worker, "x" * 1001, "1000")
    assert "not one of the options" not in reply and "characters" in reply
    assert await harness.query("SELECT COUNT(*) FROM answers") == [(0,)]
    await say(worker, "x" * 1000, "Saved")


async def test_stickers_photos_and_voice_notes_are_told_what_to_do(harness: Harness) -> None:
    worker = await harness.join(32)
    sends = (worker.send_sticker, lambda: worker.send_photo(b"\xff\xd8\xff\xe0"), worker.send_voice)
    for send in sends:  # no task yet
        before = len(worker.bot_messages)
        send()
        await worker.wait_for(lambda u, b=before: len(u.bot_messages) > b)
        assert "/next" in worker.bot_messages[-1].shown

    await harness.add_batch(REVIEWS, options="yes,no", overlap=1)
    await harness.first_task(worker)
    for send in sends:  # a task with buttons
        before = len(worker.bot_messages)
        send()
        await worker.wait_for(lambda u, b=before: len(u.bot_messages) > b)
        assert "tap" in worker.bot_messages[-1].shown.lower()
    assert await harness.query("SELECT COUNT(*) FROM answers") == [(0,)]


async def test_media_on_a_typed_task_asks_for_a_typed_answer(harness: Harness) -> None:
    await harness.add_batch("id,text\nr1,Describe this phone\n", overlap=1)
    worker = await harness.join(33)
    await harness.first_task(worker)
    before = len(worker.bot_messages)
    worker.send_voice()
    await worker.wait_for(lambda u: len(u.bot_messages) > before)
    assert "type" in worker.bot_messages[-1].shown.lower()
    assert await harness.query("SELECT COUNT(*) FROM answers") == [(0,)]


async def test_a_document_from_a_worker_is_told_what_to_do(office: Harness) -> None:
    await office.add_batch(REVIEWS, options="yes,no", overlap=1)
    worker = await office.join(34)
    await office.first_task(worker)
    before = len(worker.bot_messages)
    worker.send_document("notes.csv", b"text\nhello\n")
    await worker.wait_for(lambda u: len(u.bot_messages) > before)
    reply = worker.bot_messages[-1].shown
    assert "Unknown command" not in reply and "tap" in reply.lower()
    # A coordinator's upload is still an upload.
    boss = office.user(BOSS)
    boss.send("/start")
    boss.send_document("more.csv", b"text\nhello\n", caption="question: Fine?")
    await boss.wait_for(lambda u: any("/publish" in m.shown for m in u.bot_messages))
