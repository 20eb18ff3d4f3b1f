"""Fair pay: what a task earns per hour, judged the way Prolific holds requesters to a minimum."""

from __future__ import annotations

from dataclasses import dataclass

from labeling.words import money

MIN_ANSWERS_FOR_MEDIAN = 20


@dataclass(frozen=True, slots=True)
class PayRate:
    hourly: float  # reward per task over the seconds a task takes, per hour
    seconds_per_task: float
    measured: bool  # from the batch's median answer time, rather than the estimate
    minimum: float
    currency: str

    @property
    def below_minimum(self) -> bool:
        return self.hourly < self.minimum

    def describe(self) -> str:
        source = "median" if self.measured else "estimated"
        text = (
            f"{money(self.hourly, self.currency)} per hour"
            f" ({source} {self.seconds_per_task:.1f} s per task)"
        )
        if self.below_minimum:
            text += f" ⚠ below the minimum of {money(self.minimum, self.currency)} per hour"
        return text


def hourly_rate(reward: float, seconds_per_task: float) -> float:
    return reward / seconds_per_task * 3600 if seconds_per_task > 0 else 0.0


def batch_rate(
    reward: float,
    estimate_seconds: float,
    median_ms: int | None,
    answers: int,
    minimum: float,
    currency: str,
) -> PayRate:
    """The effective hourly rate: from the median time once enough answers are in, else from
    the coordinator's estimate."""
    measured = median_ms is not None and answers >= MIN_ANSWERS_FOR_MEDIAN
    seconds = median_ms / 1000 if measured and median_ms else estimate_seconds
    return PayRate(hourly_rate(reward, seconds), seconds, measured, minimum, currency)


def projected_total(spent: float, reward: float, answers_missing: int) -> float:
    """What a batch will have cost once every answer it still needs is in, at its reward."""
    return spent + reward * answers_missing
