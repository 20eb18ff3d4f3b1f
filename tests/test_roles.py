"""Roles: owners (COORDINATOR_IDS) promote and demote, coordinators run batches, a ban ends
coordinator rights. Each test acts as the one trying to overstep would, through the sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox import SandboxUser
from handlers.coordinator import COMMANDS
from storage.admin import AdminStore
from storage.db import Database
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
