"""Plain-text reports for coordinators, the same in the terminal and in Telegram."""

from __future__ import annotations

import math

from labeling.batch import BatchSettings
from labeling.gold import evidence
from labeling.models import BatchSummary, WorkerRow, WorkerStanding
from labeling.pay import projected_total
from labeling.quality import Trust
from labeling.words import money, plural

# Telegram's limit for one message's text.
MESSAGE_LIMIT = 4096


def format_status(summary: BatchSummary) -> str:
    kind = f"options {', '.join(summary.options)}" if summary.options else "free text"
    alpha = "n/a" if summary.alpha is None else f"{summary.alpha:.2f}"
    accuracy = summary.gold_accuracy
    gold = (
        "no gold answers yet"
        if accuracy is None
        else (f"workers right on {accuracy:.0%} of {plural(summary.gold_answers, 'gold answer')}")
    )
    return (
        f"batch {summary.batch_id} '{summary.name}' [{summary.status}]\n"
        f"  question: {summary.question} ({kind})\n"
        f"  items: {summary.items_done}/{summary.items} done, plus {summary.gold_items} gold;"
        f" overlap {summary.overlap}\n"
        f"  answers: {summary.counts.describe()}; {summary.progress:.0%} of the"
        f" {summary.answers_needed} needed, from {plural(summary.workers, 'worker')};"
        f" {plural(summary.open_tasks, 'task')} open now\n"
        f"  pace: {pace(summary)}\n"
        f"  quality: {gold}; {plural(summary.suspended, 'worker')} suspended;"
        f" {plural(summary.fast_answers, 'fast answer')} flagged\n"
        f"  labels by {summary.method}; agreement (Krippendorff's alpha): {alpha}"
        + (f"\n  pay: {payment(summary)}" if summary.pay else "")
    )


def payment(summary: BatchSummary) -> str:
    """The reward and its hourly rate, what the batch has cost so far and will cost in all."""
    assert summary.pay is not None
    currency = summary.pay.currency
    missing = summary.still_needed
    total = projected_total(summary.spent, summary.reward, missing)
    return (
        f"{money(summary.reward, currency)} per task, {summary.pay.describe()}; spent"
        f" {money(summary.spent, currency)} (the pay ledger); projected total"
        f" {money(total, currency)} ({plural(missing, 'answer')} still needed at"
        f" {money(summary.reward, currency)})"
    )


def pace(summary: BatchSummary) -> str:
    """The current rate and, at that rate, the time left."""
    left = summary.seconds_to_finish
    if left == 0:
        return "every item has its answers"
    if left is None:
        return "no answers in the last 15 minutes"
    hours, minutes = divmod(round(left / 60), 60)
    eta = f"{hours} h {minutes} min" if hours else f"{max(minutes, 1)} min"
    return f"{summary.rate_per_hour:.0f} answers per hour lately; about {eta} to finish"


def format_batch_line(summary: BatchSummary) -> str:
    return (
        f"#{summary.batch_id} {summary.name} [{summary.status}]: {summary.progress:.0%} of"
        f" {plural(summary.items, 'item')}, {plural(summary.workers, 'worker')}"
    )


def format_standing(standing: WorkerStanding, settings: BatchSettings) -> str:
    """A worker's record in a batch with the evidence the suspension test weighs: how many
    times likelier the gold record is from a worker below the threshold than from a careful
    one, against the odds that suspend."""
    peers = standing.peers
    trust = Trust(
        standing.answers, standing.gold_answers, standing.gold_correct, standing.fast_answers
    )
    interval = trust.interval()
    if trust.accuracy is None or interval is None:
        accuracy = "no gold yet"
    else:
        options = settings.option_count
        record = evidence(trust.gold_answers, trust.gold_correct, settings, options, peers)
        agreed = f", agreed with others on {peers.agreed}/{peers.checks}" if peers.checks else ""
        accuracy = (
            f"{trust.gold_correct}/{trust.gold_answers} gold right ({trust.accuracy:.0%},"
            f" 95% CI {interval[0]:.0%}-{interval[1]:.0%}){agreed}; evidence"
            f" {_odds(record.odds)} of {_odds(math.exp(record.limit))} to suspend"
        )
    line = (
        f"worker {standing.worker_id} {standing.name!r} [{standing.status}]:"
        f" {standing.answers} answers, {accuracy}, {standing.fast_answers} fast"
    )
    return line + (f"; {standing.reason}" if standing.reason else "")


def standing_order(standing: WorkerStanding) -> tuple[bool, int, int]:
    """The suspended (and failed) first, as a coordinator acts on them; then by answers."""
    return standing.status == "active", -standing.answers, standing.worker_id


def pages(lines: list[str], limit: int = MESSAGE_LIMIT) -> list[str]:
    """Lines packed into pages of at most `limit` characters, in order; a line too long for
    a page on its own is cut short."""
    result: list[str] = []
    page: list[str] = []
    size = 0
    for line in lines:
        if len(line) > limit:
            line = line[: limit - 1] + "…"
        if page and size + 1 + len(line) > limit:
            result.append("\n".join(page))
            page, size = [], 0
        size += len(line) + (1 if page else 0)
        page.append(line)
    if page:
        result.append("\n".join(page))
    return result


def _odds(value: float) -> str:
    return f"{value:.0f}:1" if value >= 1 else f"1:{1 / value:.0f}"


def format_worker(row: WorkerRow, currency: str) -> str:
    accuracy = "no gold" if row.accuracy is None else f"{row.accuracy:.0%} on gold"
    rate = "" if row.hourly_rate is None else f", {money(row.hourly_rate, currency)}/h"
    flags = "" if row.status == "active" else f" [{row.status}]"
    if not row.reachable:
        flags += " [unreachable]"
    return (
        f"{row.worker_id} {row.name}{flags}: {plural(row.answers, 'answer')}, {accuracy},"
        f" earned {money(row.earned, currency)}{rate}"
    )
