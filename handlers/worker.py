"""What workers do: register, take tasks, answer them, and see their own progress."""

from __future__ import annotations

import asyncio
import logging
from html import escape

from telegram import BotCommand, CallbackQuery, InlineKeyboardMarkup, Message, Update, User
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from handlers.callbacks import AnswerTap, DisputeTap, ExamTap, NextTap, ReportTap, SkipTap, decode
from handlers.cards import (
    NEXT_TASK,
    card_keyboard,
    exam_feedback,
    feedback_keyboard,
    fits,
    next_keyboard,
    problem_keyboard,
    reported_problem,
    show_exam_feedback,
    show_task,
    without_dispute,
)
from handlers.context import LabelApplication, LabelContext
from labeling.answering import MAX_FREE_TEXT, Verdict
from labeling.models import Outcome, Submission, Task, WorkerProfile
from labeling.words import money
from labeling.work import Shown

log = logging.getLogger(__name__)

HELP = (
    "I hand you small labeling tasks, one at a time.\n\n"
    "Each task shows an item and a question: tap the answer that fits, or Skip if you are "
    "unsure. Some batches ask you to type the answer instead. Your answer is saved the moment "
    "the next task appears.\n\n"
    "/next - show your current or next task\n"
    "/instructions - the instructions of your current task's batch\n"
    "/stats - your answers and earnings\n"
    "/stop - no more messages about new batches (/start turns them back on)\n"
    "/forgetme - erase your name and Telegram id from my records\n"
    "/help - this message"
)

# Telegram's command menu in every chat; a coordinator's adds theirs (handlers.coordinator).
WORKER_COMMANDS = [
    BotCommand("next", "Show your next task"),
    BotCommand("instructions", "Read the instructions of your current batch again"),
    BotCommand("stats", "Your answers and earnings"),
    BotCommand("help", "How labeling works"),
    BotCommand("stop", "Pause messages about new batches"),
    BotCommand("forgetme", "Erase your name and Telegram id from the records"),
]

# Short enough to read at a glance; the button is the first task, /help the rest.
WELCOME = (
    "Welcome, {name}! I hand out small labeling tasks, one at a time: read the item, tap the"
    " answer that fits, or Skip if unsure. Your first task is one tap away; /help explains"
    " the rest."
)
FIRST = "Show my first task ▶"

# What a worker is told when a tap cannot be stored. Nothing is written in these cases.
REFUSALS = {
    Verdict.DUPLICATE: "Already saved. Thanks!",
    Verdict.NOT_FOUND: "This button is no longer valid.",
    Verdict.NOT_YOURS: "This task belongs to someone else.",
    Verdict.EXPIRED: "This task expired and went back to the pool.",
    Verdict.SKIPPED: "You skipped this task.",
    Verdict.BATCH_NOT_OPEN: "This batch is not taking answers right now.",
    Verdict.INVALID: "That answer is not one of the options.",
    Verdict.TOO_LONG: (
        f"That answer is too long: at most {MAX_FREE_TEXT} characters, please. "
        "Shorten it and send it again."
    ),
}
DISPUTED = "Thank you: a coordinator will look at this question's answer."
SAVED = "✓ Saved."
ALERT = {Verdict.NOT_YOURS, Verdict.EXPIRED, Verdict.BATCH_NOT_OPEN, Verdict.INVALID}
# A tap on a card whose task can no longer be answered: answered or skipped already (a double
# tap, or an old card a phone scrolled back to), expired, or its batch paused. The card is
# turned into the worker's current task, or offers the Next task button: never a dead end.
STALE = {Verdict.DUPLICATE, Verdict.SKIPPED, Verdict.EXPIRED, Verdict.BATCH_NOT_OPEN}
# What a worker is told to do when what they sent cannot be an answer.
NO_TASK = "You have no open task. Send /next for one."
TAP_A_BUTTON = "Please tap one of the buttons under your task (/next shows it again)."
TYPE_IT = "Please type your answer as a text message (/next shows the task again)."
NOT_READ = "I can only read text messages and taps on buttons."
# Said the same whichever rule stopped the worker (gold, agreement with others, speed):
# polite, and no help to someone probing the rules.
SUSPENDED = (
    "Your answers in {batch} did not pass its quality checks, so this batch is closed to you "
    "now. Your answers are kept for review, and a coordinator may let you back in."
)


def profile(user: User) -> WorkerProfile:
    return WorkerProfile(user.id, user.full_name[:200], user.language_code)


async def start(update: Update, context: LabelContext) -> None:
    """Registers the worker and explains what to do."""
    assert update.effective_user is not None and update.effective_message is not None
    await context.services.work.start(profile(update.effective_user))
    name = escape(update.effective_user.first_name)
    await update.effective_message.reply_text(
        WELCOME.format(name=name), parse_mode=ParseMode.HTML, reply_markup=next_keyboard(FIRST)
    )


async def help_command(update: Update, context: LabelContext) -> None:
    """Explains the commands (and points coordinators to theirs)."""
    assert update.effective_message is not None and update.effective_user is not None
    text = HELP
    if await context.services.admin.is_coordinator(update.effective_user.id):
        text += "\n\nYou are a coordinator: /coordinator lists your commands."
    await update.effective_message.reply_text(text)


async def next_command(update: Update, context: LabelContext) -> None:
    """Shows the worker's open task, or hands out the next one."""
    assert update.effective_user is not None and update.effective_chat is not None
    work = context.services.work
    await work.register(profile(update.effective_user))
    task = await work.next_task(update.effective_user.id)
    await show_task(context.bot, work, update.effective_chat.id, task, instructions=True)


async def stats(update: Update, context: LabelContext) -> None:
    """Shows the worker's own counts and earnings."""
    assert update.effective_user is not None and update.effective_message is not None
    mine = await context.services.work.stats(update.effective_user.id)
    currency = context.services.currency
    await update.effective_message.reply_text(
        "Your work so far\n"
        f"Answers: {mine.answers} (today {mine.answers_today})\n"
        f"Skipped: {mine.skipped}\n"
        f"Batches: {mine.batches}\n"
        f"Earned: {money(mine.earned, currency)}"
        + (
            f" ({money(mine.hourly_rate, currency)} per hour of labeling)"
            if mine.hourly_rate
            else ""
        )
        + ("\n\nYou have a task waiting: /next" if mine.open_task else "")
    )


async def stop(update: Update, context: LabelContext) -> None:
    """Pauses announcements of new batches for this worker."""
    assert update.effective_user is not None and update.effective_message is not None
    await context.services.work.pause_notifications(update.effective_user.id)
    await update.effective_message.reply_text(
        "Paused: I will not message you about new batches. Tasks are still here with /next, "
        "and /start turns the messages back on."
    )


async def tap(update: Update, context: LabelContext) -> None:
    """Records the worker's answer, skip, report or dispute and shows what comes next."""
    query = update.callback_query
    assert query is not None
    worker_id = query.from_user.id
    work = context.services.work
    header = None
    match decode(query.data):
        case AnswerTap(assignment_id, option):
            outcome = await work.answer(Submission(assignment_id, worker_id, option=option))
            header = SAVED
        case SkipTap(assignment_id):
            outcome = await work.skip(assignment_id, worker_id)
        case ReportTap(assignment_id, None):
            await asyncio.gather(_answer(query), _keyboard(query, problem_keyboard(assignment_id)))
            return
        case ReportTap(assignment_id, 0):
            task = await work.open_task(worker_id)
            if task is not None and task.assignment_id == assignment_id:
                keyboard = card_keyboard(task)
            else:  # a stale card: offer the current task instead
                keyboard = next_keyboard()
            await asyncio.gather(_answer(query), _keyboard(query, keyboard))
            return
        case ReportTap(assignment_id, int(choice)) if problem := reported_problem(choice):
            outcome = await work.report(assignment_id, worker_id, problem)
            header = "Thank you: reported."
        case NextTap():
            await work.register(profile(query.from_user))
            shown = await work.next_task(worker_id)
            await asyncio.gather(_answer(query), _show(context, query, shown))
            return
        case DisputeTap(attempt_id, item_id):
            if not await work.dispute(attempt_id, worker_id, item_id):
                await _answer(query, REFUSALS[Verdict.NOT_FOUND], alert=True)
                return
            kept = None
            if isinstance(query.message, Message):
                kept = without_dispute(query.message.reply_markup)
            await asyncio.gather(_answer(query, DISPUTED, alert=True), _keyboard(query, kept))
            return
        case ExamTap(attempt_id, item_id, option):
            await exam_answer(
                context, query, Submission(attempt_id, worker_id, option=option), item_id
            )
            return
        case _:
            await _answer(query, REFUSALS[Verdict.NOT_FOUND], alert=True)
            return
    if outcome.verdict in STALE:
        await _stale_card(context, query, outcome)
        return
    if header is not None and outcome.next_task is not None:
        header += NEXT_TASK
    if outcome.suspended is not None:
        header = SUSPENDED.format(batch=outcome.suspended)
        await asyncio.gather(
            _answer(query, header[:200], alert=True),
            _show(context, query, outcome.shown, header, live=outcome.card),
        )
        return
    if outcome.saved:
        # The answer is committed, so the worker may be told: both calls go out together.
        await asyncio.gather(
            _answer(query), _show(context, query, outcome.shown, header, live=outcome.card)
        )
        return
    await _answer(query, REFUSALS[outcome.verdict], alert=outcome.verdict in ALERT)


async def _stale_card(context: LabelContext, query: CallbackQuery, outcome: Outcome) -> None:
    """Answers a tap on a card whose task can no longer be answered; never a dead end.
    On the worker's live card it is mostly a double tap, whose first delivery turns the card
    into the next task (then Telegram refuses this edit as not modified), or the bot stopped
    between the commit and that edit: the card is turned into the worker's open task, as the
    first delivery would have. Only by an edit: a new card would be a second one after a
    double tap. An older card (a phone scrolled back) gets the Next task button, which brings
    the current task there: a stale tap itself writes nothing."""
    verdict = outcome.verdict
    refusal = _answer(query, REFUSALS[verdict], alert=verdict in ALERT)
    card = query.message if isinstance(query.message, Message) else None
    if card is None:
        await refusal
        return
    task = None
    if card.message_id == outcome.card:
        task = await context.services.work.open_task(query.from_user.id)
    if task is None or not fits(task, card):
        await asyncio.gather(refusal, _keyboard(query, next_keyboard()))
        return
    header = SAVED + NEXT_TASK if verdict is Verdict.DUPLICATE else None
    await asyncio.gather(refusal, _show(context, query, task, header, live=outcome.card))


async def exam_answer(
    context: LabelContext, query: CallbackQuery, submission: Submission, item_id: int
) -> None:
    """Records a training answer: a right one moves on to the next question, a wrong one shows
    the right answer and its explanation under the item first."""
    work = context.services.work
    result = await work.answer_exam(submission, item_id)
    if result.verdict is not Verdict.ACCEPTED:
        await _answer(query, REFUSALS[result.verdict], alert=result.verdict in ALERT)
        return
    card = query.message if isinstance(query.message, Message) else None
    chat_id = query.message.chat.id if query.message else query.from_user.id
    feedback = exam_feedback(result)
    if result.correct and not result.finished:
        shown = await work.next_task(submission.worker_id)
        await asyncio.gather(_answer(query), _show(context, query, shown, feedback))
        return
    keyboard = feedback_keyboard(result, submission.assignment_id, item_id)
    await asyncio.gather(
        _answer(query), show_exam_feedback(context.bot, chat_id, result, keyboard, card=card)
    )


async def free_text(update: Update, context: LabelContext) -> None:
    """Takes a typed reply as the answer to the worker's open free-text task."""
    message = update.effective_message
    assert message is not None and message.text is not None and update.effective_user
    work = context.services.work
    worker_id = update.effective_user.id
    task = await work.open_task(worker_id)
    if task is None or not task.free_text:
        await message.reply_text(what_to_do(task))
        return
    source = f"m:{message.chat_id}:{message.message_id}"
    outcome = await work.answer(
        Submission(task.assignment_id, worker_id, text=message.text, source=source)
    )
    if not outcome.saved:
        await message.reply_text(REFUSALS[outcome.verdict])
        return
    header = "✓ Saved."
    if outcome.suspended is not None:
        header = SUSPENDED.format(batch=outcome.suspended)
    await show_task(
        context.bot, work, message.chat_id, outcome.shown, header=header, live=outcome.card
    )


def what_to_do(task: Task | None) -> str:
    """How the worker answers their open task, or gets one."""
    if task is None:
        return NO_TASK
    return TYPE_IT if task.free_text else TAP_A_BUTTON


async def not_text(update: Update, context: LabelContext) -> None:
    """Answers a sticker, photo, voice note, file or the like: it cannot be an answer, so the
    worker is told what to do instead."""
    message = update.effective_message
    assert message is not None and update.effective_user is not None
    task = await context.services.work.open_task(update.effective_user.id)
    await message.reply_text(f"{NOT_READ} {what_to_do(task)}")


async def instructions(update: Update, context: LabelContext) -> None:
    """Shows again the instructions of the batch of the worker's open task."""
    message = update.effective_message
    assert message is not None and update.effective_user is not None
    task = await context.services.work.open_task(update.effective_user.id)
    if task is None:
        await message.reply_text(f"Instructions come with a batch's tasks. {NO_TASK}")
        return
    rules = task.instructions or "This batch has no instructions beyond its question."
    options = f"\nAnswers: {escape(', '.join(task.options))}" if task.options else ""
    await message.reply_text(
        f"<b>{escape(task.batch_name)}</b>\n\n{escape(rules)}\n\n"
        f"<b>{escape(task.question)}</b>{options}",
        parse_mode=ParseMode.HTML,
    )


async def unknown(update: Update, context: LabelContext) -> None:
    """Answers a command labelbot does not know, or a coordinator's message (a batch file)
    from someone who is not one."""
    message = update.effective_message
    assert message is not None
    if message.text is None or not message.text.startswith("/"):
        await not_text(update, context)
        return
    await message.reply_text("Unknown command. /help lists what I can do.")


async def _answer(query: CallbackQuery, text: str | None = None, *, alert: bool = False) -> None:
    try:
        await query.answer(text, show_alert=alert)
    except BadRequest as error:  # the query is too old: the spinner stopped on its own
        log.info("callback query %s not answered: %s", query.id, error)


async def _show(
    context: LabelContext,
    query: CallbackQuery,
    task: Shown,
    header: str | None = None,
    *,
    live: int | None = None,
) -> None:
    """Shows `task` on the tapped card (`live`: the worker's live card, when known)."""
    card = query.message if isinstance(query.message, Message) else None
    chat_id = query.message.chat.id if query.message else query.from_user.id
    work = context.services.work
    await show_task(context.bot, work, chat_id, task, card=card, header=header, live=live)


async def _keyboard(query: CallbackQuery, keyboard: InlineKeyboardMarkup | None) -> None:
    """Swaps the buttons under the tapped card."""
    if not isinstance(query.message, Message):
        return
    try:
        await query.message.edit_reply_markup(reply_markup=keyboard)
    except BadRequest as error:  # the same buttons already: a double tap
        log.debug("card %s kept its buttons: %s", query.message.message_id, error)


def register(application: LabelApplication) -> None:
    private = filters.ChatType.PRIVATE
    application.add_handlers(
        [
            CommandHandler("start", start, filters=private),
            CommandHandler("help", help_command, filters=private),
            CommandHandler("next", next_command, filters=private),
            CommandHandler("stats", stats, filters=private),
            CommandHandler("stop", stop, filters=private),
            CommandHandler("instructions", instructions, filters=private),
            CallbackQueryHandler(tap),
            MessageHandler(private & filters.TEXT & ~filters.COMMAND, free_text),
            MessageHandler(private & filters.COMMAND, unknown),
            # Anything else a person sends (not service messages, not edits): a sticker, a
            # photo, a voice note, a file, a location...
            MessageHandler(
                private & filters.UpdateType.MESSAGE & ~filters.TEXT & ~filters.StatusUpdate.ALL,
                not_text,
            ),
        ]
    )
