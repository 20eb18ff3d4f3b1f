"""How a task looks on a phone: the card's text and its buttons, and showing it."""

from __future__ import annotations

import asyncio
import logging
import time
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

from handlers.callbacks import (
    AnswerTap,
    DisputeTap,
    ExamTap,
    NextTap,
    ReportTap,
    SkipTap,
    Tap,
    encode,
)
from labeling.models import Closed, ExamQuestion, ExamResult, Problem, Task
from labeling.work import Shown, WorkService

log = logging.getLogger(__name__)

SKIP = "Skip ⏭"
REPORT = "Report problem ⚠"
BACK = "« Back to the task"
# The problems a worker can report, in the order of their buttons (callback choice 1, 2, 3).
PROBLEMS = {
    Problem.UNCLEAR: "Unclear: I cannot tell",
    Problem.BROKEN: "Broken or not loading",
    Problem.OFFENSIVE: "Offensive",
}
DISPUTE = "The answer looks wrong ⚑"
NEXT = "Next task ▶"
CONTINUE = "Continue ▶"
NOTHING_LEFT = "Nothing left to label right now. I will message you when a new batch opens."
# Ends a header that leads into the next task ("✓ Saved. Next task:"); dropped where none is.
NEXT_TASK = " Next task:"
CLOSED = "That is all of {batch} for you. Thank you for your work!"

Item = Task | ExamQuestion


def card_text(item: Item, header: str | None = None, *, instructions: bool = False) -> str:
    """The card's text (HTML): what just happened, the item, then the question."""
    parts = []
    if header:
        parts.append(escape(header))
    title = f"<b>{escape(item.batch_name)}</b>"
    if isinstance(item, ExamQuestion):
        title = f"<b>Training {item.number} of {item.total}</b> · {escape(item.batch_name)}"
        instructions = instructions or item.number == 1
    parts.append(title)
    if instructions and item.instructions:
        parts.append(f"<i>{escape(item.instructions)}</i>")
    if item.text:
        parts.append(escape(item.text))
    question = f"<b>{escape(item.question)}</b>"
    if item.options is None:
        question += "\nReply with your answer in a message."
    parts.append(question)
    return "\n\n".join(parts)


def card_keyboard(item: Item) -> InlineKeyboardMarkup:
    """One button per option (two to a row when they are short); a Skip for real tasks."""
    rows: list[list[InlineKeyboardButton]] = []
    options = item.options or ()
    per_row = 2 if options and max(len(option) for option in options) <= 14 else 1
    for start in range(0, len(options), per_row):
        rows.append(
            [
                InlineKeyboardButton(option, callback_data=encode(_tap(item, i)))
                for i, option in enumerate(options[start : start + per_row], start=start)
            ]
        )
    if isinstance(item, Task):
        rows.append(
            [
                InlineKeyboardButton(SKIP, callback_data=encode(SkipTap(item.assignment_id))),
                InlineKeyboardButton(REPORT, callback_data=encode(ReportTap(item.assignment_id))),
            ]
        )
    return InlineKeyboardMarkup(rows)


def fits(item: Item, card: Message) -> bool:
    """Whether the card can be turned into this item by an edit: text into text, a photo
    into a photo (Telegram cannot edit one kind into the other; show_task sends a new card
    then)."""
    return card.text is not None if item.image is None else bool(card.photo)


def problem_keyboard(assignment_id: int) -> InlineKeyboardMarkup:
    """The problems a worker can report about the task, one per row, and a way back."""
    rows = [
        [InlineKeyboardButton(label, callback_data=encode(ReportTap(assignment_id, choice)))]
        for choice, label in enumerate(PROBLEMS.values(), start=1)
    ]
    rows.append([InlineKeyboardButton(BACK, callback_data=encode(ReportTap(assignment_id, 0)))])
    return InlineKeyboardMarkup(rows)


def reported_problem(choice: int) -> Problem | None:
    """The problem a report button's choice names, or None for anything else."""
    problems = list(PROBLEMS)
    return problems[choice - 1] if 1 <= choice <= len(problems) else None


def _tap(item: Item, option: int) -> Tap:
    if isinstance(item, ExamQuestion):
        return ExamTap(item.attempt_id, item.item_id, option)
    return AnswerTap(item.assignment_id, option)


def next_keyboard(label: str = NEXT) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=encode(NextTap()))]])


def feedback_keyboard(
    result: ExamResult, attempt_id: int, item_id: int
) -> InlineKeyboardMarkup | None:
    """Under training feedback: the way on, and after a miss a way to dispute the answer."""
    rows = []
    if result.passed or not result.finished:
        label = "Start labeling ▶" if result.passed else CONTINUE
        rows.append([InlineKeyboardButton(label, callback_data=encode(NextTap()))])
    if not result.correct:
        tap = DisputeTap(attempt_id, item_id)
        rows.append([InlineKeyboardButton(DISPUTE, callback_data=encode(tap))])
    return InlineKeyboardMarkup(rows) if rows else None


def without_dispute(keyboard: InlineKeyboardMarkup | None) -> InlineKeyboardMarkup | None:
    """The same buttons, the dispute taken away once used."""
    if keyboard is None:
        return None
    rows = [
        row
        for row in keyboard.inline_keyboard
        if not any(str(button.callback_data or "").startswith("d:") for button in row)
    ]
    return InlineKeyboardMarkup(rows) if rows else None


def exam_feedback(result: ExamResult) -> str:
    """What the worker learns from an exam answer: the right answer when they missed, and
    the verdict after the last question."""
    parts = []
    if not result.correct and result.right_answer is not None:
        parts.append(f"✗ Not quite: the right answer is “{result.right_answer}”.")
        if result.explanation:
            parts.append(result.explanation)
    elif result.right_answer is not None:
        parts.append("✓ Correct.")
    if result.finished:
        parts.append(exam_verdict(result))
    return "\n\n".join(parts)


def no_task_text(shown: ExamResult | Closed | None) -> str:
    """Why there is no task to show."""
    if isinstance(shown, Closed):
        return f"{CLOSED.format(batch=shown.batch_name)}\n\n{NOTHING_LEFT}"
    if isinstance(shown, ExamResult):
        return exam_verdict(shown)
    return NOTHING_LEFT


def exam_verdict(result: ExamResult) -> str:
    if result.passed:
        return (
            f"Training done: {result.score} of {result.total} right. "
            f"Welcome to {result.batch_name}!"
        )
    score = f"{result.score} of {result.total} right. " if result.total else ""
    if result.retry_at is None:
        return (
            f"Training for {result.batch_name}: {score}That is below the pass mark, so "
            "this batch stays closed to you. Thank you for trying!"
        )
    wait = max(1, round((result.retry_at - time.time()) / 60))
    return (
        f"Training for {result.batch_name}: {score}That is below the pass mark. You can "
        f"try again in about {wait} minute{'s' if wait != 1 else ''} with /next."
    )


class CardRefused(Exception):
    """Telegram refused a card for what it shows (an image it cannot fetch or read, text it
    will not take), or the item's image file is gone: the item cannot be shown to anyone."""


# Refusals that are about the chat, not the card: the item is not to blame for them.
_CHAT_REFUSALS = ("chat not found",)
# A worker meets at most this many unshowable items in a row before being told to try again:
# a batch of dead links must not keep one worker's handler sending forever.
MAX_REFUSED_IN_A_ROW = 5
TRY_AGAIN = "That task could not be shown. Send /next for another one."


async def show_task(
    bot: ExtBot[None],
    work: WorkService,
    chat_id: int,
    shown: Shown,
    *,
    card: Message | None = None,
    header: str | None = None,
    instructions: bool = False,
) -> None:
    """Shows a task or exam question by turning `card` into it when the kinds match (one
    call), else sends a new card and clears the old one's buttons; or says why there is none.
    A task whose card Telegram refuses is taken out as broken and the next one shown instead,
    so no worker waits on a card that can never arrive."""
    for _ in range(MAX_REFUSED_IN_A_ROW):
        try:
            await _show_once(
                bot, work, chat_id, shown, card=card, header=header, instructions=instructions
            )
            return
        except CardRefused as error:
            if not isinstance(shown, Task):
                raise
            log.warning(
                "item %s of batch %s cannot be shown (%s); taken out as broken",
                shown.item_id,
                shown.batch_id,
                error,
            )
            shown = await work.unshowable(chat_id, shown)
    await show_text(bot, chat_id, escape(TRY_AGAIN), next_keyboard(), card=card)


async def _show_once(
    bot: ExtBot[None],
    work: WorkService,
    chat_id: int,
    shown: Shown,
    *,
    card: Message | None,
    header: str | None,
    instructions: bool,
) -> None:
    if shown is None or isinstance(shown, ExamResult | Closed):
        text = no_task_text(shown)
        header = header.removesuffix(NEXT_TASK) if header else header
        text = escape(f"{header}\n\n{text}" if header else text)
        await show_text(bot, chat_id, text, next_keyboard(), card=card)
        return
    text = card_text(shown, header, instructions=instructions)
    keyboard = card_keyboard(shown)
    photo = None if shown.image is None else await _photo_source(shown)
    if card is not None:
        try:
            if await _edit_card(bot, work, chat_id, card, shown, text, keyboard, photo):
                return
        except BadRequest as error:
            if "not modified" in error.message:
                raise  # a double tap: the card shows this already
            # Too old to edit, deleted, or refused: sending it anew tells which.
            log.info("card %s not edited (%s); sending a new one", card.message_id, error)
        await _clear_buttons(bot, chat_id, card)
    try:
        if photo is None:
            await bot.send_message(chat_id, text, parse_mode="HTML", reply_markup=keyboard)
            return
        sent = await bot.send_photo(
            chat_id, photo, caption=text, parse_mode="HTML", reply_markup=keyboard
        )
    except BadRequest as error:
        if any(reason in error.message.lower() for reason in _CHAT_REFUSALS):
            raise
        raise CardRefused(error.message) from error
    await _remember_photo(work, shown, sent)


async def _edit_card(
    bot: ExtBot[None],
    work: WorkService,
    chat_id: int,
    card: Message,
    item: Item,
    text: str,
    keyboard: InlineKeyboardMarkup,
    photo: str | bytes | None,
) -> bool:
    """Turns the card into `item` in one call when their kinds match; False when they do not."""
    if photo is None and card.text is not None:
        await bot.edit_message_text(
            text, chat_id, card.message_id, parse_mode="HTML", reply_markup=keyboard
        )
        return True
    if photo is not None and card.photo:
        media = InputMediaPhoto(photo, caption=text, parse_mode="HTML")
        sent = await bot.edit_message_media(media, chat_id, card.message_id, reply_markup=keyboard)
        await _remember_photo(work, item, sent)
        return True
    return False


async def show_text(
    bot: ExtBot[None],
    chat_id: int,
    text: str,
    keyboard: InlineKeyboardMarkup | None,
    *,
    card: Message | None = None,
) -> None:
    """Turns a text card into a message (HTML), or sends it when the card is a photo."""
    if card is not None and card.text is not None:
        await bot.edit_message_text(
            text, chat_id, card.message_id, parse_mode="HTML", reply_markup=keyboard
        )
        return
    if card is not None:
        await _clear_buttons(bot, chat_id, card)
    await bot.send_message(chat_id, text, parse_mode="HTML", reply_markup=keyboard)


async def _photo_source(item: Item) -> str | bytes:
    """Telegram's file id once known; else the URL, or the local file's bytes (read off the
    event loop, so a slow disk never stalls other workers)."""
    if item.image_file_id:
        return item.image_file_id
    assert item.image is not None
    if item.image.startswith(("http://", "https://")):
        return item.image
    try:
        return await asyncio.to_thread(Path(item.image).read_bytes)
    except OSError as error:  # moved or deleted since the import
        raise CardRefused(f"image file unreadable: {error.strerror}") from error


async def _remember_photo(work: WorkService, item: Item, sent: Message | bool) -> None:
    if item.image_file_id or not isinstance(sent, Message) or not sent.photo:
        return
    await work.remember_image(item.item_id, sent.photo[-1].file_id)


async def _clear_buttons(bot: ExtBot[None], chat_id: int, card: Message) -> None:
    try:
        await bot.edit_message_reply_markup(chat_id, card.message_id, reply_markup=None)
    except BadRequest as error:  # already without buttons, or too old to edit
        log.debug("could not clear the buttons of message %s: %s", card.message_id, error)
