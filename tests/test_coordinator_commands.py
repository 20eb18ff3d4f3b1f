"""The table of coordinator commands: /coordinator lists it, a wrong use is answered with the
command's usage line, and Telegram's command menu offers each chat the commands its user may
use, kept in step with promotions, demotions and bans."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox import ApiError, Sandbox
from handlers.coordinator import COMMANDS, HELP, menu
from handlers.worker import WORKER_COMMANDS
from labeling.admin import Role
from labeling.batches import TRANSITIONS
from storage.admin import AdminStore
from tests.harness import BOSS, Harness, say, settle

HELPER = 14
WORKER_MENU = [command.command for command in WORKER_COMMANDS]
COORDINATOR_MENU = WORKER_MENU + [c.name for c in COMMANDS if c.role is Role.COORDINATOR]
OWNER_MENU = WORKER_MENU + [command.name for command in COMMANDS]


class Menus:
    """What the bot has told Telegram each chat's command menu holds: `scoped` by chat, and
    `default` for every other chat. Answers deleteMyCommands, which the sandbox does not know,
    as Telegram does; Telegram knows no chat with the users in `strangers`."""

    def __init__(self, sandbox: Sandbox, strangers: frozenset[int] = frozenset()) -> None:
        self.default: list[str] = []
        self.scoped: dict[int, list[str]] = {}
        self.descriptions: dict[str, str] = {}
        self.strangers = strangers
        self._call = sandbox.call
        sandbox.call = self.call

    async def call(self, method: str, params: Any) -> Any:
        if method.lower() not in ("setmycommands", "deletemycommands"):
            return await self._call(method, params)
        chat_id = (params.json("scope") or {}).get("chat_id")
        if chat_id in self.strangers:
            raise ApiError(400, "Bad Request: chat not found")
        if method.lower() == "deletemycommands":
            self.scoped.pop(chat_id, None)
            return True
        commands = params.json("commands")
        self.descriptions.update({entry["command"]: entry["description"] for entry in commands})
        if chat_id is None:
            self.default = [entry["command"] for entry in commands]
        else:
            self.scoped[chat_id] = [entry["command"] for entry in commands]
        return True

    def shown(self, user_id: int) -> list[str]:
        return self.scoped.get(user_id, self.default)


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[tuple[Harness, Menus]]:
    harness = Harness(tmp_path / "commands.db", coordinator_ids=str(BOSS))
    menus = Menus(harness.sandbox)
    async with harness:
        yield harness, menus


async def test_coordinator_lists_every_command_with_its_usage(
    office: tuple[Harness, Menus],
) -> None:
    harness, _ = office
    text = await say(harness.user(BOSS), "/coordinator", "Coordinator commands")
    assert text == HELP
    lines = text.split("\n\n", 1)[1].split("\n")
    assert lines == [command.usage for command in COMMANDS]
    assert "/status N - progress, quality and pay of batch N, with a chart" in lines
    assert "/promote USER_ID - make someone a coordinator (owners only)" in lines


# Arguments these take are free text, or none at all.
TAKE_ANYTHING = {"batches", "broadcast", "coordinator"}


async def test_a_wrong_use_is_answered_with_that_commands_usage_line(
    office: tuple[Harness, Menus],
) -> None:
    harness, _ = office
    boss = harness.user(BOSS)
    for command in COMMANDS:
        if command.name not in TAKE_ANYTHING:
            answer = await say(boss, f"/{command.name} x", "Usage")
            assert answer == f"Usage: {command.usage}"


async def test_each_chat_is_offered_the_commands_its_user_may_use(
    office: tuple[Harness, Menus],
) -> None:
    harness, menus = office
    await settle(lambda: bool(menus.default) and BOSS in menus.scoped)
    assert menus.default == WORKER_MENU
    assert menus.shown(BOSS) == OWNER_MENU
    assert menus.descriptions["status"] == "Progress, quality and pay of batch N, with a chart"
    owner = harness.user(BOSS)
    await harness.join(HELPER)
    assert menus.shown(HELPER) == WORKER_MENU

    await say(owner, f"/promote {HELPER}", "is now a coordinator")
    await settle(lambda: menus.shown(HELPER) == COORDINATOR_MENU)
    assert "promote" not in menus.shown(HELPER)
    await say(owner, f"/demote {HELPER}", "is no longer a coordinator")
    await settle(lambda: HELPER not in menus.scoped)

    await say(owner, f"/promote {HELPER}", "is now a coordinator")
    await settle(lambda: HELPER in menus.scoped)
    await say(owner, f"/ban {HELPER} leaked a batch", "banned")
    await settle(lambda: HELPER not in menus.scoped)


async def test_a_coordinator_without_their_menu_gets_it_with_the_list(
    office: tuple[Harness, Menus],
) -> None:
    """Someone promoted before the menus were set, or before a new version added a command."""
    harness, menus = office
    helper = await harness.join(HELPER)
    async with harness.opened() as db:
        await AdminStore(db).promote(HELPER, BOSS, 0.0)
    assert menus.shown(HELPER) == WORKER_MENU
    await say(helper, "/coordinator", "Coordinator commands")
    await settle(lambda: menus.shown(HELPER) == COORDINATOR_MENU)


async def test_an_owner_telegram_knows_no_chat_with_does_not_stop_the_start(
    tmp_path: Path,
) -> None:
    harness = Harness(tmp_path / "strangers.db", coordinator_ids=f"{BOSS},501")
    menus = Menus(harness.sandbox, strangers=frozenset({501}))
    async with harness:
        assert menus.scoped == {BOSS: OWNER_MENU}
        assert "No batches" in await say(harness.user(BOSS), "/batches", "No batches")


@pytest.mark.parametrize("role", [Role.WORKER, Role.COORDINATOR, Role.OWNER])
def test_every_menu_fits_telegrams_rules(role: Role) -> None:
    entries = menu(role)
    names = [entry.command for entry in entries]
    assert len(set(names)) == len(names) <= 100
    for entry in entries:
        assert re.fullmatch(r"[a-z0-9_]{1,32}", entry.command)
        assert 1 <= len(entry.description) <= 256


def test_every_change_of_state_a_coordinator_may_ask_for_is_a_command() -> None:
    assert set(TRANSITIONS) <= {command.name for command in COMMANDS}
