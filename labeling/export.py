"""Writes a batch's labels or answers as CSV or JSON Lines, ready for pandas."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from labeling.aggregation import Label, label_answers
from labeling.batch import BatchSettings
from labeling.models import AnswerCounts, ExportAnswer, ExportItem, WorkerRow
from labeling.words import money, plural

What = Literal["labels", "answers", "workers"]
Format = Literal["csv", "jsonl"]
WHATS: tuple[What, ...] = ("labels", "answers", "workers")
FORMATS: tuple[Format, ...] = ("csv", "jsonl")

LABEL_COLUMNS = (
    "item_id", "id", "text", "image", "label", "answers", "agreement", "confidence", "method",
    "gold",
)  # fmt: skip
WORKER_COLUMNS = (
    "worker_id", "name", "status", "answers", "gold_answers", "gold_accuracy", "owed",
    "hours", "hourly_rate", "reason",
)  # fmt: skip
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ANSWER_COLUMNS = (
    "answer_id", "item_id", "id", "worker_id", "answer", "duration_ms", "answered_at",
    "is_gold", "correct", "fast", "excluded",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export holds, for the coordinator and for the sidecar summary file."""

    what: str
    rows: int
    method: str | None = None
    # The answers behind the file, in the words of the status (labeling.models.AnswerCounts).
    answers_counted: int = 0
    answers_excluded: int = 0
    answers_stored: int = 0
    agreement_alpha: float | None = None
    owed: float | None = None  # the workers export: what they are owed in all
    currency: str | None = None

    @property
    def counts(self) -> AnswerCounts:
        return AnswerCounts(self.answers_counted, self.answers_excluded, self.answers_stored)

    def describe(self) -> str:
        if self.owed is not None and self.currency is not None:
            return f"{plural(self.rows, 'worker')}, owed {money(self.owed, self.currency)} in all"
        if self.what == "answers":
            return f"{plural(self.rows, 'answer')}: {self.counts.describe()}"
        if self.method is None:
            return plural(self.rows, "row")
        alpha = "n/a" if self.agreement_alpha is None else f"{self.agreement_alpha:.3f}"
        return (
            f"{self.rows} labels by {self.method}; answers: {self.counts.describe()};"
            f" agreement (Krippendorff's alpha): {alpha}"
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def csv_cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading apostrophe (OWASP's advice);
    numbers are written as they are. JSON Lines needs no escaping."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def column_names(keys: list[str], taken: Iterable[str]) -> dict[str, str]:
    """The export's name for each metadata column: distinct from the export's own columns
    (`taken`) and from each other, in CSV (where a header is escaped like any cell) as in JSON
    Lines, and the same on every export. A column keeps its own name unless that is taken;
    then it becomes `meta_<name>`, or `meta_<name>_2`, `_3`, ... when that is taken too."""
    used = {csv_cell(name) for name in taken}
    names: dict[str, str] = {}
    for key in keys:  # own names first, so a renamed column never takes another's own name
        if csv_cell(key) not in used:
            used.add(csv_cell(key))
            names[key] = key
    for key in keys:
        if key in names:
            continue
        candidate, number = f"meta_{key}", 1
        while candidate in used:  # meta_... never needs escaping
            number += 1
            candidate = f"meta_{key}_{number}"
        used.add(candidate)
        names[key] = candidate
    return {key: names[key] for key in keys}


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


class RowWriter:
    """One writer for both formats, so the two exports can never drift apart."""

    def __init__(self, out: TextIO, fmt: Format, columns: Iterable[str]) -> None:
        self.out = out
        self.fmt = fmt
        self.columns = list(columns)
        self.rows = 0
        self._csv = None
        if fmt == "csv":
            self._csv = csv.writer(out, lineterminator="\n")
            self._csv.writerow([csv_cell(column) for column in self.columns])

    def write(self, row: dict[str, Any]) -> None:
        self.rows += 1
        if self._csv is not None:
            self._csv.writerow([csv_cell(row.get(column)) for column in self.columns])
        else:
            record = {column: row.get(column) for column in self.columns}
            self.out.write(json.dumps(record, ensure_ascii=False) + "\n")


async def write_answers(
    answers: AsyncIterator[ExportAnswer], out: TextIO, fmt: Format
) -> ExportSummary:
    """Every answer, those of suspended workers included and flagged in `excluded`."""
    writer = RowWriter(out, fmt, ANSWER_COLUMNS)
    tally = Tally()
    async for answer in answers:
        tally.add(answer)
        writer.write(
            {
                "answer_id": answer.answer_id,
                "item_id": answer.item_id,
                "id": answer.external_id,
                "worker_id": answer.worker_id,
                "answer": answer.value,
                "duration_ms": answer.duration_ms,
                "answered_at": iso(answer.created_at),
                "is_gold": answer.gold,
                "correct": answer.correct,
                "fast": answer.fast,
                "excluded": answer.excluded,
            }
        )
    return ExportSummary("answers", writer.rows, None, *tally.counts())


class Tally:
    """Counts answers as the status does: counted, excluded, stored."""

    def __init__(self) -> None:
        self.counted = self.excluded = self.stored = 0

    def add(self, answer: ExportAnswer) -> None:
        self.stored += 1
        if answer.excluded:
            self.excluded += 1
        elif not answer.gold:
            self.counted += 1

    def counts(self) -> tuple[int, int, int]:
        return self.counted, self.excluded, self.stored


async def write_labels(
    items: AsyncIterator[ExportItem],
    answers: AsyncIterator[ExportAnswer],
    settings: BatchSettings,
    out: TextIO,
    fmt: Format,
) -> ExportSummary:
    """One row per item: its label by the batch's method, the answers behind it and their
    agreement, then the item's own metadata columns. Gold items carry their known answer;
    answers of suspended workers are left out."""
    # Answers on gold items are used too (they tell the models about each worker), but only
    # those on ordinary items are counted, as in the status.
    used = []
    tally = Tally()
    async for answer in answers:
        tally.add(answer)
        if not answer.excluded:
            used.append((answer.item_id, answer.worker_id, answer.value))
    rows = [item async for item in items]
    gold = {item.item_id: item.gold for item in rows if item.gold is not None}
    # Seconds of numpy over a million answers: in a thread, so the bot answers meanwhile.
    labels, alpha = await asyncio.to_thread(_labels, used, settings, gold)
    metadata_columns: dict[str, None] = {}
    for item in rows:
        metadata_columns.update(dict.fromkeys(item.metadata))
    renamed = column_names(list(metadata_columns), LABEL_COLUMNS)
    writer = RowWriter(out, fmt, [*LABEL_COLUMNS, *renamed.values()])
    for item in rows:
        label = labels.get(item.item_id)
        row: dict[str, Any] = {
            "item_id": item.item_id,
            "id": item.external_id,
            "text": item.text,
            "image": item.image,
            "label": label.label if label else None,
            "answers": label.answers if label else 0,
            "agreement": round(label.agreement, 4) if label else None,
            "confidence": round(label.confidence, 4) if label else None,
            "method": settings.aggregation if label else None,
            "gold": item.gold,
        }
        if item.gold is not None:
            row.update(label=item.gold, confidence=1.0, method="gold")
        row.update({renamed[key]: value for key, value in item.metadata.items()})
        writer.write(row)
    return ExportSummary(
        "labels",
        writer.rows,
        settings.aggregation,
        *tally.counts(),
        None if alpha != alpha else round(alpha, 4),  # NaN: no item has two answers
    )


def _labels(
    used: list[tuple[int, int, str]], settings: BatchSettings, gold: dict[int, str]
) -> tuple[dict[int, Label], float]:
    """Each item's label by the batch's method, and the answers' agreement."""
    return label_answers(used, settings.kind, settings.aggregation, gold)


def write_workers(
    rows: Iterable[WorkerRow], out: TextIO, fmt: Format, currency: str
) -> ExportSummary:
    """What each worker did in the batch and what they are owed for it (in `currency`)."""
    writer = RowWriter(out, fmt, WORKER_COLUMNS)
    owed = 0.0
    for row in rows:
        owed += row.earned
        writer.write(
            {
                "worker_id": row.worker_id,
                "name": row.name,
                "status": row.status,
                "answers": row.answers,
                "gold_answers": row.gold_answers,
                "gold_accuracy": None if row.accuracy is None else round(row.accuracy, 4),
                "owed": round(row.earned, 6),
                "hours": round(row.seconds_worked / 3600, 4),
                "hourly_rate": None if row.hourly_rate is None else round(row.hourly_rate, 2),
                "reason": row.reason,
            }
        )
    return ExportSummary("workers", writer.rows, owed=owed, currency=currency)
