"""Turns workers' answers into one label per item, each with its support and confidence."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from labeling.batch import normalize_answer


@dataclass(frozen=True, slots=True)
class Label:
    item_id: int
    label: str
    answers: int
    agreement: float  # share of the item's answers that chose the label
    confidence: float


def majority_vote(
    answers: Iterable[tuple[int, str]], options: Sequence[str] | None = None
) -> dict[int, Label]:
    """Labels each item with its most frequent answer.

    Ties are broken deterministically: for a batch with options, the option listed first in the
    batch wins; for free text (compared after normalising case and white space), the answer
    first in alphabetical order wins. The confidence of a majority label is its agreement.
    """
    rank = {normalize_answer(option): index for index, option in enumerate(options or ())}
    counts: dict[int, Counter[str]] = {}
    shown: dict[tuple[int, str], str] = {}
    for item_id, value in answers:
        key = normalize_answer(value)
        counts.setdefault(item_id, Counter())[key] += 1
        shown.setdefault((item_id, key), value.strip())
    labels: dict[int, Label] = {}
    for item_id, counter in counts.items():
        total = sum(counter.values())
        best = min(counter, key=lambda key: (-counter[key], rank.get(key, len(rank)), key))
        share = counter[best] / total
        labels[item_id] = Label(item_id, shown[(item_id, best)], total, share, share)
    return labels
