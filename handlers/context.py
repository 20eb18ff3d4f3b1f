"""The typed context handlers receive: the services, reached without string keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram.ext import Application, CallbackContext, ExtBot

from labeling.admin import AdminService
from labeling.batches import BatchService
from labeling.erasure import ErasureService
from labeling.review import ReviewService
from labeling.words import DEFAULT_CURRENCY
from labeling.work import WorkService


@dataclass(slots=True)
class Services:
    work: WorkService
    batches: BatchService
    admin: AdminService
    review: ReviewService
    erasure: ErasureService
    paid_broadcasts: bool = False
    currency: str = DEFAULT_CURRENCY  # shown with every amount


class BotData:
    """PTB's bot_data, holding the services once post_init has opened the database."""

    __slots__ = ("_services",)

    def __init__(self) -> None:
        self._services: Services | None = None

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("services are not attached yet: post_init has not run")
        return self._services

    @services.setter
    def services(self, services: Services) -> None:
        self._services = services


# The rate limiter (bot.retry) reads per-request arguments of this type: broadcasts pass BULK.
LabelBot = ExtBot[dict[str, bool]]


class LabelContext(CallbackContext[LabelBot, dict[Any, Any], dict[Any, Any], BotData]):
    @property
    def services(self) -> Services:
        return self.bot_data.services


# No job queue: what runs beside the handlers is the bot's own tasks (bot.app.upkeep, the
# notifier), started and stopped with the application.
LabelApplication = Application[
    LabelBot, LabelContext, dict[Any, Any], dict[Any, Any], BotData, None
]
