"""Who gets which task next in a batch: gold or an ordinary item, or nothing more because the
worker dodged gold or cannot be judged. Storage carries the plan out; every engine shares it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from labeling.batch import BatchSettings
from labeling.gold import Exhausted, Schedule, dodging, draw, evidence, when_exhausted
from labeling.quality import Suspension, Trust

UNJUDGED = Suspension("unjudged", "saw every gold item without answering enough of them")
DODGING = Suspension("dodging", "gave back gold tasks as often as they answered them")


class Step(StrEnum):
    GOLD = "gold"  # a gold item the worker has not seen
    TASK = "task"  # the next ordinary item the pool wants
    CLOSE = "close"  # the batch closes to the worker (their answers leave the labels)
    NONE = "none"  # nothing more here for now


@dataclass(frozen=True, slots=True)
class Situation:
    """What the plan needs to know about a worker in one batch."""

    trust: Trust
    schedule: Schedule
    gold_total: int  # the batch's hidden gold items, whatever their state
    gold_returned: int  # gold tasks the worker gave back unanswered
    vouched: bool  # a coordinator reinstated them


@dataclass(frozen=True, slots=True)
class Plan:
    step: Step
    schedule: Schedule  # where the gold stream stands if the step is carried out
    reason: Suspension | None = None  # why the batch closes, for CLOSE


def plan(situation: Situation, settings: BatchSettings, options: int | None, u: float) -> Plan:
    """The next step, `u` being the worker's next number in the batch's gold stream."""
    schedule = situation.schedule
    if situation.gold_total:
        trust = situation.trust
        record = evidence(trust.gold_answers, trust.gold_correct, settings, options, trust.peers)
        schedule = draw(schedule, settings, record.doubtful or trust.peers.doubtful, u)
    if schedule.owed and dodging(situation.trust.gold_answers, situation.gold_returned, settings):
        return Plan(Step.CLOSE, schedule, DODGING)
    return Plan(Step.GOLD if schedule.owed else Step.TASK, schedule)


def without_gold(planned: Plan, situation: Situation, settings: BatchSettings) -> Plan:
    """The plan when gold was due and the worker has seen every gold item there is."""
    exhausted = when_exhausted(
        situation.trust.gold_answers, situation.gold_total, settings, vouched=situation.vouched
    )
    if exhausted is Exhausted.CLOSED:
        return Plan(Step.CLOSE, planned.schedule, UNJUDGED)
    if exhausted is Exhausted.STOP:
        return Plan(Step.NONE, planned.schedule)
    return Plan(Step.TASK, planned.schedule.settled())
