"""The ceiling for bench/loop.py: a PTB bot that only answers the tap and edits the card.

It is built like labelbot (same concurrency, same connection pool, no throttling limiter), so
the difference between the two is what labelbot's own work costs.
"""

from __future__ import annotations

import argparse
import asyncio

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes


def card(number: int) -> tuple[str, InlineKeyboardMarkup]:
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("yes", callback_data=f"a:{number}:0"),
                InlineKeyboardButton("no", callback_data=f"a:{number}:1"),
            ]
        ]
    )
    return f"Task {number}\n\nIs this review positive?", keyboard


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    text, keyboard = card(0)
    await update.effective_message.reply_text(text, reply_markup=keyboard)


async def tap(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    text, keyboard = card(int(query.data.split(":")[1]) + 1)
    await asyncio.gather(query.answer(), query.edit_message_text(text, reply_markup=keyboard))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--token", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrent-updates", type=int, default=128)
    # labelbot's wait between polls (bot.app.POLL_INTERVAL): the ceiling polls as it does.
    parser.add_argument("--poll-interval", type=float, default=0.0)
    args = parser.parse_args()
    pool = min(max(args.concurrent_updates, 8), 256)
    application = (
        ApplicationBuilder()
        .token(args.token)
        .base_url(args.base_url)
        .concurrent_updates(args.concurrent_updates)
        .connection_pool_size(pool)
        .pool_timeout(30.0)
        .build()
    )
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CallbackQueryHandler(tap))
    application.run_polling(
        poll_interval=args.poll_interval, allowed_updates=["message", "callback_query"]
    )


if __name__ == "__main__":
    main()
