"""A flooding user is slowed alone; everyone else keeps their speed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from handlers.guard import FloodGuard
from tests.harness import Harness


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Harness]:
    async with Harness(tmp_path / "flood.db", user_rate=5.0, user_burst=10) as running:
        yield running


def test_the_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    guard = FloodGuard(rate=5.0, burst=10, clock=lambda: now[0])
    assert sum(guard.allow(1) for _ in range(100)) == 10
    now[0] = 1.0
    assert sum(guard.allow(1) for _ in range(100)) == 5
    assert all(guard.allow(2) for _ in range(10))  # another user has a bucket of their own
    now[0] = 100.0
    guard.allow(3)
    assert set(guard.buckets) == {3}  # idle users are forgotten


async def test_a_flooder_is_slowed_and_others_keep_their_speed(guarded: Harness) -> None:
    await guarded.add_batch(
        "text\n" + "".join(f"item {i}\n" for i in range(40)),
        options="yes,no",
        overlap=1,
        gold_ratio=0,
    )
    flooder = await guarded.join(66)
    honest = await guarded.join(77)
    await guarded.first_task(flooder)
    await guarded.first_task(honest)
    flood_card = flooder.last
    assert flood_card is not None
    started = time.monotonic()
    for _ in range(50):  # a hundred updates in a burst: taps and commands
        flooder.press("yes", message_id=flood_card.message_id)
        flooder.send("/stats")
    card = honest.last
    assert card is not None
    latencies = []
    for step in range(5):
        tapped = time.monotonic()
        honest.press("no", message_id=card.message_id)
        await honest.wait_for(lambda u, s=step: card.edits > s)
        latencies.append(time.monotonic() - tapped)
        await asyncio.sleep(0.25)  # a person's pace, well within the limit
    elapsed = time.monotonic() - started
    assert max(latencies) < 1.0
    answered = await guarded.query("SELECT worker_id, COUNT(*) FROM answers GROUP BY 1")
    assert dict(answered)[77] == 5
    # The flooder got through only their burst and the refill, and held one task at most.
    replies = sum("Your work so far" in m.shown for m in flooder.bot_messages)
    assert replies + dict(answered).get(66, 0) <= 10 + 5 * elapsed + 1
    assert await guarded.query(
        "SELECT COUNT(*) FROM assignments WHERE worker_id = 66 AND status = 'open'"
    ) == [(1,)]
    assert any(n.text == "Too fast: slow down a little." for n in flooder.notices)
