"""Who may coordinate, and the coordinator's hold over workers: promotion, bans, the log."""

from __future__ import annotations

import time
from typing import Protocol

from labeling.work import Clock


class AdminRepository(Protocol):
    async def is_promoted(self, user_id: int) -> bool: ...
    async def promote(self, user_id: int, by: int, now: float) -> bool: ...
    async def demote(self, user_id: int, by: int, now: float) -> bool: ...
    async def set_banned(
        self, worker_id: int, banned: bool, by: int | None, reason: str | None, now: float
    ) -> bool: ...


class AdminService:
    def __init__(
        self, store: AdminRepository, configured: frozenset[int], *, clock: Clock = time.time
    ) -> None:
        self.store = store
        self.configured = configured  # COORDINATOR_IDS: coordinators no command can demote
        self.clock = clock

    async def is_coordinator(self, user_id: int) -> bool:
        """Checked on every coordinator command, so a demotion takes effect at once."""
        return user_id in self.configured or await self.store.is_promoted(user_id)

    async def promote(self, user_id: int, by: int) -> bool:
        if user_id in self.configured:
            return False
        return await self.store.promote(user_id, by, self.clock())

    async def demote(self, user_id: int, by: int) -> bool:
        return await self.store.demote(user_id, by, self.clock())

    async def ban(self, worker_id: int, by: int, reason: str | None) -> bool:
        return await self.store.set_banned(worker_id, True, by, reason, self.clock())

    async def unban(self, worker_id: int, by: int, reason: str | None) -> bool:
        return await self.store.set_banned(worker_id, False, by, reason, self.clock())
