"""Builds the PTB application: handlers, services, and what runs beside them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.error import Forbidden
from telegram.ext import Application, ApplicationBuilder, ContextTypes

from bot.lanes import Lanes
from bot.notifier import STOP_GRACE, Notifier
from bot.retry import RetryingLimiter
from bot.settings import Settings
from handlers import coordinator, erasure, guard, worker
from handlers.context import BotData, LabelApplication, LabelBot, LabelContext, Services
from handlers.guard import FloodGuard
from labeling.admin import AdminService
from labeling.batches import BatchService
from labeling.erasure import ErasureService
from labeling.review import ReviewService
from labeling.watch import WatchService
from labeling.work import WorkService
from storage import open_engine
from storage.admin import AdminStore
from storage.batches import BatchStore
from storage.broadcasts import BroadcastStore
from storage.erasure import ErasureStore
from storage.exams import ExamStore
from storage.reviews import ReviewStore
from storage.tasks import TaskStore
from storage.watch import WatchStore
from storage.workers import WorkerStore

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query"]
# After each getUpdates the updater waits this long before the next: a long poll returns as
# soon as one update is waiting, so under a crowd's taps each poll would bring one update and
# cost a request of its own (0.94 polls per tap in bench/loop.py). A short wait lets the taps
# of that moment come back together; a worker taps again seconds later, so nobody waits on it.
POLL_INTERVAL = 0.02
WEBHOOK_PATH = "telegram"
# How long a stop waits for the notifier and the upkeep to end: the notifier first gives the
# sends under way up to STOP_GRACE to land; the rest is for recording them.
BACKGROUND_STOP_SECONDS = STOP_GRACE + 3.0


async def upkeep(
    work: WorkService,
    review: ReviewService,
    batches: BatchService,
    watch: WatchService,
    leads: Callable[[str], Awaitable[bool]],
    every: float,
) -> None:
    """Returns tasks left unanswered past their time to the pool, refreshes each batch's
    typical answer time and agreement, flags gold that trusted workers miss, and queues what
    coordinators are told about their batches, over and over: in one replica at a time
    (`leads`), the others standing by to take over."""
    while True:
        try:
            if not await leads("upkeep"):
                await asyncio.sleep(every)
                continue
            returned = await work.expire_stale()
            if returned:
                log.info("returned %d expired tasks to the pool", returned)
            await work.refresh_medians()
            await batches.warm_agreement()
            swept = await review.sweep()
            if swept.flagged:
                log.warning("%d gold items flagged as suspect; see /reports", swept.flagged)
            if swept.suspended:
                log.info("%d workers suspended on their agreement with others", swept.suspended)
            await watch.round()
        except Exception:
            log.exception("upkeep round failed")
        await asyncio.sleep(every)


def build_application(
    settings: Settings, *, notify_every: float = 2.0, upkeep_every: float = 10.0
) -> LabelApplication:
    """The application for `settings`; the database opens in post_init, not here."""
    url = settings.database_url.get_secret_value() if settings.database_url else None
    db = open_engine(settings.database_path, url, synchronous=settings.sqlite_synchronous)
    background: list[asyncio.Task[None]] = []

    async def post_init(application: LabelApplication) -> None:
        await db.open()
        await db.migrate()
        work = WorkService(
            WorkerStore(db),
            TaskStore(db),
            ExamStore(db),
            assignment_ttl=settings.assignment_timeout_seconds,
        )
        review = ReviewService(ReviewStore(db))
        batches = BatchService(
            BatchStore(db, owners=settings.coordinator_ids),
            min_hourly_rate=settings.min_hourly_rate,
            currency=settings.currency,
        )
        discarded = await batches.discard_abandoned_imports()
        if discarded:
            log.warning("removed batches %s, whose import was cut off", discarded)
        owners = frozenset(settings.coordinator_ids)
        admin = AdminService(AdminStore(db), owners=owners)
        watch = WatchService(WatchStore(db), BatchStore(db), owners)
        application.bot_data.services = Services(
            work=work,
            review=review,
            batches=batches,
            admin=admin,
            erasure=ErasureService(ErasureStore(db), admin.is_coordinator),
            paid_broadcasts=settings.paid_broadcast_rate is not None,
            currency=settings.currency,
        )
        await coordinator.show_menus(application.bot, owners)
        notifier = Notifier(
            application.bot,
            BroadcastStore(db, owners=settings.coordinator_ids),
            rate=settings.broadcast_rate,
            paid_rate=settings.paid_broadcast_rate,
        )
        sweep_every = min(upkeep_every, settings.assignment_timeout_seconds / 4)
        background.extend(
            [
                asyncio.create_task(notifier.run(notify_every), name="notifier"),
                asyncio.create_task(
                    upkeep(work, review, batches, watch, db.leads, sweep_every), name="upkeep"
                ),
            ]
        )

    async def post_stop(application: LabelApplication) -> None:
        await stop_background(background)

    async def post_shutdown(application: LabelApplication) -> None:
        # A start that failed after post_init (a webhook Telegram refused) never stops the
        # application, so post_stop did not run: the background work must end before the
        # database closes under it.
        await post_stop(application)
        await db.close()

    pool = min(max(settings.concurrent_updates, 8), 256)
    application: LabelApplication = (
        ApplicationBuilder()
        .application_class(StoppingApplication)
        .token(settings.token())
        .base_url(settings.telegram_base_url)
        .base_file_url(settings.telegram_base_file_url)
        .context_types(ContextTypes(context=LabelContext, bot_data=BotData))
        .concurrent_updates(Lanes(settings.concurrent_updates))
        .connection_pool_size(pool)
        .pool_timeout(30.0)
        .rate_limiter(RetryingLimiter(send_rate=settings.broadcast_rate))
        .job_queue(None)
        .post_init(post_init)
        .post_stop(post_stop)
        .post_shutdown(post_shutdown)
        .build()
    )
    guard.register(application, FloodGuard(settings.user_rate, settings.user_burst))
    coordinator.register(application)  # before the workers' catch-all for unknown commands
    erasure.register(application)
    worker.register(application)
    application.add_error_handler(on_error)
    return application


class StoppingApplication(
    Application[LabelBot, LabelContext, dict[Any, Any], dict[Any, Any], BotData, None]
):
    """PTB's application, whose stop first tells the rate limiter to stop waiting: PTB's stop
    waits for every handler under way, and one waiting out Telegram's retry_after would hold
    up `labelbot run`'s stop on SIGTERM, and LocalBot's, for as long."""

    async def stop(self) -> None:
        limiter = self.bot.rate_limiter
        if isinstance(limiter, RetryingLimiter):
            limiter.stop()
        await super().stop()


async def stop_background(background: list[asyncio.Task[None]]) -> None:
    """Cancels the notifier and the upkeep and waits for them, but never for long: a task
    that ignored its cancellation would otherwise hold the stop forever (it is logged, and
    cancelled again, and the stop goes on)."""
    for task in background:
        task.cancel()
    if background:
        done, late = await asyncio.wait(background, timeout=BACKGROUND_STOP_SECONDS)
        for task in late:
            log.error(
                "%s did not stop within %.0f s; left behind",
                task.get_name(),
                BACKGROUND_STOP_SECONDS,
            )
            task.cancel()
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("%s failed", task.get_name(), exc_info=task.exception())
    background.clear()


async def on_error(update: object, context: LabelContext) -> None:
    """Logs what a handler raised, with its reason; the update is dropped, never the bot.
    A user who blocked the bot is marked unreachable, so nothing more is sent to them."""
    if isinstance(context.error, Forbidden) and isinstance(update, Update):
        user = update.effective_user
        if user is not None:
            await context.services.work.mark_unreachable(user.id)
            log.info("user %s blocked the bot; marked unreachable", user.id)
            return
    log.error(
        "handler failed on update %s: %s",
        getattr(update, "update_id", "?"),
        context.error,
        exc_info=context.error,
    )


@dataclass(frozen=True, slots=True)
class Webhook:
    """Where PTB's webhook server listens, and the secret every request must carry."""

    listen: str
    port: int
    url: str
    secret: str


@contextlib.asynccontextmanager
async def serving(
    application: LabelApplication, *, timeout: int = 10, webhook: Webhook | None = None
) -> AsyncIterator[LabelApplication]:
    """Runs the application inside an event loop that someone else owns (the demo, tests),
    with the same lifecycle hooks `run_polling` and `run_webhook` call."""
    updater = application.updater
    assert updater is not None
    await application.initialize()
    try:
        if application.post_init:
            await application.post_init(application)
        await application.start()
        if webhook is None:
            await updater.start_polling(
                poll_interval=POLL_INTERVAL, timeout=timeout, allowed_updates=ALLOWED_UPDATES
            )
        else:
            await updater.start_webhook(
                listen=webhook.listen,
                port=webhook.port,
                url_path=WEBHOOK_PATH,
                webhook_url=webhook.url,
                secret_token=webhook.secret,
                allowed_updates=ALLOWED_UPDATES,
            )
        try:
            yield application
        finally:
            if updater.running:
                await updater.stop()
            await application.stop()
            if application.post_stop:
                await application.post_stop(application)
    finally:
        await application.shutdown()
        if application.post_shutdown:
            await application.post_shutdown(application)
