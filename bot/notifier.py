"""Tells every active worker about a newly opened batch or an announcement, paced for
Telegram's bulk limit, with a progress message for the coordinator who asked.

Sends run concurrently (a round trip takes longer than the gap between two sends at hundreds
per second) but start on a fixed pace; a 429 pauses the whole pace for its retry_after; a worker
who blocked the bot is marked unreachable and never retried. Who has been told is in the
database, so a restart resumes the broadcast without telling anyone twice.

With several replicas, one sends at a time: the one that leads the job (Telegram's limits are
the bot's, so two senders would only meet 429s). When it dies another takes over, and what it
left in flight is counted unconfirmed, never sent again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import Forbidden, NetworkError, RetryAfter, TelegramError

from bot.retry import BULK, Pacer, may_have_arrived, retry_after_seconds
from handlers.callbacks import NextTap, encode
from handlers.context import LabelBot
from handlers.worker import SUSPENDED
from labeling.words import plural
from storage.broadcasts import Broadcast, BroadcastStore, Delivery

log = logging.getLogger(__name__)

# How often a sender checks, while it sends, that it still leads.
CHECK_LEAD_EVERY = 3.0
# How long a stop lets the sends under way finish; a send answers in a fraction of a second
# unless Telegram is in trouble, and one still unanswered then is counted unconfirmed.
STOP_GRACE = 2.0
START = "Start labeling ▶"
NOTICES = {
    "reinstated": (
        "Good news: a check question in {batch} turned out to be wrong, and without it your"
        " answers pass. You are back in the batch, your answers count again, and /next has"
        " tasks for you."
    ),
    "suspended": SUSPENDED,
    "let_back": (
        "A coordinator let you back into {batch}: your answers count again, and /next has"
        " tasks for you."
    ),
}


@dataclass
class Run:
    """One broadcast in progress: who is waiting for a retry, and the outcomes to record."""

    broadcast: Broadcast
    audience: int
    counts: Counter[str] = field(default_factory=Counter)
    retry: deque[int] = field(default_factory=deque)
    pending: list[Delivery] = field(default_factory=list)
    untold: deque[int] = field(default_factory=deque)  # next to tell, not yet claimed
    claiming: set[int] = field(default_factory=set)  # handed to a send that has not claimed yet
    started: float = field(default_factory=time.monotonic)


class LeadLost(Exception):
    """Another replica leads the sending now (this one lost its hold on the job): stop."""


class Notifier:
    def __init__(
        self,
        bot: LabelBot,
        store: BroadcastStore,
        *,
        rate: float,
        paid_rate: float | None = None,
        progress_every: float = 3.0,
        in_flight: int = 100,
        check_lead_every: float = CHECK_LEAD_EVERY,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        self.bot = bot
        self.store = store
        self.rate = rate
        self.paid_rate = paid_rate
        self.progress_every = progress_every
        self.in_flight = in_flight
        self.check_lead_every = check_lead_every
        self.stop_grace = stop_grace
        self.leading = False

    async def run(self, every: float = 2.0) -> None:
        """Sends what is pending forever, in rounds, whenever this replica leads the job."""
        this = asyncio.current_task()
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifier round failed; trying again in %.0fs", every)
            if this is not None and this.cancelling():
                # A stop was swallowed on its way up (Python 3.11's TaskGroup raises a child's
                # LeadLost in place of a cancellation that came at the same moment): it still
                # stops the notifier, or the bot's stop would wait for it forever.
                raise asyncio.CancelledError
            await asyncio.sleep(every)

    async def round(self) -> None:
        """Sends what is pending if this replica leads; starting to lead, it first settles
        what the last sender left in flight."""
        if not await self.store.leads():
            self.leading = False
            return
        if not self.leading:
            interrupted = await self.store.settle_interrupted(time.time())
            if interrupted:
                log.warning("%d messages were in flight at the last stop; not resent", interrupted)
            self.leading = True
        try:
            async with asyncio.TaskGroup() as group:
                checking = group.create_task(self._check_lead())
                await self.send_pending()
                checking.cancel()
        except* LeadLost:
            self.leading = False
            log.warning("another replica leads the sending now; this one stopped")

    async def _check_lead(self) -> None:
        while True:
            await asyncio.sleep(self.check_lead_every)
            if not await self.store.leads():
                raise LeadLost

    async def send_pending(self) -> None:
        await self._send_notices()
        for broadcast in await self.store.unfinished():
            await self._broadcast(broadcast)

    async def _send_notices(self) -> None:
        """Tells single workers about their standing, and coordinators about their batches
        (complete, digests of suspensions); each notice is sent at most once. One is claimed
        at a time, so a stop leaves at most one in doubt."""
        while notices := await self.store.claim_notices(time.time(), limit=1):
            (notice,) = notices
            text = notice.text or NOTICES[notice.kind].format(batch=notice.batch_name)
            status, unreachable = "sent", False
            try:
                await self.bot.send_message(notice.chat_id, text)
            except RetryAfter:
                # Not sent, so not in doubt: queued again for a later round (the limiter has
                # waited and retried already, unless the bot is stopping).
                await self.store.record_notice(notice, "queued", time.time())
                return
            except Forbidden:
                status, unreachable = "failed", True
            except TelegramError as error:
                status = failure(error)
                log.warning("notice %d to %d: %s", notice.notice_id, notice.chat_id, error)
            await self.store.record_notice(notice, status, time.time(), unreachable=unreachable)

    async def _broadcast(self, broadcast: Broadcast) -> None:
        paid = broadcast.paid and self.paid_rate is not None
        pacer = Pacer(self.paid_rate if paid and self.paid_rate else self.rate)
        run = Run(broadcast, await self.store.audience(broadcast.broadcast_id))
        run.counts.update(await self.store.counts(broadcast.broadcast_id))
        progress = asyncio.create_task(self._report(run))
        slots = asyncio.Semaphore(self.in_flight)
        sending: set[asyncio.Task[None]] = set()
        # Small reads of who is untold: each send claims its own worker just before it goes.
        batch_size = max(1, min(50, int(pacer.rate)))
        try:
            while True:
                run.untold.extend(run.retry.popleft() for _ in range(len(run.retry)))
                if not run.untold:
                    untold = await self.store.untold(broadcast.broadcast_id, batch_size)
                    run.untold.extend(w for w in untold if w not in run.claiming)
                if not run.untold:
                    if sending:
                        await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
                    elif not run.retry:
                        break
                    # else a send was refused with 429 while claiming: retry it next round
                    continue
                while run.untold:
                    await pacer.wait()
                    await slots.acquire()
                    worker_id = run.untold.popleft()
                    run.claiming.add(worker_id)
                    task = asyncio.create_task(self._send(run, worker_id, pacer, slots))
                    sending.add(task)
                    task.add_done_callback(sending.discard)
                await self._flush(run)
        finally:
            # Stopping or not, the sends under way are given a moment to land and be recorded,
            # so that a restart knows exactly who was told; no longer, or a send that Telegram
            # is slow to answer would hold the stop up for as long as its timeouts allow.
            await self._wind_down(sending)
            await asyncio.shield(self._flush(run))
            progress.cancel()
            # Not `await progress` under suppress(CancelledError): a stop landing while the
            # report winds down would be taken for the report's own end and swallowed, and the
            # notifier would go on sending after the bot had stopped.
            await asyncio.wait([progress])
        await self.store.finish(broadcast.broadcast_id, time.time())
        await self._show_progress(run, final=True)
        log.info("broadcast %d finished: %s", broadcast.broadcast_id, dict(run.counts))

    async def _send(self, run: Run, worker_id: int, pacer: Pacer, slots: asyncio.Semaphore) -> None:
        broadcast = run.broadcast
        keyboard = None
        if broadcast.batch_id is not None:
            button = InlineKeyboardButton(START, callback_data=encode(NextTap()))
            keyboard = InlineKeyboardMarkup([[button]])
        try:
            # Claimed right before its own send, so a crash leaves in doubt only sends under
            # way; in this task, so the pace does not wait on the database. A stop does not
            # cut a claim off half way (it is a moment's write): cut off then, it would leave
            # a worker marked in doubt whom nothing was sent.
            claiming = asyncio.ensure_future(
                self.store.claim(broadcast.broadcast_id, worker_id, time.time())
            )
            try:
                claimed = await asyncio.shield(claiming)
            except asyncio.CancelledError:
                await asyncio.wait([claiming])
                if claiming.exception() is None and claiming.result():
                    # Nothing went out: the worker stays to be told at the next start.
                    await self.store.release(broadcast.broadcast_id, [worker_id])
                raise
            run.claiming.discard(worker_id)
            if not claimed:
                return  # another run is telling them
            try:
                await self.bot.send_message(
                    worker_id,
                    broadcast.text,
                    reply_markup=keyboard,
                    allow_paid_broadcast=True if broadcast.paid and self.paid_rate else None,
                    rate_limit_args=BULK,
                )
            except asyncio.CancelledError:
                # The bot is stopping and Telegram has not answered: perhaps told.
                run.pending.append(Delivery(worker_id, "unknown", "the bot stopped mid-send"))
                run.counts["unknown"] += 1
                raise
        except RetryAfter as error:
            # Telegram asks the whole bot to slow down: hold every send back, retry this one.
            # Not sent, so not in doubt: the claim goes until the retry claims them again.
            pacer.pause(retry_after_seconds(error))
            await self.store.release(broadcast.broadcast_id, [worker_id])
            run.retry.append(worker_id)
            run.counts["retried"] += 1
        except Forbidden as error:
            run.pending.append(Delivery(worker_id, "failed", str(error), unreachable=True))
            run.counts["unreachable"] += 1
        except TelegramError as error:
            status = failure(error)
            log.warning("announcement to %d: %s (%s)", worker_id, error, status)
            run.pending.append(Delivery(worker_id, status, str(error)))
            run.counts[status] += 1
        else:
            run.pending.append(Delivery(worker_id, "sent"))
            run.counts["sent"] += 1
        finally:
            slots.release()

    async def _wind_down(self, sending: set[asyncio.Task[None]]) -> None:
        """Waits a moment for the sends under way, then cuts off those still waiting on
        Telegram: each is counted unconfirmed (it may have arrived), never sent again."""
        if not sending:
            return
        _, late = await asyncio.shield(asyncio.wait(sending, timeout=self.stop_grace))
        for task in late:
            task.cancel()
        if late:
            await asyncio.shield(asyncio.wait(late))

    async def _flush(self, run: Run) -> None:
        done, run.pending = run.pending, []
        await self.store.record(run.broadcast.broadcast_id, done, time.time())

    async def _report(self, run: Run) -> None:
        """Edits the coordinator's progress message every few seconds while sending."""
        while True:
            await self._show_progress(run)
            await asyncio.sleep(self.progress_every)

    async def _show_progress(self, run: Run, *, final: bool = False) -> None:
        broadcast = run.broadcast
        if broadcast.created_by is None:
            return
        told = run.counts["sent"]
        elapsed = max(time.monotonic() - run.started, 1e-9)
        text = (
            f"{progress_title(broadcast.batch_id, final=final)}: {told} of"
            f" {plural(run.audience, 'worker')} told, {run.counts['unreachable']} unreachable"
            f" (blocked the bot), {run.counts['failed']} failed"
        )
        if run.counts["unknown"]:
            text += (
                f", {run.counts['unknown']} unconfirmed (perhaps told: the bot stopped or"
                " Telegram's answer was lost)"
            )
        text += "." if final else f" ({told / elapsed:.0f} per second)…"
        try:
            if broadcast.progress_message_id is None:
                message = await self.bot.send_message(broadcast.created_by, text)
                run.broadcast = broadcast = Broadcast(
                    broadcast.broadcast_id,
                    broadcast.batch_id,
                    broadcast.text,
                    broadcast.created_by,
                    broadcast.paid,
                    message.message_id,
                )
                await self.store.set_progress_message(broadcast.broadcast_id, message.message_id)
            else:
                await self.bot.edit_message_text(
                    text, broadcast.created_by, broadcast.progress_message_id
                )
        except TelegramError as error:  # unchanged text, or the coordinator is unreachable
            log.debug("progress of broadcast %d not shown: %s", broadcast.broadcast_id, error)


def progress_title(batch_id: int | None, *, final: bool) -> str:
    """What the coordinator's progress message is about, while it goes out and once done."""
    if batch_id is None:
        return "Your announcement was sent" if final else "Sending your announcement"
    return f"Batch {batch_id} announced" if final else f"Announcing batch {batch_id}"


def failure(error: TelegramError) -> str:
    """How a send that raised is recorded: 'unknown' when it may have been delivered all the
    same (its answer was lost), counted unconfirmed and never sent again, like a send a crash
    interrupted; else 'failed'."""
    if isinstance(error, NetworkError) and may_have_arrived("sendMessage", error):
        return "unknown"
    return "failed"
