"""Who coordinates, and with what: the table of coordinator commands, from which they are
registered, listed in /coordinator, answered when misused and put in Telegram's menu; the
guard every one of them passes; and the commands that change who coordinates.

Every command checks the sender each time; anyone else gets the same answer an unknown
command gets, and the attempt is logged.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.error import TelegramError
from telegram.ext import BaseHandler, CommandHandler, MessageHandler, filters

from handlers import batch_commands as batches
from handlers import review_commands as review
from handlers.context import LabelApplication, LabelBot, LabelContext
from handlers.coordinating import Handler, Usage, number, reply
from handlers.worker import WORKER_COMMANDS, unknown
from labeling.admin import NotAllowed, Role
from labeling.batches import BatchStateError
from labeling.models import BatchNotFound
from labeling.review import ItemNotFound, ReviewError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Command:
    """One coordinator command. `role` is the least role it is meant for, which decides whose
    menu offers it; labeling.admin decides every use, so that a coordinator who tries an
    owner's command is told why not rather than ignored."""

    name: str
    arguments: str  # as the usage line writes them; "" for none
    about: str  # one line, lowercase: it follows the command in the usage line
    handler: Handler
    role: Role = Role.COORDINATOR

    @property
    def usage(self) -> str:
        """The command's line in /coordinator's list, and the answer to a wrong use of it."""
        command = f"/{self.name} {self.arguments}".rstrip()
        owners = " (owners only)" if self.role is Role.OWNER else ""
        return f"{command} - {self.about}{owners}"

    @property
    def menu_entry(self) -> BotCommand:
        return BotCommand(self.name, self.about[0].upper() + self.about[1:])


def guarded(handler: Handler, usage: str) -> Handler:
    """Runs `handler` only for a coordinator, checked on every call, and answers what it
    raises: wrong arguments with `usage`. What only an owner may do is checked again where it
    is done (labeling.admin)."""

    @functools.wraps(handler)
    async def run(update: Update, context: LabelContext) -> None:
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
        try:
            await handler(update, context)
        except Usage:
            await reply(update, f"Usage: {usage}")
        except BatchNotFound as error:
            await reply(update, f"There is no batch {error.args[0]}.")
        except BatchStateError as error:
            await reply(update, f"Cannot do that: {error}.")
        except ItemNotFound as error:
            await reply(update, f"That batch has no item {error.args[0]}.")
        except ReviewError as error:
            await reply(update, f"Cannot do that: {error}.")
        except NotAllowed as error:
            log.warning("coordinator %s refused %s: %s", user.id, handler.__name__, error)
            await reply(update, str(error))

    return run


def menu(role: Role) -> list[BotCommand]:
    """The commands Telegram's menu offers someone of `role`: the workers', as coordinators
    label too, then the coordinator commands meant for them."""
    return WORKER_COMMANDS + [command.menu_entry for command in COMMANDS if command.role <= role]


async def show_menu(bot: LabelBot, user_id: int, role: Role) -> None:
    """Gives the user's chat with the bot the menu of `role`; a worker's chat goes back to the
    menu every chat shows."""
    scope = BotCommandScopeChat(user_id)
    try:
        if role >= Role.COORDINATOR:
            await bot.set_my_commands(menu(role), scope=scope)
        else:
            await bot.delete_my_commands(scope=scope)
    except TelegramError as error:  # e.g. an owner who never opened a chat with the bot
        log.warning("could not change the command menu of %s: %s", user_id, error)


async def show_menus(bot: LabelBot, owners: Iterable[int]) -> None:
    """The menu every chat shows, and each owner's; a promotion changes the coordinator's."""
    await bot.set_my_commands(menu(Role.WORKER))
    for owner in owners:
        await show_menu(bot, owner, Role.OWNER)


async def help_coordinator(update: Update, context: LabelContext) -> None:
    """Lists the coordinator commands, and brings the sender's menu up to date with them."""
    assert update.effective_user is not None
    await reply(update, HELP)
    person = await context.services.admin.person(update.effective_user.id)
    await show_menu(context.bot, person.user_id, person.role)


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
        if ban:  # a promoted coordinator loses the role with it, and their menu
            await show_menu(context.bot, worker_id, Role.WORKER)
    else:
        state = "already banned" if ban else "not banned"
        await reply(update, f"Worker {worker_id} is unknown or {state}.")


async def ban_command(update: Update, context: LabelContext) -> None:
    """Stops a worker in every batch, with a reason for the log."""
    await _worker_action(update, context, ban=True)


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
        await show_menu(context.bot, user_id, Role.COORDINATOR if promote else Role.WORKER)
    else:
        state = "already a coordinator" if promote else "not a promoted coordinator"
        await reply(update, f"{user_id} is {state}.")


async def promote_command(update: Update, context: LabelContext) -> None:
    """Makes someone a coordinator."""
    await _role_action(update, context, promote=True)


async def demote_command(update: Update, context: LabelContext) -> None:
    """Takes coordinator rights back from someone who was promoted."""
    await _role_action(update, context, promote=False)


# In the order /coordinator lists them and the menu shows them.
COMMANDS = [
    Command("batches", "", "every batch and its state", batches.batches_command),
    Command(
        "status",
        "N",
        "progress, quality and pay of batch N, with a chart",
        batches.status_command,
    ),
    Command(
        "publish",
        "N [paid]",
        "open batch N and tell every active worker (paid: owners only)",
        batches.publish_command,
    ),
    Command("pause", "N", "stop handing out batch N's tasks", batches.pause_command),
    Command("resume", "N", "hand out batch N's tasks again", batches.resume_command),
    Command("close", "N", "end batch N for good", batches.close_command),
    Command(
        "export",
        "N [labels|answers|workers] [csv|jsonl]",
        "results as a file",
        batches.export_command,
    ),
    Command("broadcast", "TEXT", "a message to every active worker", batches.broadcast_command),
    Command(
        "workers",
        "[N [PAGE]]",
        "workers with their answers, accuracy and earnings; with N, each one's standing in"
        " batch N (suspended first, why, gold accuracy)",
        review.workers_command,
    ),
    Command(
        "reinstate",
        "N WORKER",
        "let a suspended worker back into batch N (they are told)",
        review.reinstate_command,
    ),
    Command(
        "ban",
        "WORKER_ID [reason]",
        "stop a worker in every batch (a coordinator: owners only)",
        ban_command,
    ),
    Command("unban", "WORKER_ID [reason]", "let a banned worker work again", unban_command),
    Command("promote", "USER_ID", "make someone a coordinator", promote_command, Role.OWNER),
    Command("demote", "USER_ID", "take coordinator rights back", demote_command, Role.OWNER),
    Command(
        "reports",
        "N",
        "items workers reported, broken items and suspect gold in batch N",
        review.reports_command,
    ),
    Command(
        "gold",
        "N ITEM ANSWER",
        "correct a gold item's answer (ITEM: your id, or #number)",
        review.gold_command,
    ),
    Command("dropgold", "N ITEM", "make a gold item an ordinary one", review.dropgold_command),
    Command(
        "restore",
        "N ITEM",
        "put a broken item or suspect gold back into circulation",
        review.restore_command,
    ),
    Command(
        "coordinator", "", "the coordinator commands, and how to upload a batch", help_coordinator
    ),
]

HELP = (
    "Coordinator commands. To upload a batch, send a .csv, .jsonl or .json file with its"
    " settings as 'key: value' lines in the caption (at least 'question: ...';"
    " e.g. 'options: yes, no', 'overlap: 3', 'reward: 0.05'). A file imported before is"
    " imported again as a new batch with 'again: yes' in the caption.\n\n"
    + "\n".join(command.usage for command in COMMANDS)
)


def register(application: LabelApplication) -> None:
    private = filters.ChatType.PRIVATE
    handlers: list[BaseHandler[Update, LabelContext, None]] = [
        CommandHandler(command.name, guarded(command.handler, command.usage), filters=private)
        for command in COMMANDS
    ]
    # An upload raises no Usage: each of its answers says what to send instead.
    handlers.append(MessageHandler(private & filters.Document.ALL, guarded(batches.upload, HELP)))
    application.add_handlers(handlers)
