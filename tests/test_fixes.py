"""Fixes from the audit (issue 9): announcements after /stop, cards Telegram refuses, exports
whose column names collide or run as formulas, a broadcast on the next line, and exams of
banned workers. Each test acts through the sandbox as a worker or coordinator would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox import SandboxUser
from tests.harness import Harness, say

BOSS = 500
CAPTION = "question: Is it positive?\noptions: yes, no\noverlap: 1\ngold_ratio: 0"


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Harness]:
    async with Harness(tmp_path / "office.db", coordinator_ids=str(BOSS)) as running:
        yield running


async def publish_batch(boss: SandboxUser, number: int) -> None:
    """Uploads a small batch, publishes it and waits until every active worker was told."""
    before = len(boss.bot_messages)
    boss.send_document(f"batch{number}.csv", b"text\nGreat phone\nBroke in a day\n", CAPTION)
    await boss.wait_for(
        lambda u: any(f"Batch {number}" in m.shown for m in u.bot_messages[before:])
    )
    await say(boss, f"/publish {number}", "is open")
    await boss.wait_for(
        lambda u: any(m.shown.startswith(f"Announced batch {number}") for m in u.bot_messages)
    )


def told(worker: SandboxUser, batch: int) -> bool:
    """Whether the worker got batch `batch`'s announcement (its uploads are named batchN)."""
    return any(f"New batch: batch{batch}." in m.shown for m in worker.bot_messages)


# -- item 4: only /start turns announcements back on ----------------------------------------


async def test_next_and_its_buttons_keep_announcements_off_until_start(office: Harness) -> None:
    boss = office.user(BOSS)
    quiet, keen = await office.join(41), await office.join(42)
    await publish_batch(boss, 1)
    assert told(quiet, 1) and told(keen, 1)
    await say(quiet, "/stop", "Paused")
    # Every way to ask for work that is not /start: the announcement's button, /next, and the
    # Next task button under "nothing left".
    quiet.press("Start labeling ▶")
    await quiet.wait_for(lambda u: any("Is it positive?" in m.shown for m in u.bot_messages))
    await say(quiet, "/next", "Is it positive?")
    quiet.press("yes")
    await quiet.wait_for(lambda u: u.last.find_button("yes") is not None and u.last.edits == 1)
    quiet.press("no")
    await quiet.wait_for(lambda u: "Nothing left" in u.last.shown)
    answered = len(quiet.notices)
    quiet.press("Next task ▶")
    await quiet.wait_for(lambda u: len(u.notices) > answered)

    await publish_batch(boss, 2)
    assert told(keen, 2)
    assert not told(quiet, 2), "/next and the buttons turned announcements back on"
    assert await office.query("SELECT notify FROM workers WHERE id = 41") == [(0,)]

    await say(quiet, "/start", "Welcome")
    await publish_batch(boss, 3)
    assert told(quiet, 3) and told(keen, 3)
