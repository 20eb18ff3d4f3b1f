"""/forgetme: a worker asks to be forgotten, and confirms it with a button."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.ext import CallbackQueryHandler, CommandHandler, filters

from handlers.callbacks import ForgetTap, decode, encode
from handlers.context import LabelApplication, LabelContext
from handlers.worker import REFUSALS, _answer
from handlers.worker import tap as tap_handler
from labeling.answering import Verdict
from labeling.erasure import ErasureRefused

ASK = (
    "This erases your name and language, and replaces your Telegram id with a random number"
    " everywhere I keep it. Your answers stay in the labels without your name, and what you"
    " earned stays on the books under that number. If you write to me again, you start as a"
    " new worker. Erase your data?"
)
ERASE = "Erase my data"
CANCEL = "Cancel"
DONE = (
    "Done: your name and language are erased, and your Telegram id is replaced by a random"
    " number. If you write to me again, you start as a new worker."
)
KEPT = "Nothing was erased."


async def forgetme(update: Update, context: LabelContext) -> None:
    """Asks the worker to confirm that they want to be forgotten."""
    assert update.effective_user is not None and update.effective_message is not None
    try:
        code = await context.services.erasure.request(update.effective_user.id)
    except ErasureRefused as refused:
        await update.effective_message.reply_text(str(refused))
        return
    buttons = [
        InlineKeyboardButton(ERASE, callback_data=encode(ForgetTap(code))),
        InlineKeyboardButton(CANCEL, callback_data=encode(ForgetTap())),
    ]
    await update.effective_message.reply_text(ASK, reply_markup=InlineKeyboardMarkup([buttons]))


async def confirm(update: Update, context: LabelContext) -> None:
    """Erases the tapper if the button confirms their own request; anything else (someone
    else's button, a replayed or forged tap) changes nothing."""
    query = update.callback_query
    assert query is not None
    tap = decode(query.data)
    if not isinstance(tap, ForgetTap):
        # PTB hands a query without data to every pattern: the workers' handler answers it.
        await tap_handler(update, context)
        return
    erasure = context.services.erasure
    if tap.code is None:
        await erasure.cancel(query.from_user.id)
        await _answer(query)
        await _say(query.message, KEPT)
        return
    try:
        erased = await erasure.confirm(query.from_user.id, tap.code)
    except ErasureRefused as refused:
        await _answer(query, str(refused)[:200], alert=True)
        return
    if erased is None:
        await _answer(query, REFUSALS[Verdict.NOT_FOUND], alert=True)
        return
    await _answer(query)
    await _say(query.message, DONE)


async def _say(message: object, text: str) -> None:
    """Turns the confirmation message into the outcome, without its buttons."""
    if isinstance(message, Message):
        await message.edit_text(text)


def register(application: LabelApplication) -> None:
    """Before the workers' handlers: their catch-all takes every other tap."""
    application.add_handlers(
        [
            CommandHandler("forgetme", forgetme, filters=filters.ChatType.PRIVATE),
            CallbackQueryHandler(
                confirm, pattern=lambda data: isinstance(decode(str(data)), ForgetTap)
            ),
        ]
    )
