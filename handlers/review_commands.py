"""Coordinator commands that watch over workers and items: standings, reinstatement,
reports, and gold answers corrected, dropped or restored."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from telegram import Update
from telegram.constants import MessageLimit

from handlers.context import LabelContext
from handlers.coordinating import Usage, batch_argument, number, reply
from labeling.report import format_worker, pages
from labeling.review import Review, format_problem


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


async def dropgold_command(update: Update, context: LabelContext) -> None:
    """Turns a gold item into an ordinary one; every worker's record is recomputed."""
    await _review_item(
        update, context, context.services.review.drop_gold, "is an ordinary item now"
    )


async def restore_command(update: Update, context: LabelContext) -> None:
    """Puts a broken item or suspect gold back into circulation."""
    await _review_item(update, context, context.services.review.restore, "is back in circulation")
