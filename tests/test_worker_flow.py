"""Workers label through the sandbox: the real PTB application over HTTP, as on a phone."""

from __future__ import annotations

import csv
import io

from bot.sandbox import SandboxUser
from handlers.cards import NOTHING_LEFT, REPORT, SKIP
from tests.harness import Harness

REVIEWS = "id,text\nr1,Great phone\nr2,Broke in a day\nr3,It is fine\n"
TRUTH = {"Great phone": "yes", "Broke in a day": "no", "It is fine": "yes"}


async def label_all(worker: SandboxUser, answers: dict[str, str]) -> list[str]:
    """Answers every card shown until nothing is left; returns the items seen in order."""
    seen = []
    while True:
        card = worker.last
        assert card is not None
        if NOTHING_LEFT in card.shown:
            return seen
        item = next(text for text in answers if text in card.shown)
        seen.append(item)
        edits = card.edits
        worker.press(answers[item], message_id=card.message_id)
        await worker.wait_for(lambda u, m=card, e=edits: m.edits > e)


async def test_three_workers_overlap_three_export_holds_exactly_their_answers(
    harness: Harness,
) -> None:
    batch = await harness.add_batch(REVIEWS, options="yes,no", overlap=3)
    workers = [await harness.join(uid, f"W{uid}") for uid in (11, 12, 13)]
    for worker in workers:
        await harness.first_task(worker)
    seen = [await label_all(worker, TRUTH) for worker in workers]
    for items in seen:
        assert sorted(items) == sorted(TRUTH), "each worker sees each item exactly once"

    out = io.StringIO()
    summary = await harness.services.batches.export(batch, "answers", "csv", out)
    exported = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert summary.rows == 9
    assert sorted((int(r["worker_id"]), r["id"], r["answer"]) for r in exported) == sorted(
        (uid, rid, TRUTH[text])
        for uid in (11, 12, 13)
        for rid, text in (("r1", "Great phone"), ("r2", "Broke in a day"), ("r3", "It is fine"))
    )
    labels = io.StringIO()
    await harness.services.batches.export(batch, "labels", "jsonl", labels)
    assert '"label": "no", "answers": 3, "agreement": 1.0' in labels.getvalue()


async def test_a_tap_costs_at_most_two_bot_api_calls(harness: Harness) -> None:
    await harness.add_batch(REVIEWS, options="yes,no", overlap=1)
    worker = await harness.join(21)
    await harness.first_task(worker)
    before = sum(harness.sandbox.calls.values()) - harness.sandbox.calls["get_updates"]
    await label_all(worker, TRUTH)
    after = sum(harness.sandbox.calls.values()) - harness.sandbox.calls["get_updates"]
    assert after - before <= 2 * 3
    card = worker.last
    assert card is not None and len(worker.bot_messages) == 2  # the welcome and one card


async def test_card_shows_item_question_options_and_skip(harness: Harness) -> None:
    await harness.add_batch(
        "text\n<b>Tom & Jerry</b> rocks\n",
        options="yes,no,not sure",
        overlap=1,
        instructions="Be quick.",
    )
    worker = await harness.join(31)
    await harness.first_task(worker)
    card = worker.last
    assert card is not None
    assert "<b>Tom & Jerry</b> rocks" in card.shown  # item text escaped, shown verbatim
    assert "Is this review positive?" in card.shown and "Be quick." in card.shown
    assert card.buttons == [["yes", "no"], ["not sure"], [SKIP, REPORT]]


async def test_skip_gives_the_item_to_someone_else_never_back(harness: Harness) -> None:
    await harness.add_batch("text\nOnly item\n", options="yes,no", overlap=1)
    first = await harness.join(41)
    await harness.first_task(first)
    card = first.last
    assert card is not None
    first.press(SKIP)
    await first.wait_for(lambda u: NOTHING_LEFT in card.shown)
    second = await harness.join(42)
    await harness.first_task(second)
    assert second.last is not None and "Only item" in second.last.shown
    assert await harness.query("SELECT worker_id, status FROM assignments ORDER BY id") == [
        (41, "skipped"),
        (42, "open"),
    ]


async def test_free_text_batch_takes_a_typed_reply(harness: Harness) -> None:
    batch = await harness.add_batch(
        "text\nA cat on a mat\nA dog\n", overlap=1, question="Describe the picture in two words"
    )
    worker = await harness.join(51)
    await harness.first_task(worker)
    assert worker.last is not None and "Reply with your answer" in worker.last.shown
    worker.send("  Cat   sitting ")
    await worker.wait_for(lambda u: u.last is not None and "A dog" in u.last.shown)
    worker.send("dog")
    await worker.wait_for(lambda u: u.last is not None and NOTHING_LEFT in u.last.shown)
    assert await harness.query("SELECT value FROM answers ORDER BY id") == [
        ("Cat   sitting",),
        ("dog",),
    ]
    worker.send("more text")
    await worker.wait_for(lambda u: "no open task" in u.last.shown)
    out = io.StringIO()
    await harness.services.batches.export(batch, "labels", "csv", out)
    assert "Cat   sitting" in out.getvalue()


async def test_stats_help_stop_and_unknown_commands(harness: Harness) -> None:
    await harness.add_batch(REVIEWS, options="yes,no", overlap=1, reward=0.5)
    worker = await harness.join(61)
    await harness.first_task(worker)
    card = worker.last
    assert card is not None
    worker.press("yes")
    await worker.wait_for(lambda u: card.edits > 0)
    for command, expected in (
        ("/stats", "Answers: 1 (today 1)"),
        ("/help", "/next"),
        ("/stop", "Paused"),
        ("/frobnicate", "Unknown command"),
    ):
        worker.send(command)
        await worker.wait_for(lambda u, e=expected: e in u.last.shown)
    assert "Earned: 0.50" in worker.bot_messages[-4].shown
    assert await harness.query("SELECT notify FROM workers WHERE id = 61") == [(0,)]


async def test_publishing_tells_every_active_worker_once(harness: Harness) -> None:
    workers = [await harness.join(uid) for uid in (71, 72, 73)]
    quiet = await harness.join(74)
    quiet.send("/stop")
    await quiet.wait_for(lambda u: "Paused" in u.last.shown)
    await harness.add_batch(REVIEWS, options="yes,no")
    for worker in workers:
        await worker.wait_for(lambda u: "New batch: Reviews" in u.last.shown)
    await harness.add_batch(REVIEWS, options="yes,no", publish=False)
    assert all(sum("New batch" in m.shown for m in worker.bot_messages) == 1 for worker in workers)
    assert not any("New batch" in m.shown for m in quiet.bot_messages)
    workers[0].press("Start labeling ▶")
    await workers[0].wait_for(lambda u: "Great phone" in u.last.shown)


async def test_nothing_to_do_is_said_plainly(harness: Harness) -> None:
    worker = await harness.join(81)
    worker.send("/next")
    await worker.wait_for(lambda u: NOTHING_LEFT in u.last.shown)


async def test_image_items_are_sent_as_photos_and_edited_in_place(
    harness: Harness, images: str
) -> None:
    await harness.add_batch(
        f"image,text\n{images}/a.jpg,first\n{images}/b.jpg,second\n",
        options="duck,no duck",
        overlap=1,
    )
    worker = await harness.join(91)
    await harness.first_task(worker)
    card = worker.last
    assert card is not None and card.photo is not None and card.photo.url.endswith("a.jpg")
    worker.press("duck")
    await worker.wait_for(lambda u: card.edits == 1)
    assert card.photo.url.endswith("b.jpg") and "second" in card.shown
    assert harness.sandbox.calls["edit_message_media"] == 1
    assert await harness.query("SELECT image_file_id IS NOT NULL FROM items") == [(1,), (1,)]
