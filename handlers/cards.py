"""How a task looks on a phone: the card's text and its buttons, and showing it."""

from __future__ import annotations

import asyncio
import logging
from html import escape
from pathlib import Path

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
)
from telegram.error import BadRequest
from telegram.ext import ExtBot

from handlers.callbacks import AnswerTap, NextTap, SkipTap, encode
from labeling.models import Task
from labeling.work import WorkService

log = logging.getLogger(__name__)

SKIP = "Skip ⏭"
NEXT = "Next task ▶"
NOTHING_LEFT = "Nothing left to label right now. I will message you when a new batch opens."


def task_text(task: Task, header: str | None = None, *, instructions: bool = False) -> str:
    """The card's text (HTML): what was just saved, the item, then the question."""
    parts = []
    if header:
        parts.append(escape(header))
    parts.append(f"<b>{escape(task.batch_name)}</b>")
    if instructions and task.instructions:
        parts.append(f"<i>{escape(task.instructions)}</i>")
    if task.text:
        parts.append(escape(task.text))
    question = f"<b>{escape(task.question)}</b>"
    if task.free_text:
        question += "\nReply with your answer in a message."
    parts.append(question)
    return "\n\n".join(parts)


def task_keyboard(task: Task) -> InlineKeyboardMarkup:
    """One button per option (two to a row when they are short) and a Skip."""
    rows: list[list[InlineKeyboardButton]] = []
    options = task.options or ()
    per_row = 2 if options and max(len(option) for option in options) <= 14 else 1
    for start in range(0, len(options), per_row):
        rows.append(
            [
                InlineKeyboardButton(option, callback_data=encode(AnswerTap(task.assignment_id, i)))
                for i, option in enumerate(options[start : start + per_row], start=start)
            ]
        )
    rows.append([InlineKeyboardButton(SKIP, callback_data=encode(SkipTap(task.assignment_id)))])
    return InlineKeyboardMarkup(rows)


def next_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(NEXT, callback_data=encode(NextTap()))]])


async def show_task(
    bot: ExtBot[None],
    work: WorkService,
    chat_id: int,
    task: Task | None,
    *,
    card: Message | None = None,
    header: str | None = None,
    instructions: bool = False,
) -> None:
    """Shows `task` by turning `card` into it when the kinds match (one call), else sends a
    new card and clears the old one's buttons."""
    if task is None:
        text = escape(f"{header}\n\n{NOTHING_LEFT}" if header else NOTHING_LEFT)
        if card is not None:
            await _edit_or_send(bot, chat_id, card, text)
        else:
            await bot.send_message(chat_id, text, parse_mode="HTML")
        return
    text = task_text(task, header, instructions=instructions)
    keyboard = task_keyboard(task)
    if card is not None and task.image is None and card.text is not None:
        await bot.edit_message_text(
            text, chat_id, card.message_id, parse_mode="HTML", reply_markup=keyboard
        )
        return
    if card is not None and task.image is not None and card.photo:
        media = InputMediaPhoto(await _photo_source(task), caption=text, parse_mode="HTML")
        sent = await bot.edit_message_media(media, chat_id, card.message_id, reply_markup=keyboard)
        await _remember_photo(work, task, sent)
        return
    if card is not None:
        await _clear_buttons(bot, chat_id, card)
    if task.image is None:
        await bot.send_message(chat_id, text, parse_mode="HTML", reply_markup=keyboard)
    else:
        sent = await bot.send_photo(
            chat_id,
            await _photo_source(task),
            caption=text,
            parse_mode="HTML",
            reply_markup=keyboard,
        )
        await _remember_photo(work, task, sent)


async def _photo_source(task: Task) -> str | bytes:
    """Telegram's file id once known; else the URL, or the local file's bytes (read off the
    event loop, so a slow disk never stalls other workers)."""
    if task.image_file_id:
        return task.image_file_id
    assert task.image is not None
    if task.image.startswith(("http://", "https://")):
        return task.image
    return await asyncio.to_thread(Path(task.image).read_bytes)


async def _remember_photo(work: WorkService, task: Task, sent: Message | bool) -> None:
    if task.image_file_id or not isinstance(sent, Message) or not sent.photo:
        return
    await work.remember_image(task.item_id, sent.photo[-1].file_id)


async def _edit_or_send(bot: ExtBot[None], chat_id: int, card: Message, text: str) -> None:
    if card.text is not None:
        await bot.edit_message_text(
            text, chat_id, card.message_id, parse_mode="HTML", reply_markup=next_keyboard()
        )
    else:
        await _clear_buttons(bot, chat_id, card)
        await bot.send_message(chat_id, text, parse_mode="HTML", reply_markup=next_keyboard())


async def _clear_buttons(bot: ExtBot[None], chat_id: int, card: Message) -> None:
    try:
        await bot.edit_message_reply_markup(chat_id, card.message_id, reply_markup=None)
    except BadRequest as error:  # already without buttons, or too old to edit
        log.debug("could not clear the buttons of message %s: %s", card.message_id, error)
