"""What coordinators do in the chat: upload batches, publish, watch, pay and export.

Every command checks the sender each time; anyone else gets the same answer an unknown
command gets, and the attempt is logged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from telegram import Update
from telegram.constants import MessageLimit
from telegram.error import BadRequest
from telegram.ext import CommandHandler, MessageHandler, filters

from handlers import files as sending
from handlers.context import LabelApplication, LabelContext
from handlers.files import fit
from handlers.worker import unknown
from labeling.admin import Action, NotAllowed
from labeling.batches import TRANSITIONS, AlreadyImported, BatchStateError
from labeling.batchfile import BatchFileError
from labeling.caption import CaptionError, read_caption
from labeling.export import FORMATS, WHATS
from labeling.models import BatchNotFound
from labeling.report import format_batch_line, format_status, format_worker, pages
from labeling.review import ItemNotFound, Review, ReviewError, format_problem

log = logging.getLogger(__name__)

MAX_DOWNLOAD = 20 * 1024 * 1024  # bots may download files up to 20 MB
MAX_ID = 2**53
UPLOAD_TYPES = (".csv", ".txt", ".jsonl", ".ndjson", ".json")

USAGE = {
    "batches": "/batches - every batch and its state",
    "status": "/status N - progress, quality and pay of batch N, with a chart",
    "publish": "/publish N [paid] - open batch N and tell every active worker (paid: owners only)",
    "pause": "/pause N - stop handing out batch N's tasks",
    "resume": "/resume N - hand them out again",
    "close": "/close N - end batch N for good",
    "export": "/export N [labels|answers|workers] [csv|jsonl] - results as a file",
    "broadcast": "/broadcast TEXT - a message to every active worker",
    "workers": (
        "/workers [N [PAGE]] - workers with their answers, accuracy and earnings; with N,"
        " each one's standing in batch N (suspended first, why, gold accuracy)"
    ),
    "reinstate": "/reinstate N WORKER - let a suspended worker back into batch N (they are told)",
    "ban": "/ban WORKER_ID [reason] - stop a worker in every batch (a coordinator: owners only)",
    "unban": "/unban WORKER_ID [reason] - let them work again",
    "promote": "/promote USER_ID - make someone a coordinator (owners only)",
    "demote": "/demote USER_ID - take that back (owners only)",
    "reports": "/reports N - items workers reported, broken items and suspect gold in batch N",
    "gold": "/gold N ITEM ANSWER - correct a gold item's answer (ITEM: your id, or #number)",
    "dropgold": "/dropgold N ITEM - make a gold item an ordinary one",
    "restore": "/restore N ITEM - put a broken item or suspect gold back into circulation",
}
HELP = (
    "Coordinator commands. To upload a batch, send a .csv, .jsonl or .json file with its"
    " settings as 'key: value' lines in the caption (at least 'question: ...';"
    " e.g. 'options: yes, no', 'overlap: 3', 'reward: 0.05'). A file imported before is"
    " imported again as a new batch with 'again: yes' in the caption.\n\n"
    + "\n".join(USAGE.values())
)

CHART_CAPTION = (
    "Batch {}: answers counted over time (top) and workers by accuracy on gold (bottom);"
    " times in UTC."
)

Handler = Callable[[Update, LabelContext], Awaitable[None]]


class Usage(Exception):
    """Wrong or missing arguments: the command's usage line is the answer."""


def coordinators_only(handler: Handler) -> Handler:
    """Runs `handler` only for a coordinator, checked on every call; what only an owner may
    do is checked again where it is done (labeling.admin)."""

    @functools.wraps(handler)
    async def guarded(update: Update, context: LabelContext) -> None:
        user = update.effective_user
        if user is None or not await context.services.admin.is_coordinator(user.id):
            text = update.effective_message.text if update.effective_message else None
            log.warning(
                "user %s is not a coordinator; refused %r",
                user.id if user else "?",
                (text or "a file")[:100],
            )
            await unknown(update, context)
            return
        name = handler.__name__.removesuffix("_command")
        try:
            await handler(update, context)
        except Usage:
            await reply(update, f"Usage: {USAGE.get(name, HELP)}")
        except BatchNotFound as error:
            await reply(update, f"There is no batch {error.args[0]}.")
        except BatchStateError as error:
            await reply(update, f"Cannot do that: {error}.")
        except ItemNotFound as error:
            await reply(update, f"That batch has no item {error.args[0]}.")
        except ReviewError as error:
            await reply(update, f"Cannot do that: {error}.")
        except NotAllowed as error:
            log.warning("coordinator %s refused %s: %s", user.id, name, error)
            await reply(update, str(error))

    return guarded


async def reply(update: Update, text: str) -> None:
    assert update.effective_message is not None
    if len(text) > MessageLimit.MAX_TEXT_LENGTH:
        text = text[: MessageLimit.MAX_TEXT_LENGTH - 20] + "\n… (cut short)"
    await update.effective_message.reply_text(text)


def number(text: str) -> int:
    # isdigit alone admits digits of other scripts, and int() would take them.
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < MAX_ID:
        raise Usage
    return int(text)


def batch_argument(context: LabelContext, *, extra: int = 0) -> tuple[int, list[str]]:
    args = context.args or []
    if not args or len(args) > 1 + extra:
        raise Usage
    return number(args[0]), args[1:]


@coordinators_only
async def help_coordinator(update: Update, context: LabelContext) -> None:
    """Lists the coordinator commands."""
    await reply(update, HELP)


@coordinators_only
async def batches_command(update: Update, context: LabelContext) -> None:
    """Lists batches with their state."""
    summaries = await context.services.batches.overview()
    lines = [format_batch_line(summary) for summary in summaries]
    await reply(update, "\n".join(lines) or "No batches yet. Send a batch file to upload one.")


@coordinators_only
async def status_command(update: Update, context: LabelContext) -> None:
    """Reports a batch's progress, quality and pay, with a chart."""
    batch_id, _ = batch_argument(context)
    batches = context.services.batches
    summary = (await batches.status(batch_id))[0]
    chart = await batches.chart(summary)
    text = format_status(summary)
    if chart is None:
        text += "\nNo chart: nothing has been answered yet."
    await reply(update, text)
    if chart is not None:
        assert update.effective_message is not None
        await update.effective_message.reply_photo(chart, caption=CHART_CAPTION.format(batch_id))


@coordinators_only
async def publish_command(update: Update, context: LabelContext) -> None:
    """Opens a batch and announces it to every active worker."""
    batch_id, rest = batch_argument(context, extra=1)
    if rest and rest != ["paid"]:
        raise Usage
    assert update.effective_user is not None
    paid = bool(rest)
    if paid:
        await context.services.admin.authorize(update.effective_user.id, Action.PAID_BROADCAST)
    if paid and not context.services.paid_broadcasts:
        await reply(update, "Paid broadcasts are off: set PAID_BROADCAST_RATE to use them.")
        return
    summary = await context.services.batches.publish(
        batch_id, by=update.effective_user.id, paid=paid
    )
    text = f"Batch {batch_id} is open. Telling every active worker; progress follows."
    if summary.pay is not None and summary.pay.below_minimum:
        text += f"\nNote: expected pay {summary.pay.describe()}."
    await reply(update, text)


async def _change_state(update: Update, context: LabelContext, action: str) -> str:
    batch_id, _ = batch_argument(context)
    assert update.effective_user is not None
    state = await context.services.batches.change_state(
        batch_id, action, by=update.effective_user.id
    )
    return f"Batch {batch_id} is now {state}."


@coordinators_only
async def pause_command(update: Update, context: LabelContext) -> None:
    """Stops handing out a batch's tasks."""
    await reply(update, await _change_state(update, context, "pause"))


@coordinators_only
async def resume_command(update: Update, context: LabelContext) -> None:
    """Hands out a paused batch's tasks again and tells its workers it is back."""
    done = await _change_state(update, context, "resume")
    await reply(update, f"{done} Telling its workers it is back; progress follows.")


@coordinators_only
async def close_command(update: Update, context: LabelContext) -> None:
    """Ends a batch for good."""
    await reply(update, await _change_state(update, context, "close"))


@coordinators_only
async def export_command(update: Update, context: LabelContext) -> None:
    """Sends a batch's labels, answers or workers as a file."""
    batch_id, rest = batch_argument(context, extra=2)
    what = next((arg for arg in rest if arg in WHATS), "labels")
    fmt = next((arg for arg in rest if arg in FORMATS), "csv")
    if any(arg not in WHATS and arg not in FORMATS for arg in rest):
        raise Usage
    filename = f"batch-{batch_id}-{what}.{fmt}"
    message = update.effective_message
    assert message is not None
    # Written page by page to disk, then packed in a thread: a million answers never sit in
    # memory, and the bot goes on answering workers meanwhile.
    with tempfile.TemporaryDirectory(prefix="labelbot-export-") as folder:
        path = Path(folder) / filename
        with path.open("w", encoding="utf-8", newline="") as out:
            summary = await context.services.batches.export(batch_id, what, fmt, out)  # type: ignore[arg-type]
        files = await asyncio.to_thread(
            fit, path, plain=sending.MAX_PLAIN, limit=sending.MAX_UPLOAD
        )
        caption = summary.describe()
        if len(files) > 1:
            caption = (
                f"{caption}\nToo large for one file: {len(files)} parts. Join them with"
                f" `cat {filename}.gz.part* > {filename}.gz`, or use"
                f" `labelbot export {batch_id}` on the server."
            )
            await reply(update, caption)
        for number, file in enumerate(files, start=1):
            text = caption if len(files) == 1 else f"Part {number} of {len(files)}"
            with file.open("rb") as data:
                await message.reply_document(data, filename=file.name, caption=text[:1024])


@coordinators_only
async def broadcast_command(update: Update, context: LabelContext) -> None:
    """Sends an announcement to every active worker."""
    message = update.effective_message
    assert message is not None and message.text is not None and update.effective_user
    # The text starts after the command, whatever white space parts them (a new line, too).
    command_and_text = message.text.split(maxsplit=1)
    text = command_and_text[1].strip() if len(command_and_text) == 2 else ""
    if not text:
        raise Usage
    if len(text) > 3500:
        await reply(update, "That announcement is too long: keep it under 3500 characters.")
        return
    source = f"{message.chat_id}:{message.message_id}"
    if await context.services.batches.announce(text, by=update.effective_user.id, source=source):
        await reply(update, "Announcement queued for every active worker; progress follows.")
    else:  # the same message, delivered again
        await reply(update, "That announcement is queued already.")


@coordinators_only
async def workers_command(update: Update, context: LabelContext) -> None:
    """Lists workers with their answers, accuracy and earnings; or their standing in a batch."""
    if context.args:
        await _standings(update, context)
        return
    rows = await context.services.batches.workers(limit=60)
    lines = [format_worker(row, context.services.currency) for row in rows]
    footer = "\n\nThe whole list: /export N workers" if len(rows) == 60 else ""
    await reply(update, ("\n".join(lines) or "No workers yet.") + footer)


async def _standings(update: Update, context: LabelContext) -> None:
    """Each worker's standing in one batch, a page at a time."""
    batch_id, rest = batch_argument(context, extra=1)
    page = number(rest[0]) if rest else 1
    lines = await context.services.batches.standing_lines(batch_id)
    if not lines:
        await reply(update, f"Batch {batch_id}: no worker has had a task yet.")
        return
    header = f"Batch {batch_id}: the standing of {len(lines)} workers, those shut out first."
    reinstate = f"Let a suspended worker back in: /reinstate {batch_id} WORKER"
    # Room for the longest footer: page numbers and the next page's command.
    room = MessageLimit.MAX_TEXT_LENGTH - len(header) - len(reinstate) - 80
    split = pages(lines, room)
    if page > len(split):
        raise Usage
    where = f"Page {page} of {len(split)}"
    if page < len(split):
        where += f"; the next: /workers {batch_id} {page + 1}"
    await reply(update, f"{header}\n\n{split[page - 1]}\n\n{where}. {reinstate}")


@coordinators_only
async def reinstate_command(update: Update, context: LabelContext) -> None:
    """Lets a suspended worker back into a batch; the worker is told."""
    batch_id, rest = batch_argument(context, extra=1)
    if len(rest) != 1:
        raise Usage
    worker_id = number(rest[0])
    assert update.effective_user is not None
    work = context.services.work
    if await work.reinstate(worker_id, batch_id, by=update.effective_user.id):
        await reply(
            update,
            f"Worker {worker_id} may work on batch {batch_id} again; their answers count,"
            " and they have been told.",
        )
    else:
        await reply(update, f"Worker {worker_id} is not suspended from batch {batch_id}.")


async def _worker_action(update: Update, context: LabelContext, ban: bool) -> None:
    args = context.args or []
    if not args:
        raise Usage
    worker_id = number(args[0])
    reason = " ".join(args[1:])[:500] or None
    assert update.effective_user is not None
    admin = context.services.admin
    action = admin.ban if ban else admin.unban
    if await action(worker_id, update.effective_user.id, reason):
        done = "banned from every batch" if ban else "may work again"
        await reply(update, f"Worker {worker_id} {done}.")
    else:
        state = "already banned" if ban else "not banned"
        await reply(update, f"Worker {worker_id} is unknown or {state}.")


@coordinators_only
async def ban_command(update: Update, context: LabelContext) -> None:
    """Stops a worker in every batch, with a reason for the log."""
    await _worker_action(update, context, ban=True)


@coordinators_only
async def unban_command(update: Update, context: LabelContext) -> None:
    """Lets a banned worker work again."""
    await _worker_action(update, context, ban=False)


async def _role_action(update: Update, context: LabelContext, promote: bool) -> None:
    args = context.args or []
    if len(args) != 1:
        raise Usage
    assert update.effective_user is not None
    user_id = number(args[0])
    admin = context.services.admin
    action = admin.promote if promote else admin.demote
    if await action(user_id, update.effective_user.id):
        done = "is now a coordinator" if promote else "is no longer a coordinator"
        await reply(update, f"{user_id} {done}.")
    else:
        state = "already a coordinator" if promote else "not a promoted coordinator"
        await reply(update, f"{user_id} is {state}.")


@coordinators_only
async def promote_command(update: Update, context: LabelContext) -> None:
    """Makes someone a coordinator."""
    await _role_action(update, context, promote=True)


@coordinators_only
async def demote_command(update: Update, context: LabelContext) -> None:
    """Takes coordinator rights back from someone who was promoted."""
    await _role_action(update, context, promote=False)


@coordinators_only
async def reports_command(update: Update, context: LabelContext) -> None:
    """Lists the items workers reported, broken items and suspect gold of a batch."""
    batch_id, _ = batch_argument(context)
    problems = await context.services.review.problems(batch_id)
    if not problems:
        await reply(update, f"Batch {batch_id}: no reports and no suspect gold.")
        return
    lines = [format_problem(problem) for problem in problems[:40]]
    more = f"\n… and {len(problems) - 40} more: labelbot reports" if len(problems) > 40 else ""
    await reply(
        update,
        f"Batch {batch_id}, items with problems:\n" + "\n".join(lines) + more + "\n\n"
        "Act with /gold, /dropgold or /restore.",
    )


@coordinators_only
async def gold_command(update: Update, context: LabelContext) -> None:
    """Corrects a gold item's answer; every worker's record is recomputed."""
    batch_id, rest = batch_argument(context, extra=50)
    if len(rest) < 2:
        raise Usage
    review = await context.services.review.correct_gold(batch_id, rest[0], " ".join(rest[1:]))
    await reply(update, f"Gold answer of {rest[0]} corrected; {review.describe()}.")


async def _review_item(
    update: Update,
    context: LabelContext,
    action: Callable[[int, str], Awaitable[Review]],
    done: str,
) -> None:
    batch_id, rest = batch_argument(context, extra=1)
    if len(rest) != 1:
        raise Usage
    review = await action(batch_id, rest[0])
    await reply(update, f"{rest[0]} {done}; {review.describe()}.")


@coordinators_only
async def dropgold_command(update: Update, context: LabelContext) -> None:
    """Turns a gold item into an ordinary one; every worker's record is recomputed."""
    await _review_item(
        update, context, context.services.review.drop_gold, "is an ordinary item now"
    )


@coordinators_only
async def restore_command(update: Update, context: LabelContext) -> None:
    """Puts a broken item or suspect gold back into circulation."""
    await _review_item(update, context, context.services.review.restore, "is back in circulation")


@coordinators_only
async def upload(update: Update, context: LabelContext) -> None:
    """Validates a batch file sent as a document and stores it as a draft batch."""
    message = update.effective_message
    assert message is not None and message.document is not None and update.effective_user
    document = message.document
    name = document.file_name or "batch.csv"
    if not name.lower().endswith(UPLOAD_TYPES):
        await reply(update, "Send the batch as a .csv, .jsonl or .json file.")
        return
    if document.file_size is not None and document.file_size > MAX_DOWNLOAD:
        await reply(
            update,
            "That file is over Telegram's 20 MB limit for bots: split it into several batches.",
        )
        return
    try:
        caption = read_caption(message.caption, Path(name).stem[:100] or "batch")
    except CaptionError as error:
        await reply(update, "The caption has problems; nothing was stored:\n" + str(error))
        return
    try:
        file = await context.bot.get_file(document.file_id)
        content = bytes(await file.download_as_bytearray())
    except BadRequest as error:
        await reply(update, f"Telegram would not hand over that file: {error.message}")
        return
    try:
        imported = await context.services.batches.import_file(
            content,
            name,
            caption.settings,
            created_by=update.effective_user.id,
            source_file=document.file_unique_id,
            # The update's id: the same message delivered again is still refused.
            again=str(update.update_id) if caption.again else None,
        )
    except AlreadyImported as error:
        await reply(
            update,
            f"Nothing new: {error}. To import it again as a new batch, send it with"
            " 'again: yes' in the caption.",
        )
        return
    except BatchFileError as error:
        await reply(update, "The file was not imported; nothing was stored:\n" + error.describe())
        return
    await reply(update, f"{imported.describe()}\nSend /publish {imported.batch_id} to open it.")


COMMANDS: dict[str, Handler] = {
    "batches": batches_command,
    "status": status_command,
    "publish": publish_command,
    "pause": pause_command,
    "resume": resume_command,
    "close": close_command,
    "export": export_command,
    "broadcast": broadcast_command,
    "workers": workers_command,
    "reinstate": reinstate_command,
    "ban": ban_command,
    "unban": unban_command,
    "promote": promote_command,
    "demote": demote_command,
    "reports": reports_command,
    "gold": gold_command,
    "dropgold": dropgold_command,
    "restore": restore_command,
    "coordinator": help_coordinator,
}
assert set(COMMANDS) - {"coordinator"} == set(USAGE) and set(TRANSITIONS) <= set(USAGE)


def register(application: LabelApplication) -> None:
    private = filters.ChatType.PRIVATE
    application.add_handlers(
        [CommandHandler(name, handler, filters=private) for name, handler in COMMANDS.items()]
        + [MessageHandler(private & filters.Document.ALL, upload)]
    )
