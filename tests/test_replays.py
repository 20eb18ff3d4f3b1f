"""Any update delivered again leaves the database as the first delivery left it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bot.sandbox import SandboxUser
from handlers.cards import SKIP
from tests.harness import BOSS, Harness, settle

BATCH = "text\nfirst\nsecond\nthird\n"


async def delivered(harness: Harness, user: SandboxUser, act: Callable[[], int]) -> int:
    """Performs an action and waits until the bot has answered it; returns its update id."""
    calls = sum(harness.sandbox.calls.values()) - harness.sandbox.calls["get_updates"]
    update_id = act()
    await settle(
        lambda: sum(harness.sandbox.calls.values()) - harness.sandbox.calls["get_updates"] > calls
    )
    await harness.idle()  # the handler may go on after its first call (Telegram's limits)
    return update_id


async def broadcasts_done(harness: Harness) -> None:
    """Waits until the notifier has finished every broadcast queued so far, and has shown
    the coordinator how it went (Telegram's limits may hold that message back)."""
    for _ in range(500):
        if not await harness.query(
            "SELECT 1 FROM broadcasts WHERE finished_at IS NULL"
            " OR (created_by IS NOT NULL AND progress_message_id IS NULL)"
        ):
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("a broadcast did not finish")


async def replayed_changes_nothing(
    harness: Harness, user: SandboxUser, update_id: int, *, sends_a_card: bool = False
) -> None:
    """`sends_a_card`: the update is a /next, which sends a card again when delivered again;
    that card becomes the worker's live card, and nothing else may change."""
    before = await lasting(harness, sends_a_card)
    calls = sum(harness.sandbox.calls.values()) - harness.sandbox.calls["get_updates"]
    harness.sandbox.replay(update_id)
    await settle(
        lambda: sum(harness.sandbox.calls.values()) - harness.sandbox.calls["get_updates"] > calls
    )
    await harness.idle()
    assert await lasting(harness, sends_a_card) == before


async def lasting(harness: Harness, without_live_card: bool) -> dict[str, list[tuple[Any, ...]]]:
    """The harness's snapshot without, when asked, each worker's live card."""
    tables = await harness.snapshot()
    for table, column in [("workers", "card_message_id")] * without_live_card:
        if tables[table]:
            place = (await harness.columns(table)).index(column)
            tables[table] = [row[:place] + row[place + 1 :] for row in tables[table]]
    return tables


@pytest.mark.parametrize("options", ["yes,no", None])
async def test_worker_updates_replayed(office: Harness, options: str | None) -> None:
    await office.add_batch(BATCH, options=options, overlap=1, gold_ratio=0)
    # The batch's announcement goes out on its own clock; done before the worker comes, it
    # cannot land between two snapshots.
    await broadcasts_done(office)
    worker = office.user(1)
    for act, sends_a_card in (
        (lambda: worker.send("/start"), False),
        (lambda: worker.send("/next"), True),
        ((lambda: worker.press("yes")[0]) if options else (lambda: worker.send("a cat")), False),
        (lambda: worker.press(SKIP)[0], False),
        (lambda: worker.send("/stats"), False),
        (lambda: worker.send("/stop"), False),
    ):
        update_id = await delivered(office, worker, act)
        await replayed_changes_nothing(office, worker, update_id, sends_a_card=sends_a_card)
    assert len(await office.query("SELECT * FROM answers")) == 1


async def test_coordinator_updates_replayed(office: Harness) -> None:
    boss = office.user(BOSS)
    await office.join(2)
    caption = "question: q?\noptions: yes, no"
    for act in (
        lambda: boss.send_document("b.csv", BATCH.encode(), caption),
        lambda: boss.send("/publish 1"),
        lambda: boss.send("/broadcast hello"),
        lambda: boss.send("/ban 2 spam"),
        lambda: boss.send("/promote 3"),
        lambda: boss.send("/pause 1"),
    ):
        update_id = await delivered(office, boss, act)
        await broadcasts_done(office)
        await replayed_changes_nothing(office, boss, update_id)
    assert len(await office.query("SELECT * FROM batches")) == 1
    assert len(await office.query("SELECT * FROM broadcasts")) == 2
