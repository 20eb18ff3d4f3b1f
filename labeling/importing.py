"""What a batch file's rows become when stored: the first gold items train workers (the exam),
the other gold waits for the gold schedule at a secret rank, and every ordinary item waits in the
pool for its answers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from labeling.batch import BatchSettings, ItemRow
from labeling.gold import new_rank


class AlreadyImported(Exception):
    """The same uploaded file, delivered again: it is a batch already."""

    def __init__(self, batch_id: int) -> None:
        super().__init__(f"this file was imported already, as batch {batch_id}")
        self.batch_id = batch_id


@dataclass(frozen=True, slots=True)
class NewItem:
    position: int  # the row's place among the file's items, from 1
    row: ItemRow
    exam: bool  # kept for training, shown with its answer
    target: int  # the answers the item is to collect
    wanted: int  # how many of them the pool hands out: none for gold (the schedule does)
    gold_rank: int | None  # a gold item's secret place in the batch's order


def hidden_gold(settings: BatchSettings, rows: Sequence[ItemRow]) -> int:
    """The gold items that check workers unseen: all but those kept for training."""
    gold = sum(row.gold is not None for row in rows)
    return max(gold - settings.training_gold, 0)


def new_items(settings: BatchSettings, rows: Sequence[ItemRow]) -> Iterator[NewItem]:
    """The items to store, in the file's order, made one at a time: a batch holds up to
    millions, and they are stored a chunk at a time."""
    gold_seen = 0
    for position, row in enumerate(rows, start=1):
        if row.gold is None:
            yield NewItem(position, row, False, settings.overlap, settings.overlap, None)
            continue
        gold_seen += 1
        exam = gold_seen <= settings.training_gold
        yield NewItem(position, row, exam, settings.overlap, 0, new_rank())
