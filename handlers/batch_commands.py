"""Coordinator commands that run batches: upload, list, publish, pause, resume, close,
export and announce."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from telegram import Update
from telegram.error import BadRequest

from handlers import files as sending
from handlers.context import LabelContext
from handlers.coordinating import Usage, batch_argument, reply
from handlers.files import fit
from labeling.admin import Action
from labeling.batchfile import BatchFileError
from labeling.caption import CaptionError, read_caption
from labeling.export import FORMATS, WHATS, Format, What
from labeling.importing import AlreadyImported
from labeling.report import format_batch_line, format_status

MAX_DOWNLOAD = 20 * 1024 * 1024  # bots may download files up to 20 MB
UPLOAD_TYPES = (".csv", ".txt", ".jsonl", ".ndjson", ".json")

CHART_CAPTION = (
    "Batch {}: answers counted over time (top) and workers by accuracy on gold (bottom);"
    " times in UTC."
)


async def batches_command(update: Update, context: LabelContext) -> None:
    """Lists batches with their state."""
    summaries = await context.services.batches.overview()
    lines = [format_batch_line(summary) for summary in summaries]
    await reply(update, "\n".join(lines) or "No batches yet. Send a batch file to upload one.")


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


async def pause_command(update: Update, context: LabelContext) -> None:
    """Stops handing out a batch's tasks."""
    await reply(update, await _change_state(update, context, "pause"))


async def resume_command(update: Update, context: LabelContext) -> None:
    """Hands out a paused batch's tasks again and tells its workers it is back."""
    done = await _change_state(update, context, "resume")
    await reply(update, f"{done} Telling its workers it is back; progress follows.")


async def close_command(update: Update, context: LabelContext) -> None:
    """Ends a batch for good."""
    await reply(update, await _change_state(update, context, "close"))


async def export_command(update: Update, context: LabelContext) -> None:
    """Sends a batch's labels, answers or workers as a file."""
    batch_id, rest = batch_argument(context, extra=2)
    # The first argument naming each, taken from WHATS and FORMATS: the words export() takes.
    what: What = next((what for arg in rest for what in WHATS if arg == what), "labels")
    fmt: Format = next((fmt for arg in rest for fmt in FORMATS if arg == fmt), "csv")
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
            summary = await context.services.batches.export(batch_id, what, fmt, out)
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
