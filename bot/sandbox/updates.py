"""The updates Telegram keeps for a bot until the bot confirms them: by a getUpdates offset past
them when it polls, by a 2xx answer to each POST when a webhook is set."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from typing import Any

Update = dict[str, Any]


class Updates:
    """The bot's pending updates in order, and those a test asked to deliver again."""

    def __init__(self) -> None:
        self._pending: deque[Update] = deque()
        self._replays: deque[Update] = deque()
        self._sent: dict[int, Update] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        """Updates awaiting delivery, as getWebhookInfo's pending_update_count counts them."""
        return len(self._pending) + len(self._replays)

    @property
    def changed(self) -> asyncio.Event:
        """An event set at the next change: take it before looking, then wait on it."""
        return self._changed

    def wake(self) -> None:
        """Sets `changed` for whoever waits on it, and starts a new one."""
        self._changed.set()
        self._changed = asyncio.Event()

    def push(self, payload: dict[str, Any]) -> int:
        """Queues a new update; returns its id."""
        update_id = next(self._ids)
        update = {"update_id": update_id, **payload}
        self._sent[update_id] = update
        self._pending.append(update)
        self.wake()
        return update_id

    def replay(self, update_id: int) -> None:
        """Delivers an update again, as Telegram does when a bot did not confirm it."""
        self._replays.append(self._sent[update_id])
        self.wake()

    def poll(self, offset: int, limit: int) -> list[Update]:
        """What getUpdates answers: the updates from `offset` on, then replays, `limit` in all.
        Those before `offset` are confirmed and forgotten, as Telegram does."""
        while self._pending and self._pending[0]["update_id"] < offset:
            self._pending.popleft()
        batch = list(itertools.islice(self._pending, limit))
        while self._replays and len(batch) < limit:
            batch.append(self._replays.popleft())
        return batch

    def pending(self) -> list[Update]:
        """The updates not yet confirmed, oldest first."""
        return list(self._pending)

    def take_replays(self) -> list[Update]:
        """The replays not yet delivered, handed over to whoever delivers them."""
        replays = list(self._replays)
        self._replays.clear()
        return replays

    def confirm(self, update_id: int) -> None:
        """Forgets an update the bot took (a webhook's 2xx), wherever it stands in the queue:
        updates of other chats may have been taken before it."""
        for index, update in enumerate(self._pending):
            if update["update_id"] == update_id:
                del self._pending[index]
                self.wake()
                return
