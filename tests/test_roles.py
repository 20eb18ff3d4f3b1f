"""Roles: owners (COORDINATOR_IDS) promote and demote, coordinators run batches, a ban ends
coordinator rights. Each test acts as the one trying to overstep would, through the sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox import SandboxUser
from handlers.coordinator import COMMANDS
from labeling.batch import BatchSettings
from labeling.models import WorkerProfile
from storage.admin import AdminStore
from storage.db import Database
from storage.engine import Engine
from tests.engines import replica, stored_batch
from tests.factories import Desk, registered
from tests.harness import Harness, say

OWNER = 500
OTHER_OWNER = 501
ONLY_OWNERS = "an owner (COORDINATOR_IDS) may"
REVIEWS = b"id,text\nr1,Great phone\nr2,Broke in a day\n"
CAPTION = "question: Is it positive?\noptions: yes, no\noverlap: 1"


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Harness]:
    async with Harness(
        tmp_path / "roles.db", coordinator_ids=f"{OWNER},{OTHER_OWNER}", paid_broadcast_rate=100
    ) as running:
        yield running


async def staff(office: Harness, *user_ids: int) -> list[SandboxUser]:
    """Workers (they sent /start) whom the owner promoted to coordinators."""
    owner = office.user(OWNER)
    users = []
    for user_id in user_ids:
        users.append(await office.join(user_id))
        await say(owner, f"/promote {user_id}", "is now a coordinator")
    return users


async def coordinators(office: Harness) -> list[int]:
    return [row[0] for row in await office.query("SELECT user_id FROM coordinators ORDER BY 1")]


async def upload(user: SandboxUser, batch: int) -> None:
    before = len(user.bot_messages)
    user.send_document("reviews.csv", REVIEWS, CAPTION)
    await user.wait_for(lambda u: any(f"Batch {batch}" in m.shown for m in u.bot_messages[before:]))


async def test_a_promoted_coordinator_can_neither_promote_nor_demote(office: Harness) -> None:
    helper, colleague = await staff(office, 14, 15)
    outsider = await office.join(16)
    assert ONLY_OWNERS in await say(helper, "/promote 16", ONLY_OWNERS)
    assert "Unknown command" in await say(outsider, "/batches", "Unknown command")
    assert ONLY_OWNERS in await say(helper, "/demote 15", ONLY_OWNERS)
    assert "No batches" in await say(colleague, "/batches", "No batches")
    assert ONLY_OWNERS in await say(helper, "/demote 14", ONLY_OWNERS)  # not even themselves
    assert await coordinators(office) == [14, 15]
    assert await office.query("SELECT actor_id, action, subject_id FROM audit_log") == [
        (OWNER, "promote", 14),
        (OWNER, "promote", 15),
    ]


async def test_a_ban_takes_coordinator_rights_away(office: Harness) -> None:
    owner = office.user(OWNER)
    (helper,) = await staff(office, 14)
    assert "banned" in await say(owner, "/ban 14 leaked a batch", "banned")
    for command in COMMANDS:
        assert "Unknown command" in await say(helper, f"/{command.name} 1", "Unknown command")
    assert await coordinators(office) == []
    # An unban lets them work again; coordinating takes a new promotion.
    await say(owner, "/unban 14", "may work again")
    assert "Unknown command" in await say(helper, "/batches", "Unknown command")
    await say(owner, "/promote 14", "is now a coordinator")
    assert "No batches" in await say(helper, "/batches", "No batches")


async def test_a_ban_from_before_counts_too(office: Harness) -> None:
    """A promoted coordinator banned while any coordinator could ban anyone keeps no rights."""
    (helper,) = await staff(office, 14)
    async with Database(office.database) as db:
        await AdminStore(db).set_banned(14, True, 15, "from before", 0.0)
    assert await coordinators(office) == [14]
    assert "Unknown command" in await say(helper, "/batches", "Unknown command")
    assert "Unknown command" in await say(helper, "/promote 14", "Unknown command")


async def test_no_one_but_an_owner_bans_a_coordinator_and_no_one_bans_an_owner(
    office: Harness,
) -> None:
    owner = office.user(OWNER)
    await say(owner, "/start", "Welcome")  # an owner who also labels is a worker too
    helper, colleague = await staff(office, 14, 15)
    worker = await office.join(13)
    assert "COORDINATOR_IDS" in await say(helper, f"/ban {OWNER}", "COORDINATOR_IDS")
    assert "COORDINATOR_IDS" in await say(owner, f"/ban {OTHER_OWNER}", "COORDINATOR_IDS")
    assert ONLY_OWNERS in await say(helper, "/ban 15", ONLY_OWNERS)
    assert await office.query("SELECT id FROM workers WHERE status = 'banned'") == []
    assert "No batches" in await say(owner, "/batches", "No batches")
    assert "No batches" in await say(colleague, "/batches", "No batches")
    # What a coordinator may do: ban and unban workers.
    await say(helper, "/ban 13 spam", "banned")
    await say(helper, "/unban 13", "may work again")
    assert "Nothing left" in await say(worker, "/next", "Nothing left")


async def test_paid_broadcasts_need_an_owner(office: Harness) -> None:
    owner = office.user(OWNER)
    (helper,) = await staff(office, 14)
    await upload(helper, 1)
    await upload(helper, 2)
    assert ONLY_OWNERS in await say(helper, "/publish 1 paid", ONLY_OWNERS)
    assert await office.query("SELECT status FROM batches WHERE id = 1") == [("draft",)]
    assert await office.query("SELECT COUNT(*) FROM broadcasts") == [(0,)]
    await say(helper, "/publish 2", "is open")  # an ordinary broadcast is theirs to start
    await say(owner, "/publish 1 paid", "is open")
    assert await office.query("SELECT batch_id, paid, created_by FROM broadcasts ORDER BY 1") == [
        (1, 1, OWNER),
        (2, 0, 14),
    ]


# -- the roles in the database, on both engines -------------------------------------------------


async def test_roles_promotions_and_bans_are_stored_and_logged(engine: Engine) -> None:
    store = AdminStore(engine)
    await Desk(engine).upsert_worker(WorkerProfile(14, "Helper"), 0.0)
    assert await store.roles(14) == (False, False)
    assert await store.promote(14, OWNER, 1.0)
    assert not await store.promote(14, OWNER, 2.0)  # once
    assert await store.roles(14) == (True, False)
    # A ban with the role: both go in one transaction, and the unban gives back the place only.
    assert await store.set_banned(14, True, OWNER, "leaked", 3.0, demote=True)
    assert not await store.set_banned(14, True, OWNER, "again", 3.5)
    assert await store.roles(14) == (False, True)
    assert await store.set_banned(14, False, OWNER, None, 4.0)
    assert await store.roles(14) == (False, False)
    assert not await store.demote(14, OWNER, 5.0)
    assert not await store.set_banned(99, True, OWNER, None, 5.0)  # no such worker
    await store.log(None, "erase", None, "by the operator", 6.0)
    rows = await engine.read(
        "SELECT actor_id, action, subject_id, reason, created_at FROM audit_log ORDER BY id"
    )
    assert [tuple(row) for row in rows] == [
        (OWNER, "promote", 14, None, 1.0),
        (OWNER, "ban", 14, "leaked", 3.0),
        (OWNER, "demote", 14, None, 3.0),
        (OWNER, "unban", 14, None, 4.0),
        (None, "erase", None, "by the operator", 6.0),
    ]


async def test_a_ban_hands_the_worker_s_task_back(engine: Engine) -> None:
    settings = BatchSettings(name="b", question="q?", options="yes,no", overlap=1, gold_ratio=0)
    await stored_batch(engine, REVIEWS, settings)
    tasks = await registered(engine, 13)
    task = (await tasks.current_or_next(13, 1.0, 600.0)).task
    assert task is not None
    assert await AdminStore(engine).set_banned(13, True, OWNER, "spam", 2.0)
    rows = await engine.read(
        "SELECT a.status, i.wanted FROM assignments a JOIN items i ON i.id = a.item_id"
    )
    assert [tuple(row) for row in rows] == [("expired", 1)]


async def test_two_owners_promoting_at_once_promote_once(engine: Engine) -> None:
    await Desk(engine).upsert_worker(WorkerProfile(14, "Helper"), 0.0)
    async with replica(engine) as other:
        promoted = await asyncio.gather(
            AdminStore(engine).promote(14, OWNER, 1.0),
            AdminStore(other).promote(14, OTHER_OWNER, 1.0),
        )
    assert sorted(promoted) == [False, True]
    rows = await engine.read("SELECT action, subject_id FROM audit_log")
    assert [tuple(row) for row in rows] == [("promote", 14)]
