"""Reads batch files (CSV with a header, or JSON Lines) into validated items, all or nothing."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from labeling.batch import BatchSettings, ItemRow, card_problem

KNOWN_COLUMNS = {"id", "text", "image", "gold", "explanation"}
# A batch sent in the chat: Telegram lets a bot download 20 MB, about this many short items.
MAX_ITEMS = 200_000
# A batch imported from a file on disk with the command line, which has no download limit.
MAX_CLI_ITEMS = 2_000_000
MAX_COLUMNS = 200
MAX_CELL = 100_000
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # Telegram's limit for photos sent by upload
MAX_REPORTED_ERRORS = 50
FORMATS = ("csv", "jsonl", "json")


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason


class BatchFileError(Exception):
    """A batch file that cannot be imported, with every reason found."""

    def __init__(self, errors: list[RowError], total: int | None = None) -> None:
        self.errors = errors
        self.total = total if total is not None else len(errors)
        super().__init__(self.describe())

    def describe(self) -> str:
        lines = [str(error) for error in self.errors]
        if self.total > len(self.errors):
            lines.append(f"... and {self.total - len(self.errors)} more errors")
        return "\n".join(lines)


def detect_format(filename: str) -> str:
    suffix = Path(filename).suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix == "json":
        return "json"
    if suffix in ("csv", "txt"):
        return "csv"
    raise BatchFileError(
        [RowError(0, f"unknown file type '.{suffix}': send a .csv, .jsonl or .json file")]
    )


def parse_batch_file(
    content: bytes,
    filename: str,
    settings: BatchSettings,
    *,
    base_dir: Path | None = None,
    file_format: str | None = None,
    max_items: int = MAX_ITEMS,
) -> list[ItemRow]:
    """Returns every item of the file, or raises BatchFileError listing every bad row.

    `base_dir` is where local image paths are looked up; without it only URLs are accepted
    (a file sent through Telegram cannot point into the bot's own disk).
    """
    kind = file_format or detect_format(filename)
    text = _decode(content)
    errors = _Errors()
    items: list[ItemRow] = []
    seen_ids: dict[str, int] = {}
    rows = {"csv": _csv_rows, "jsonl": _jsonl_rows, "json": _json_rows}[kind](text)
    for line, row in rows:
        if isinstance(row, RowError):
            errors.add(row)
            continue
        if len(seen_ids) + errors.total >= max_items:
            errors.add(RowError(line, f"a batch holds at most {max_items} items"))
            break
        try:
            item = _item(line, row, settings, base_dir)
        except ValueError as error:
            errors.add(RowError(line, str(error)))
            continue
        key = item.external_id if item.external_id is not None else f"#{line}"
        if key in seen_ids:
            errors.add(RowError(line, f"id '{key}' repeats line {seen_ids[key]}"))
            continue
        seen_ids[key] = line
        if not errors.total:  # once a row is bad nothing is stored: keep no more items
            items.append(item)
    if not seen_ids and not errors.total:
        errors.add(RowError(0, "the file has no items"))
    if errors.total:
        raise BatchFileError(errors.kept, total=errors.total)
    return items


class _Errors:
    """Every bad row is counted; only the first few, those a coordinator is shown, are kept,
    so a file of a million bad rows costs no more memory than one of fifty."""

    def __init__(self) -> None:
        self.kept: list[RowError] = []
        self.total = 0

    def add(self, error: RowError) -> None:
        self.total += 1
        if len(self.kept) < MAX_REPORTED_ERRORS:
            self.kept.append(error)


def _decode(content: bytes) -> str:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = content[: error.start].count(b"\n") + 1
        raise BatchFileError(
            [RowError(line, f"the file is not UTF-8 text (byte 0x{content[error.start]:02x})")]
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise BatchFileError([RowError(line, "the file is binary, not text")])
    return text


Row = dict[str, Any] | RowError


def _csv_rows(text: str) -> Iterator[tuple[int, Row]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        yield 1, RowError(1, f"bad CSV header: {error}")
        return
    if header is None:
        return
    columns = [name.strip().lower() for name in header]
    problem = _header_problem(columns)
    if problem:
        yield 1, RowError(1, problem)
        return
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield start, RowError(start, f"bad CSV: {error}")
            return
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            yield line, RowError(line, f"{len(cells)} fields, but the header has {len(columns)}")
            continue
        if any(len(cell) > MAX_CELL for cell in cells):
            yield line, RowError(line, f"a cell is longer than {MAX_CELL} characters")
            continue
        yield line, {name: cell for name, cell in zip(columns, cells, strict=True)}


def _header_problem(columns: list[str]) -> str | None:
    if len(columns) > MAX_COLUMNS:
        return f"the header has {len(columns)} columns; at most {MAX_COLUMNS} are allowed"
    if any(not name for name in columns):
        return "the header has an empty column name"
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        return f"the header repeats the column '{repeated[0]}'"
    if "text" not in columns and "image" not in columns:
        return "the header needs a 'text' or an 'image' column"
    return None


def _jsonl_rows(text: str) -> Iterator[tuple[int, Row]]:
    # Only "\n" ends a line: str.splitlines would also split inside strings holding U+2028,
    # U+0085 or form feeds, which JSON allows unescaped.
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except (json.JSONDecodeError, RecursionError) as error:
            message = error.msg if isinstance(error, json.JSONDecodeError) else "nested too deeply"
            yield line, RowError(line, f"not valid JSON: {message}")
            continue
        yield line, _object_row(line, value, raw, "each line must be a JSON object")


def _json_rows(text: str) -> Iterator[tuple[int, Row]]:
    """A JSON array of objects; each object's line is where it starts in the file. Lines are
    counted as the parse moves on, never from the start again: a 20 MB file stays linear."""
    decoder = json.JSONDecoder()
    lines = _Lines(text)
    position = _skip_space(text, 0)
    if position >= len(text) or text[position] != "[":
        yield 1, RowError(lines.at(position), "a .json batch must be an array of objects")
        return
    position = _skip_space(text, position + 1)
    if position < len(text) and text[position] == "]":
        return
    while position < len(text):
        line = lines.at(position)
        start = position
        try:
            value, position = decoder.raw_decode(text, position)
        except (json.JSONDecodeError, RecursionError) as error:
            message = error.msg if isinstance(error, json.JSONDecodeError) else "nested too deeply"
            yield line, RowError(line, f"not valid JSON: {message}")
            return
        raw = text[start:position]
        yield line, _object_row(line, value, raw, "each item must be a JSON object")
        position = _skip_space(text, position)
        if position < len(text) and text[position] == ",":
            position = _skip_space(text, position + 1)
        elif position < len(text) and text[position] == "]":
            return
        else:
            where = lines.at(position)
            yield where, RowError(where, "not valid JSON: expected ',' or ']' after an item")
            return
    where = lines.at(position)
    yield where, RowError(where, "not valid JSON: the array is not closed")


class _Lines:
    """Line numbers of positions that only move forward, counted incrementally."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0
        self.line = 1

    def at(self, position: int) -> int:
        self.line += self.text.count("\n", self.position, position)
        self.position = position
        return self.line


# JSON may escape half of a surrogate pair alone ("\ud800"); such text is not Unicode and
# could not be stored, so the row is refused with its line.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SPACE = re.compile(r"[ \t\r\n]*")


def _object_row(line: int, value: Any, raw: str, not_object: str) -> Row:
    if not isinstance(value, dict):
        return RowError(line, not_object)
    if len(value) > MAX_COLUMNS:
        return RowError(line, f"more than {MAX_COLUMNS} fields")
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return RowError(line, "holds an unpaired surrogate escape (\\udXXX): not valid text")
    return {str(key).strip().lower(): cell for key, cell in value.items()}


def _skip_space(text: str, position: int) -> int:
    match = _SPACE.match(text, position)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _cell(row: dict[str, Any], name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"'{name}' must be text")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"'{name}' must be a finite number or text")
    text = str(value).strip()
    return text or None


def _item(
    line: int, row: dict[str, Any], settings: BatchSettings, base_dir: Path | None
) -> ItemRow:
    gold = _cell(row, "gold")
    if gold is not None:
        # Stored in the kind's own encoding, so gold compares with answers as they are stored.
        kind = settings.kind
        parsed = kind.gold(gold)
        if parsed is None:
            raise ValueError(f"gold answer '{gold}' {kind.not_gold}")
        gold = parsed
    image = _cell(row, "image")
    metadata = {key: value for key, value in row.items() if key not in KNOWN_COLUMNS}
    try:
        item = ItemRow(
            line=line,
            external_id=_cell(row, "id"),
            text=_cell(row, "text"),
            image=image,
            gold=gold,
            explanation=_cell(row, "explanation"),
            metadata=metadata,
        )
    except ValidationError as error:
        raise ValueError(_first_reason(error)) from None
    if image is not None and not item.image_is_url:
        item = item.model_copy(update={"image": _local_image(image, base_dir)})
    problem = card_problem(settings, item)
    if problem:
        raise ValueError(problem)
    return item


def _local_image(path: str, base_dir: Path | None) -> str:
    if base_dir is None:
        raise ValueError("image must be an http(s) URL")
    folder = base_dir.resolve()
    resolved = (folder / path).resolve()
    # A batch file may only show pictures from its own folder: "../" or an absolute path
    # would let it send any file the bot can read to the workers.
    if not resolved.is_relative_to(folder):
        raise ValueError(f"image file '{path}' is outside the batch file's folder")
    if not resolved.is_file():
        raise ValueError(f"image file '{path}' not found")
    if resolved.stat().st_size > MAX_IMAGE_BYTES:
        raise ValueError(f"image file '{path}' is over 10 MB")
    return str(resolved)


def _first_reason(error: ValidationError) -> str:
    detail = error.errors()[0]
    where = ".".join(str(part) for part in detail["loc"] if part != "__root__")
    message = detail["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
