"""The bot killed at chosen moments of one answer, and the counts where an answer could double.

Each moment is pinned by holding the sandbox (a Bot API call waits until released) or the
database (its write lock), so the kill falls exactly there; the tap stays unconfirmed, so the
restarted bot is given it again, as Telegram redelivers an update a bot did not confirm.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.load import REWARD, SAVED, count_doubling
from bench.process import labelbot_command, labelbot_env, start, stop
from bot.local import SANDBOX_TOKEN
from bot.sandbox import Sandbox, SandboxServer, SandboxUser
from bot.sandbox.faults import Disconnect, Hold
from bot.sandbox.wire import Message, Params
from handlers.worker import REFUSALS
from labeling.batch import BatchSettings
from labeling.batches import BatchService
from labeling.models import Verdict
from storage.batches import BatchStore
from storage.db import Database
from tests.harness import Harness, first_card, press, settle
from tests.shared_data import shared_data

WORKER = 7
ALREADY_SAVED = REFUSALS[Verdict.DUPLICATE]


# -- the sandbox's holds ----------------------------------------------------------------------


async def test_a_held_call_waits_until_released_and_then_runs() -> None:
    sandbox = Sandbox(SANDBOX_TOKEN)
    user = sandbox.user(1, started=True)
    message = await sandbox.call("sendMessage", Params({"chat_id": 1, "text": "hi"}, {}))
    hold = sandbox.hold("editMessageText")
    edit = Params({"chat_id": 1, "message_id": message["message_id"], "text": "changed"}, {})
    call = asyncio.ensure_future(sandbox.call("editMessageText", edit))
    await hold.reached()
    assert not call.done() and user.last is not None and user.last.shown == "hi"
    hold.release()
    await call
    assert user.last.shown == "changed"
    assert hold.held == 1


async def test_a_dropped_hold_fails_its_calls_as_a_lost_connection_and_others_pass() -> None:
    sandbox = Sandbox(SANDBOX_TOKEN)
    user = sandbox.user(1, started=True)
    hold = sandbox.hold("send_message", when=lambda params: params.int("chat_id") == 1)
    sandbox.user(2, started=True)
    await sandbox.call("sendMessage", Params({"chat_id": 2, "text": "not held"}, {}))
    call = asyncio.ensure_future(
        sandbox.call("sendMessage", Params({"chat_id": 1, "text": "x"}, {}))
    )
    await hold.reached()
    hold.drop()
    with pytest.raises(Disconnect):
        await call
    assert user.last is None
    await sandbox.call("sendMessage", Params({"chat_id": 1, "text": "after"}, {}))
    assert user.last is not None and user.last.shown == "after"
    with pytest.raises(ValueError, match="no method"):
        sandbox.hold("sendCarrierPigeon")


# -- counting where an answer could double ----------------------------------------------------


CORRUPTIONS = {
    "item_counters": "UPDATE items SET answers = answers + 1 WHERE answers > 0",
    "pay_rows": "INSERT INTO ledger (worker_id, batch_id, amount, created_at)"
    " SELECT worker_id, batch_id, amount, created_at FROM ledger LIMIT 1",
    "worker_counters": "UPDATE worker_batches SET answers = answers + 1",
}


@pytest.mark.parametrize(
    ("corruption", "expected"),
    [
        ("item_counters", {"item_counters": 1}),
        ("pay_rows", {"pay_rows": 1, "pay_totals": 1}),
        ("worker_counters", {"worker_counters": 1}),
        ("unpaid", {"pay_rows": 1, "pay_totals": 1}),
        ("gold_counted", {"worker_counters": 1}),
    ],
)
async def test_doubling_counts_see_an_answer_counted_twice(
    harness: Harness, corruption: str, expected: dict[str, int]
) -> None:
    await harness.add_batch("text\na\nb\n", options="yes,no", overlap=1, reward=REWARD)
    worker = await harness.join(WORKER)
    card = await first_card(harness, worker)
    await press(worker, card, "yes")
    sql = {
        **CORRUPTIONS,
        "unpaid": "DELETE FROM ledger",
        "gold_counted": "UPDATE worker_batches SET gold_answers = gold_answers + 1",
    }[corruption]
    async with harness.opened() as db:
        assert set((await count_doubling(db)).values()) == {0}
        await db.run(lambda tx: tx.execute(sql))
        found = await count_doubling(db)
    assert {name: count for name, count in found.items() if count} == expected


# -- the bot killed at chosen moments of an answer --------------------------------------------


@dataclass(frozen=True)
class Moment:
    """Where the kill falls: the Bot API calls held until then, or the database locked."""

    holds: tuple[str, ...] = ()
    lock_database: bool = False
    committed: bool = True  # whether the answer is stored when the bot dies
    answered: bool = True  # whether the tap's callback query was answered before it died
    edited: bool = False  # whether the card had turned into the next task


MOMENTS = {
    "before the commit": Moment(lock_database=True, committed=False, answered=False),
    "after the commit, before the worker is told": Moment(
        holds=("answerCallbackQuery", "editMessageText"), answered=False
    ),
    "after the commit, before the card's edit": Moment(holds=("editMessageText",)),
    "after the card's edit, before the update is confirmed": Moment(edited=True),
}


@dataclass
class Rig:
    sandbox: Sandbox
    env: dict[str, str]
    database: Path
    bot: asyncio.subprocess.Process

    async def kill(self) -> None:
        self.bot.kill()  # SIGKILL: no cleanup, as a crash
        await self.bot.wait()
        for hold in self.sandbox.holds:
            hold.drop()  # the dead bot's calls were never answered
        self.sandbox.release_polls()

    async def restart(self) -> None:
        self.bot = await start(labelbot_command(), self.env, self.sandbox)

    async def answers(self) -> list[tuple[int, str]]:
        async with Database(self.database) as db:
            rows = await db.read("SELECT assignment_id, value FROM answers")
        return [(row["assignment_id"], row["value"]) for row in rows]


@asynccontextmanager
async def bot_in_process(tmp_path: Path) -> AsyncIterator[Rig]:
    """labelbot as its own process against a sandbox, with a published batch of three items."""
    database = tmp_path / "moments.db"
    async with Database(database) as db:
        await db.migrate()
        service = BatchService(BatchStore(db))
        settings = BatchSettings(
            name="Moments", question="q?", options="yes,no", overlap=1, gold_ratio=0,
            reward=REWARD,
        )  # fmt: skip
        imported = await service.import_file(b"text\nfirst\nsecond\nthird\n", "m.csv", settings)
        await service.publish(imported.batch_id)
    sandbox = Sandbox(SANDBOX_TOKEN)
    async with SandboxServer(sandbox) as server:
        env = labelbot_env(server, database)
        rig = Rig(sandbox, env, database, await start(labelbot_command(), env, sandbox))
        try:
            yield rig
        finally:
            await stop(rig.bot, sandbox)


async def a_card(worker: SandboxUser) -> Message:
    worker.send("/start")
    await worker.wait_for(lambda u: u.last is not None and "Welcome" in u.last.shown)
    worker.send("/next")
    await worker.wait_for(lambda u: u.last is not None and bool(u.last.find_button("yes")))
    assert worker.last is not None
    return worker.last


def unconfirmed(sandbox: Sandbox, update_id: int) -> Hold:
    """Holds the bot's next poll, whose offset would confirm `update_id`: while it waits,
    the update counts as undelivered, and a restarted bot is given it again."""
    return sandbox.hold("getUpdates", when=lambda p: (p.int("offset") or 0) > update_id)


@asynccontextmanager
async def write_lock(database: Path) -> AsyncIterator[None]:
    """Holds the database's write lock, as a long transaction elsewhere would."""
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.rollback()
        conn.close()


async def kill_at(
    rig: Rig, moment: Moment, worker: SandboxUser, card: Message, *, confirmed: bool = False
) -> None:
    """Taps the first option and kills the bot at `moment`; the tap stays unconfirmed
    (Telegram delivers it again) unless `confirmed`."""
    holds = [rig.sandbox.hold(method) for method in moment.holds]
    edits = card.edits
    async with write_lock(rig.database) if moment.lock_database else _nothing():
        update_id = worker.press("yes", message_id=card.message_id)[0]
        if not confirmed:
            await unconfirmed(rig.sandbox, update_id).reached()  # the bot has the tap
        for hold in holds:
            await hold.reached()
        if confirmed:
            # The bot confirms a batch of taps by its next poll, a moment after taking them
            # in (bot.app.POLL_INTERVAL): killed before, it is given the tap again.
            await settle(lambda: update_id not in {u["update_id"] for u in pending(rig)})
        if moment.edited:
            await worker.wait_for(lambda u: card.edits > edits)
        await rig.kill()
    # The kill fell where it was meant to.
    assert len(await rig.answers()) == int(moment.committed)
    assert (card.edits > edits) == moment.edited
    assert len(worker.notices) == int(moment.answered)


def pending(rig: Rig) -> list[dict[str, Any]]:
    return rig.sandbox.updates.pending()


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


@pytest.mark.parametrize("name", list(MOMENTS))
async def test_a_tap_redelivered_after_a_kill_is_stored_once_and_the_card_moves_on(
    tmp_path: Path, name: str
) -> None:
    moment = MOMENTS[name]
    async with bot_in_process(tmp_path) as rig:
        worker = rig.sandbox.user(WORKER)
        card = await a_card(worker)
        first_item = card.shown
        await kill_at(rig, moment, worker, card)
        notices = len(worker.notices)
        calls = rig.sandbox.calls
        answering = calls["answer_callback_query"]
        await rig.restart()
        # The restarted bot answers the redelivered tap (the answer fails if the first
        # delivery had answered it) and shows the worker where they are.
        await settle(
            lambda: calls["answer_callback_query"] > answering and card.shown.startswith(SAVED),
            20,
        )
        answers = await rig.answers()
        async with Database(rig.database) as db:
            doubled = await count_doubling(db)
            paid = (await db.read("SELECT COUNT(*) AS n FROM ledger"))[0]["n"]
    # The worker sees their answer saved and the next task on the same card...
    assert card.shown.startswith(f"{SAVED}. Next task:") and first_item not in card.shown
    assert card.find_button("yes") is not None
    # ...and, when the first delivery had not answered the tap, why nothing more happened.
    told = [notice.text for notice in worker.notices[notices:]]
    if moment.committed and not moment.answered:
        assert told == [ALREADY_SAVED]
    # One answer, one pay row, and counters that agree with them.
    assert [value for _, value in answers] == ["yes"] and paid == 1
    assert set(doubled.values()) == {0}, doubled


async def test_a_worker_who_taps_a_card_whose_edit_was_lost_is_told_it_is_saved(
    tmp_path: Path,
) -> None:
    """The bot had confirmed the tap (as PTB does at once), so Telegram does not deliver it
    again: the worker, still seeing the answered task, taps it again."""
    async with bot_in_process(tmp_path) as rig:
        worker = rig.sandbox.user(WORKER)
        card = await a_card(worker)
        first_item = card.shown
        moment = MOMENTS["after the commit, before the card's edit"]
        await kill_at(rig, moment, worker, card, confirmed=True)
        await rig.restart()
        assert card.shown == first_item
        notices = len(worker.notices)
        worker.press("yes", message_id=card.message_id)
        await worker.wait_for(lambda u: len(u.notices) > notices and card.shown != first_item)
        async with Database(rig.database) as db:
            doubled = await count_doubling(db)
            stored = (await db.read("SELECT COUNT(*) AS n FROM answers"))[0]["n"]
    assert [notice.text for notice in worker.notices[notices:]] == [ALREADY_SAVED]
    assert card.shown.startswith(f"{SAVED}. Next task:") and card.find_button("yes")
    assert stored == 1 and set(doubled.values()) == {0}, doubled


# -- shared data: never a silent skip under CI ----------------------------------------------


def test_missing_shared_data_fails_under_ci_and_skips_with_a_reason_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "crowd").mkdir()
    assert shared_data("crowd", root=tmp_path) == tmp_path / "crowd"
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match=r"CI runs every test: .*absent is missing"):
        shared_data("absent", root=tmp_path)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception) as skipped:
        shared_data("absent", root=tmp_path)
    assert "\n" not in str(skipped.value) and "../shared/data" in str(skipped.value)


def test_ci_sets_ci_so_missing_shared_data_fails_there() -> None:
    script = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "export CI=1" in script.splitlines()
