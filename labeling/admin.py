"""Who may coordinate, and the coordinator's hold over workers: roles, promotion, bans, the log.

Roles are ranked. Owners are the ids in COORDINATOR_IDS: only they promote and demote
coordinators, ban or unban a coordinator, and publish with paid broadcasting; no command
changes an owner. Coordinators are those an owner promoted: they run batches and ban or unban
workers. A ban takes coordinator rights away. Every command asks again, so a change of role
takes effect at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Protocol

from labeling.models import Clock


class Role(IntEnum):
    """What someone may do; each role may do everything the roles below it may."""

    WORKER = 0
    COORDINATOR = 1
    OWNER = 2


class Action(StrEnum):
    """What a role is asked for; the value completes "only an owner may ..."."""

    COORDINATE = "use coordinator commands"
    PROMOTE = "promote coordinators"
    DEMOTE = "demote coordinators"
    BAN = "ban"
    UNBAN = "unban"
    PAID_BROADCAST = "publish with paid broadcasting"


# The least role each action needs.
NEEDS: dict[Action, Role] = {
    Action.COORDINATE: Role.COORDINATOR,
    Action.PROMOTE: Role.OWNER,
    Action.DEMOTE: Role.OWNER,
    Action.BAN: Role.COORDINATOR,
    Action.UNBAN: Role.COORDINATOR,
    Action.PAID_BROADCAST: Role.OWNER,
}


@dataclass(frozen=True, slots=True)
class Person:
    """What roles turn on for one Telegram user."""

    user_id: int
    owner: bool  # listed in COORDINATOR_IDS
    promoted: bool  # an owner made them a coordinator
    banned: bool

    @property
    def role(self) -> Role:
        if self.owner:  # set by whoever runs the bot: no command overrides it
            return Role.OWNER
        if self.promoted and not self.banned:
            return Role.COORDINATOR
        return Role.WORKER


class NotAllowed(Exception):
    """The sender may not do this; the message says why, and who may."""


def refusal(actor: Person, action: Action, target: Person | None = None) -> str | None:
    """Why `actor` may not do `action` (to `target`), or None when they may."""
    if actor.role < NEEDS[action]:
        return f"Only an owner (COORDINATOR_IDS) may {action}."
    if target is None:
        return None
    if target.role is Role.OWNER:
        return f"{target.user_id} is an owner, set in COORDINATOR_IDS; change it there."
    if target.role is Role.COORDINATOR and actor.role is not Role.OWNER:
        return (
            f"{target.user_id} is a coordinator, and only an owner (COORDINATOR_IDS) may"
            f" {action} a coordinator."
        )
    if action is Action.PROMOTE and target.banned:
        return f"{target.user_id} is banned: unban them first."
    return None


class AdminRepository(Protocol):
    async def roles(self, user_id: int) -> tuple[bool, bool]: ...
    async def promote(self, user_id: int, by: int, now: float) -> bool: ...
    async def demote(self, user_id: int, by: int, now: float) -> bool: ...
    async def set_banned(
        self,
        worker_id: int,
        banned: bool,
        by: int | None,
        reason: str | None,
        now: float,
        *,
        demote: bool = False,
    ) -> bool: ...


class AdminService:
    def __init__(
        self, store: AdminRepository, owners: frozenset[int], *, clock: Clock = time.time
    ) -> None:
        self.store = store
        self.owners = owners  # COORDINATOR_IDS
        self.clock = clock

    async def person(self, user_id: int) -> Person:
        promoted, banned = await self.store.roles(user_id)
        return Person(user_id, user_id in self.owners, promoted, banned)

    async def is_coordinator(self, user_id: int) -> bool:
        """Checked on every coordinator command, so a demotion or a ban takes effect at once."""
        return (await self.person(user_id)).role >= Role.COORDINATOR

    async def authorize(
        self, by: int, action: Action, target_id: int | None = None
    ) -> Person | None:
        """Raises NotAllowed unless user `by` may do `action` (to `target_id`); returns the
        target as they stand now."""
        target = None if target_id is None else await self.person(target_id)
        reason = refusal(await self.person(by), action, target)
        if reason is not None:
            raise NotAllowed(reason)
        return target

    async def promote(self, user_id: int, by: int) -> bool:
        """False when they are a coordinator already."""
        await self.authorize(by, Action.PROMOTE, user_id)
        return await self.store.promote(user_id, by, self.clock())

    async def demote(self, user_id: int, by: int) -> bool:
        """False when they were not a promoted coordinator."""
        await self.authorize(by, Action.DEMOTE, user_id)
        return await self.store.demote(user_id, by, self.clock())

    async def ban(self, worker_id: int, by: int, reason: str | None) -> bool:
        """Bans a worker from every batch; a promoted coordinator loses that role with it, and
        an unban later gives back only the worker's place."""
        target = await self.authorize(by, Action.BAN, worker_id)
        assert target is not None
        return await self.store.set_banned(
            worker_id, True, by, reason, self.clock(), demote=target.promoted
        )

    async def unban(self, worker_id: int, by: int, reason: str | None) -> bool:
        await self.authorize(by, Action.UNBAN, worker_id)
        return await self.store.set_banned(worker_id, False, by, reason, self.clock())
