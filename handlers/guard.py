"""Per-user flood control: a user sending far more than a person can is slowed alone.

Runs before every other handler. Each user has a token bucket (`rate` updates per second,
`burst` at once); an update beyond it is dropped before it reaches a service, so a flood costs
no database work and no one else's speed. A dropped tap still gets its spinner stopped, at
most once a second, so the flooder is told why nothing happens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, TypeHandler

from handlers.context import LabelApplication, LabelContext

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Bucket:
    tokens: float
    updated: float
    told: float = 0.0  # when the user was last told to slow down


class FloodGuard:
    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.buckets: dict[int, Bucket] = {}
        self.dropped = 0
        self._pruned = clock()

    def allow(self, user_id: int) -> bool:
        now = self.clock()
        bucket = self.buckets.get(user_id)
        if bucket is None:
            bucket = self.buckets[user_id] = Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if now - self._pruned > 60:
            self._prune(now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True
        self.dropped += 1
        return False

    def should_tell(self, user_id: int) -> bool:
        bucket = self.buckets[user_id]
        now = self.clock()
        if now - bucket.told >= 1.0:
            bucket.told = now
            return True
        return False

    def _prune(self, now: float) -> None:
        """Forgets users whose bucket has refilled, so the table stays the size of the
        users active in the last minute."""
        full = self.burst / self.rate
        self.buckets = {
            user: bucket for user, bucket in self.buckets.items() if now - bucket.updated < full
        }
        self._pruned = now

    async def check(self, update: Update, context: LabelContext) -> None:
        """Drops the update when its sender is over their rate."""
        user = update.effective_user
        if user is None or self.allow(user.id):
            return
        if update.callback_query is not None and self.should_tell(user.id):
            try:
                await update.callback_query.answer("Too fast: slow down a little.")
            except TelegramError as error:
                log.debug("could not slow %s down: %s", user.id, error)
        if self.dropped % 100 == 1:
            log.warning("flood control: dropped %d updates so far (user %s)", self.dropped, user.id)
        raise ApplicationHandlerStop


def register(application: LabelApplication, guard: FloodGuard) -> None:
    application.add_handler(TypeHandler(Update, guard.check), group=-1)
