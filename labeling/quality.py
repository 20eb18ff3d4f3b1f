"""Quality rules: how trust is judged, what is too fast, when an item has
enough answers, and whether an exam is passed. Pure functions, so each rule is tested alone."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from labeling.batch import BatchSettings
from labeling.gold import NO_PEERS, Peers, evidence
from labeling.kinds import TEXT, TaskKind

Z95 = 1.959964


def is_correct(value: str, gold: str, kind: TaskKind = TEXT) -> bool:
    """Whether an answer matches the gold answer, as the task's kind compares them (choices
    and typed answers alike ignore case and spacing, the default)."""
    return kind.agree(value, gold)


def is_fast(duration_ms: int, median_ms: int | None, ratio: float) -> bool:
    """Far faster than the batch's typical answer: the task was likely not read."""
    return median_ms is not None and ratio > 0 and duration_ms < ratio * median_ms


def median(values: Sequence[int]) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2


@dataclass(frozen=True, slots=True)
class Trust:
    """What a worker's answers in one batch say about them."""

    answers: int = 0
    gold_answers: int = 0
    gold_correct: int = 0
    fast_answers: int = 0
    judged: int = 0  # answers that could be judged fast or not (the median was known)
    peers: Peers = NO_PEERS  # agreement with other workers on finished items

    @property
    def accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answers if self.gold_answers else None

    def interval(self, z: float = Z95) -> tuple[float, float] | None:
        """Wilson score interval of the accuracy on gold (95% by default)."""
        n = self.gold_answers
        if not n:
            return None
        p = self.gold_correct / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Suspension:
    """Which rule stops a worker ('gold': gold and agreement with others; 'fast'; 'unjudged'
    and 'dodging' from labeling.assign), and why, for the log."""

    cause: str
    reason: str


def suspension(trust: Trust, settings: BatchSettings, options: int | None) -> Suspension | None:
    """Why this worker should be suspended from the batch, or None. Gold accuracy is judged
    by the sequential test of `labeling.gold.evidence`, never by a point estimate."""
    if settings.min_accuracy > 0 and trust.gold_answers >= settings.min_gold:
        record = evidence(trust.gold_answers, trust.gold_correct, settings, options, trust.peers)
        if record.conclusive:
            peers = trust.peers
            agreed = (
                f", agreed with others on {peers.agreed}/{peers.checks} items"
                if peers.checks
                else ""
            )
            return Suspension(
                "gold",
                f"gold accuracy {trust.gold_correct}/{trust.gold_answers}{agreed}: below"
                f" {settings.min_accuracy:.0%} at odds {record.odds:.0f} to 1",
            )
    if (
        settings.fast_suspend is not None
        and trust.fast_answers >= settings.fast_suspend
        and trust.fast_answers * 2 >= trust.judged
    ):
        return Suspension(
            "fast", f"{trust.fast_answers} of {trust.judged} answers far faster than usual"
        )
    return None


def label_confidence(
    values: Sequence[str], accuracies: Sequence[float], n_classes: int, kind: TaskKind = TEXT
) -> float:
    """Posterior of the leading answer when each worker is right with their accuracy and
    otherwise picks uniformly among the other classes (the one-coin model)."""
    if not values:
        return 0.0
    k = max(n_classes, 2)
    scores: dict[str, float] = {}
    for value, accuracy in zip(values, accuracies, strict=True):
        a = min(max(accuracy, 1e-3), 1 - 1e-3)
        weight = math.log((k - 1) * a / (1 - a))
        key = kind.key(value)
        scores[key] = scores.get(key, 0.0) + weight
    top = max(scores.values())
    unseen = max(k - len(scores), 0)
    normaliser = sum(math.exp(s - top) for s in scores.values()) + unseen * math.exp(-top)
    return 1.0 / normaliser


def needs_more_answers(settings: BatchSettings, target: int, confidence: float) -> bool:
    """Dynamic overlap: ask one more worker while the label is unsure and the cap allows."""
    if not settings.dynamic_overlap or settings.confidence_target is None:
        return False
    return confidence < settings.confidence_target and target < (settings.max_overlap or 0)


def exam_pass_mark(total: int, settings: BatchSettings) -> int:
    """The fewest right answers of `total` that pass the exam: the mark a worker is told at
    the start (the tolerance keeps 0.7 x 10 at 7, not 8)."""
    return math.ceil(settings.exam_pass * total - 1e-9)


def exam_passed(correct: int, total: int, settings: BatchSettings) -> bool:
    return total > 0 and correct >= exam_pass_mark(total, settings)
