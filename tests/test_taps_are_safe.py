"""Taps that must not count: doubled, replayed, forged, someone else's, or too late."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox import SandboxUser
from tests.harness import Harness, settle

ITEMS = "text\nfirst\nsecond\nthird\n"


async def card_of(harness: Harness, user_id: int) -> SandboxUser:
    worker = await harness.join(user_id)
    await harness.first_task(worker)
    # The card is shown before the bot records it as the worker's live card: a snapshot
    # taken in between would see that write as the test's own tap's.
    await harness.idle()
    return worker


async def test_double_tap_is_stored_once(harness: Harness) -> None:
    await harness.add_batch(ITEMS, options="yes,no", overlap=1)
    worker = await card_of(harness, 1)
    card = worker.last
    assert card is not None
    worker.press("yes", times=2)
    await worker.wait_for(lambda u: len(u.notices) == 2)
    assert await harness.query("SELECT COUNT(*), MIN(value) FROM answers") == [(1, "yes")]
    assert "Already saved. Thanks!" in [n.text for n in worker.notices]
    assert card.edits == 1  # the card moved on once, to the second item
    assert await harness.query("SELECT COUNT(*) FROM assignments") == [(2,)]


async def test_a_double_tapped_skip_leaves_the_next_task_answerable(harness: Harness) -> None:
    """The card a skip came from already shows the next task: the second tap is told it was
    skipped, and the next task keeps its buttons."""
    await harness.add_batch(ITEMS, options="yes,no", overlap=1, gold_ratio=0)
    worker = await card_of(harness, 11)
    card = worker.last
    assert card is not None
    worker.press("Skip ⏭", times=2)
    await worker.wait_for(lambda u: len(u.notices) == 2)
    await asyncio.sleep(0.2)  # any edit the second tap would make has landed
    assert "You skipped this task." in [n.text for n in worker.notices]
    assert "second" in card.shown and card.find_button("yes") is not None


async def test_replayed_update_is_stored_once(harness: Harness) -> None:
    await harness.add_batch(ITEMS, options="yes,no", overlap=1)
    worker = await card_of(harness, 2)
    card = worker.last
    assert card is not None
    (update_id,) = worker.press("no")
    await worker.wait_for(lambda u: card.edits == 1)
    before = await harness.snapshot()
    harness.sandbox.replay(update_id)
    # The query was answered the first time, so Telegram refuses a second answer: wait for
    # the bot's attempt instead of a notice.
    await settle(lambda: harness.sandbox.calls["answer_callback_query"] == 2)
    assert await harness.snapshot() == before
    assert card.edits == 1


async def test_tap_on_another_workers_task_is_refused_and_writes_nothing(
    harness: Harness,
) -> None:
    await harness.add_batch(ITEMS, options="yes,no", overlap=2)
    owner = await card_of(harness, 3)
    intruder = await card_of(harness, 4)
    owner_card = owner.last
    assert owner_card is not None and owner_card.reply_markup is not None
    stolen = owner_card.reply_markup["inline_keyboard"][0][0]["callback_data"]
    before = await harness.snapshot()
    intruder_card = intruder.last
    assert intruder_card is not None
    intruder.tap(intruder_card, stolen)
    await intruder.wait_for(lambda u: len(u.notices) == 1)
    assert intruder.notices[0].text == "This task belongs to someone else."
    assert intruder.notices[0].alert
    assert await harness.snapshot() == before
    assert intruder_card.edits == 0 and owner_card.edits == 0


@pytest.mark.parametrize(
    "data",
    ["", "a:1", "a:x:1", "a:1:999", "a:99999:0", "s:", "zzz", "a:1:0\n", "a:\u0661:0", "n" * 64],
)
async def test_forged_callback_data_gets_a_polite_answer(harness: Harness, data: str) -> None:
    await harness.add_batch(ITEMS, options="yes,no", overlap=1)
    worker = await card_of(harness, 5)
    card = worker.last
    assert card is not None
    before = await harness.snapshot()
    worker.tap(card, data)
    await worker.wait_for(lambda u: len(u.notices) == 1)
    assert worker.notices[0].text in {
        "This button is no longer valid.",
        "That answer is not one of the options.",
    }
    assert await harness.snapshot() == before


@pytest.fixture
async def quick_expiry(tmp_path: Path) -> AsyncIterator[Harness]:
    async with Harness(tmp_path / "expiry.db", assignment_timeout_seconds=0.4) as running:
        yield running


async def test_tap_on_an_expired_task_is_refused_and_writes_nothing(
    quick_expiry: Harness,
) -> None:
    harness = quick_expiry
    await harness.add_batch(ITEMS, options="yes,no", overlap=1)
    worker = await card_of(harness, 6)
    card = worker.last
    assert card is not None
    # The sweeper hands the task back to the pool once its time is up.
    # The database offers no event to wait on: poll it.
    while (await harness.query("SELECT status FROM assignments"))[0][0] != "expired":  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert await harness.query("SELECT wanted FROM items ORDER BY id") == [(1,), (1,), (1,)]
    # The batch's announcement goes out on its own clock: let it finish, so that the
    # snapshots compare only what the tap could change.
    while await harness.query("SELECT 1 FROM broadcasts WHERE finished_at IS NULL"):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    before = await harness.snapshot()
    worker.press("yes")
    await worker.wait_for(lambda u: len(u.notices) == 1)
    assert worker.notices[0].text == "This task expired and went back to the pool."
    assert await harness.snapshot() == before
    await worker.wait_for(lambda u: card.buttons == [["Next task ▶"]])
    worker.press("Next task ▶")
    await worker.wait_for(lambda u: "second" in card.shown)
    other = await card_of(harness, 7)
    assert other.last is not None and "first" in other.last.shown  # back in the pool
