"""Batch files from a coordinator who means harm, or just has an odd file: big, full of bad
rows, with text that is not quite Unicode, or pointing at the bot's own disk."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from labeling.batch import CAPTION_LIMIT, BatchSettings
from labeling.batchfile import MAX_REPORTED_ERRORS, BatchFileError, parse_batch_file

CHOICE = BatchSettings(name="b", question="q?", options="yes,no")


def refused(content: str, filename: str, settings: BatchSettings = CHOICE, **kwargs: object) -> str:
    with pytest.raises(BatchFileError) as caught:
        parse_batch_file(content.encode(), filename, settings, **kwargs)  # type: ignore[arg-type]
    return caught.value.describe()


def test_json_array_lines_are_right_far_into_a_long_file() -> None:
    rows = [json.dumps({"id": f"i{n}", "text": f"row {n}"}) for n in range(3000)]
    rows[2500] = json.dumps({"id": "bad", "text": "x", "gold": "maybe"})
    content = "[\n" + ",\n".join(rows) + "\n]"
    # Row n starts on line n + 2: the "[" has a line of its own.
    assert refused(content, "b.json").startswith("line 2502: gold answer 'maybe'")


def test_bad_rows_cost_no_more_memory_than_the_reported_ones() -> None:
    content = "id,text,gold\n" + "".join(f"{n},text,maybe\n" for n in range(60_000))
    tracemalloc.start()
    try:
        with pytest.raises(BatchFileError) as caught:
            parse_batch_file(content.encode(), "b.csv", CHOICE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.total == 60_000
    assert len(caught.value.errors) == MAX_REPORTED_ERRORS
    # The file is 1 MB; sixty thousand kept errors (and items) took well over 20 MB.
    assert peak < 12 * 1024 * 1024


def test_jsonl_strings_may_hold_line_separators() -> None:
    content = json.dumps({"text": "first\u2028second\u0085third\x0cfourth"}, ensure_ascii=False)
    items = parse_batch_file((content + "\n").encode(), "b.jsonl", CHOICE)
    assert items[0].text == "first\u2028second\u0085third\x0cfourth"


@pytest.mark.parametrize("filename", ["b.jsonl", "b.json"])
def test_an_unpaired_surrogate_is_refused_with_its_line(filename: str) -> None:
    rows = ['{"text": "fine"}', '{"text": "ok", "note": "\\udc80 broken"}']
    content = "\n".join(rows) if filename == "b.jsonl" else "[" + ",\n".join(rows) + "]"
    assert refused(content, filename).startswith("line 2: holds an unpaired surrogate")


@pytest.mark.parametrize("path", ["../secret.png", "/etc/hostname", "sub/../../secret.png"])
def test_images_outside_the_batch_files_folder_are_refused(tmp_path: Path, path: str) -> None:
    folder = tmp_path / "batch"
    (folder / "sub").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(b"\x89PNG")
    message = refused(f"image\n{path}\n", "b.csv", base_dir=folder)
    assert "outside the batch file's folder" in message


def test_images_inside_the_folder_are_still_found(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.png").write_bytes(b"\x89PNG")
    items = parse_batch_file(b"image\nsub/./a.png\n", "b.csv", CHOICE, base_dir=tmp_path)
    assert items[0].image == str(tmp_path / "sub" / "a.png")


def test_an_upper_case_url_scheme_is_read_as_a_url() -> None:
    items = parse_batch_file(b"image\nHTTPS://example.org/A.png\n", "b.csv", CHOICE)
    assert items[0].image == "https://example.org/A.png"
    assert items[0].image_is_url


def test_a_card_too_long_for_a_caption_is_refused_at_import() -> None:
    wordy = BatchSettings(
        name="b",
        question="Which of these is right? " * 19,
        instructions="Read. " * 100,
        options="yes,no",
    )
    content = f"image,text\nhttps://example.org/a.png,{'x' * 390}\n"
    message = refused(content, "b.csv", wordy)
    assert f"over the {CAPTION_LIMIT} Telegram shows under a picture" in message
    # The same text without a picture fits in a message.
    assert parse_batch_file(f"text\n{'x' * 390}\n".encode(), "b.csv", wordy)
