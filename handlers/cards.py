"""How a task looks on a phone: the card's text and its buttons, and showing it."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from dataclasses import replace
from datetime import UTC, datetime
from html import escape, unescape
from pathlib import Path

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
)
from telegram.error import BadRequest

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
from handlers.context import LabelBot
from labeling.batch import REREAD_HINT
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
# Telegram's limits on a message's text and a picture's caption.
MAX_TEXT = 4096
MAX_CAPTION = 1024


def card_text(item: Item, header: str | None = None, *, instructions: bool = False) -> str:
    """The card's text (HTML): what just happened, the item, then the question. The batch's
    instructions come on the card where the worker starts on the batch (its first task, or
    the first training question), whichever way they came in, and when asked for."""
    parts = []
    if header:
        parts.append(escape(header))
    title = f"<b>{escape(item.batch_name)}</b>"
    if isinstance(item, ExamQuestion):
        title = f"<b>Training {item.number} of {item.total}</b> · {escape(item.batch_name)}"
        instructions = instructions or item.number == 1
        if item.number == 1 and item.pass_mark:
            title += "\n" + escape(exam_intro(item))
    else:
        instructions = instructions or item.opens_batch
    parts.append(title)
    if instructions and item.instructions:
        note = f"<i>{escape(item.instructions)}</i>"
        if isinstance(item, Task):  # /instructions reads those of the open task
            note += f"\n{escape(REREAD_HINT)}"
        parts.append(note)
    if item.text:
        parts.append(escape(item.text))
    question = f"<b>{escape(item.question)}</b>"
    hint = item.kind.card().hint  # how to answer, where the buttons do not say
    if hint:
        question += f"\n{escape(hint)}"
    parts.append(question)
    return "\n\n".join(parts)


def card_keyboard(item: Item) -> InlineKeyboardMarkup:
    """The task kind's buttons (for a choice, one per option, two to a row when they are
    short); a Skip for real tasks."""
    rows = [
        [
            InlineKeyboardButton(button.label, callback_data=encode(_tap(item, button.payload)))
            for button in row
        ]
        for row in item.kind.card().rows
    ]
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


def exam_intro(question: ExamQuestion) -> str:
    """What the worker is told before the first question: how many, and how many to pass."""
    return (
        f"Training: {_counted(question.total, 'question')}; pass with {question.pass_mark} right."
    )


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


def exam_feedback_card(result: ExamResult) -> str:
    """The answered question's card (HTML) with the feedback under it: the item stays in view
    while the worker reads why the answer was right or wrong."""
    feedback = escape(exam_feedback(result))
    if result.question is None:
        return feedback
    # The item alone: the instructions and the pass mark were read with the question.
    item = replace(result.question, instructions=None, pass_mark=0)
    return f"{card_text(item)}\n\n{feedback}"


async def show_exam_feedback(
    bot: LabelBot,
    chat_id: int,
    result: ExamResult,
    keyboard: InlineKeyboardMarkup | None,
    *,
    card: Message | None,
) -> None:
    """Puts an exam answer's feedback on the card of its question, the item kept in view (a
    picture stays: only its caption changes); sends the whole card anew when that card cannot
    be edited (too old, or not at hand)."""
    text = exam_feedback_card(result)
    item = result.question
    if not _fits(text, caption=item is not None and item.image is not None):
        # Too long to go with the item: the card keeps showing it, the feedback follows.
        if card is not None:
            await _clear_buttons(bot, chat_id, card.message_id)
        feedback = escape(exam_feedback(result))
        await bot.send_message(chat_id, feedback, parse_mode="HTML", reply_markup=keyboard)
        return
    if card is not None:
        try:
            if card.photo:
                await bot.edit_message_caption(
                    chat_id, card.message_id, caption=text, parse_mode="HTML", reply_markup=keyboard
                )
            else:
                await bot.edit_message_text(
                    text, chat_id, card.message_id, parse_mode="HTML", reply_markup=keyboard
                )
            return
        except BadRequest as error:
            if "not modified" in error.message:
                return  # a double tap: the card shows it already
            log.info("card %s not edited (%s); sending the feedback anew", card.message_id, error)
        await _clear_buttons(bot, chat_id, card.message_id)
    if item is not None and item.image is not None:
        photo = await _photo_source(item)
        await bot.send_photo(chat_id, photo, caption=text, parse_mode="HTML", reply_markup=keyboard)
        return
    await bot.send_message(chat_id, text, parse_mode="HTML", reply_markup=keyboard)


def _fits(html: str, *, caption: bool) -> bool:
    """Whether Telegram takes this HTML as a message's text (or a picture's caption): it
    counts the text shown, in UTF-16 code units. Our markup is tags around escaped text."""
    shown = unescape(re.sub(r"<[^>]*>", "", html))
    return len(shown.encode("utf-16-le")) // 2 <= (MAX_CAPTION if caption else MAX_TEXT)


def no_task_text(shown: ExamResult | Closed | None) -> str:
    """Why there is no task to show."""
    if isinstance(shown, Closed):
        return f"{CLOSED.format(batch=shown.batch_name)}\n\n{NOTHING_LEFT}"
    if isinstance(shown, ExamResult):
        return exam_verdict(shown)
    return NOTHING_LEFT


def exam_verdict(result: ExamResult) -> str:
    """The outcome of a finished exam: the score always (also when a worker asks again before
    the retry time), the mark it fell short of, and when to come back."""
    if result.passed:
        return (
            f"Training done: {result.score} of {result.total} right. "
            f"Welcome to {result.batch_name}!"
        )
    score = "That is below the pass mark."
    if result.total:
        score = f"{result.score} of {result.total} right; you need {result.pass_mark} to pass."
    verdict = f"Training for {result.batch_name}: {score}"
    if result.retry_at is None:
        return f"{verdict} This batch stays closed to you. Thank you for trying!"
    when = come_back(result.retry_at, time.time())
    return f"{verdict} You can try again {when} with /next."


def come_back(moment: float, now: float) -> str:
    """When `moment` comes, in words and as a clock time in UTC: "in about 30 minutes (at
    14:35 UTC)". The clock is rounded up to the minute, so that a worker who comes back at the
    time said is not turned away again."""
    seconds = moment - now
    if seconds <= 0:
        return "now"
    minutes = seconds / 60
    if minutes < 1:
        words = "in under a minute"
    elif minutes < 90:
        words = f"in about {_counted(round(minutes), 'minute')}"
    elif minutes < 36 * 60:
        words = f"in about {_counted(round(minutes / 60), 'hour')}"
    else:
        words = f"in about {_counted(round(minutes / 1440), 'day')}"
    at = datetime.fromtimestamp(math.ceil(moment / 60) * 60, UTC)
    clock = f"{at:%H:%M} UTC"
    days = (at.date() - datetime.fromtimestamp(now, UTC).date()).days
    if days == 1:
        clock = f"tomorrow at {clock}"
    elif days > 1:
        clock = f"on {at:%a} {at.day} {at:%b} at {clock}"
    else:
        clock = f"at {clock}"
    return f"{words} ({clock})"


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


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
    bot: LabelBot,
    work: WorkService,
    chat_id: int,
    shown: Shown,
    *,
    card: Message | None = None,
    header: str | None = None,
    instructions: bool = False,
    live: int | None = None,
) -> None:
    """Shows a task or exam question by turning `card` into it when the kinds match (one
    call), else sends a new card and clears the old one's buttons; or says why there is none.
    A task whose card Telegram refuses is taken out as broken and the next one shown instead,
    so no worker waits on a card that can never arrive. The message it lands on becomes the
    worker's live card and the one before it is retired (`live`: the live card as the caller
    read it, if it did), so only one card's buttons act."""
    for _ in range(MAX_REFUSED_IN_A_ROW):
        try:
            landed = await _show_once(
                bot, work, chat_id, shown, card=card, header=header, instructions=instructions
            )
            break
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
    else:
        landed = await show_text(bot, chat_id, escape(TRY_AGAIN), next_keyboard(), card=card)
    retired = await work.card_shown(chat_id, landed, live)
    # A card left for a new message had its buttons cleared already.
    if retired is not None and (card is None or retired != card.message_id):
        await _clear_buttons(bot, chat_id, retired)


async def _show_once(
    bot: LabelBot,
    work: WorkService,
    chat_id: int,
    shown: Shown,
    *,
    card: Message | None,
    header: str | None,
    instructions: bool,
) -> int:
    """Shows it once; returns the id of the message it is shown on."""
    if shown is None or isinstance(shown, ExamResult | Closed):
        text = no_task_text(shown)
        header = header.removesuffix(NEXT_TASK) if header else header
        text = escape(f"{header}\n\n{text}" if header else text)
        # No button under a failed exam: it could only say the same again until the retry.
        keyboard = None if isinstance(shown, ExamResult) else next_keyboard()
        return await show_text(bot, chat_id, text, keyboard, card=card)
    text = card_text(shown, header, instructions=instructions)
    keyboard = card_keyboard(shown)
    photo = None if shown.image is None else await _photo_source(shown)
    if card is not None:
        try:
            if await _edit_card(bot, work, chat_id, card, shown, text, keyboard, photo):
                return card.message_id
        except BadRequest as error:
            if "not modified" in error.message:
                return card.message_id  # a double tap: the card shows this already
            # Too old to edit, deleted, or refused: sending it anew tells which.
            log.info("card %s not edited (%s); sending a new one", card.message_id, error)
        await _clear_buttons(bot, chat_id, card.message_id)
    try:
        if photo is None:
            sent = await bot.send_message(chat_id, text, parse_mode="HTML", reply_markup=keyboard)
            return sent.message_id
        sent = await bot.send_photo(
            chat_id, photo, caption=text, parse_mode="HTML", reply_markup=keyboard
        )
    except BadRequest as error:
        if any(reason in error.message.lower() for reason in _CHAT_REFUSALS):
            raise
        raise CardRefused(error.message) from error
    await _remember_photo(work, shown, sent)
    return sent.message_id


async def _edit_card(
    bot: LabelBot,
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
    bot: LabelBot,
    chat_id: int,
    text: str,
    keyboard: InlineKeyboardMarkup | None,
    *,
    card: Message | None = None,
) -> int:
    """Turns a text card into a message (HTML), or sends it when the card is a photo; returns
    the id of the message it is on."""
    if card is not None and card.text is not None:
        try:
            await bot.edit_message_text(
                text, chat_id, card.message_id, parse_mode="HTML", reply_markup=keyboard
            )
        except BadRequest as error:
            if "not modified" not in error.message:
                raise
        return card.message_id
    if card is not None:
        await _clear_buttons(bot, chat_id, card.message_id)
    sent = await bot.send_message(chat_id, text, parse_mode="HTML", reply_markup=keyboard)
    return sent.message_id


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


async def _clear_buttons(bot: LabelBot, chat_id: int, message_id: int) -> None:
    try:
        await bot.edit_message_reply_markup(chat_id, message_id, reply_markup=None)
    except BadRequest as error:  # already without buttons, deleted, or too old to edit
        log.debug("could not clear the buttons of message %s: %s", message_id, error)
