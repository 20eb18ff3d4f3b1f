"""Batch files: every bad row is found, with its line, and nothing is half imported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeling.batch import BatchSettings
from labeling.batchfile import MAX_COLUMNS, BatchFileError, parse_batch_file

CHOICE = BatchSettings(name="b", question="q?", options="yes,no")
FREE = BatchSettings(name="b", question="q?")


def errors(content: str | bytes, filename: str = "b.csv", **kwargs: object) -> list[str]:
    raw = content.encode() if isinstance(content, str) else content
    with pytest.raises(BatchFileError) as caught:
        parse_batch_file(raw, filename, CHOICE, **kwargs)  # type: ignore[arg-type]
    return [str(error) for error in caught.value.errors]


def test_csv_rows_become_items_with_metadata() -> None:
    items = parse_batch_file(
        b'id,text,gold,explanation,source\n1,Good,YES,It praises,web\n2,"Bad,\nvery",,,app\n',
        "b.csv",
        CHOICE,
    )
    assert [(i.line, i.external_id, i.text, i.gold, i.metadata) for i in items] == [
        (2, "1", "Good", "yes", {"source": "web"}),
        (3, "2", "Bad,\nvery", None, {"source": "app"}),
    ]
    assert items[0].explanation == "It praises"


def test_jsonl_rows_become_items() -> None:
    content = '{"text": "a", "score": 3}\n\n{"text": "b", "gold": "no", "tags": ["x"]}\n'
    items = parse_batch_file(content.encode(), "b.jsonl", CHOICE)
    assert [(i.line, i.text, i.gold, i.metadata) for i in items] == [
        (1, "a", None, {"score": 3}),
        (3, "b", "no", {"tags": ["x"]}),
    ]


def test_a_byte_order_mark_is_ignored() -> None:
    assert parse_batch_file("\ufefftext\nhi\n".encode(), "b.csv", FREE)[0].text == "hi"


@pytest.mark.parametrize(
    ("content", "filename", "expected"),
    [
        (b"", "b.csv", ["the file has no items"]),
        (b"text\n", "b.csv", ["the file has no items"]),
        (b"name,score\nx,1\n", "b.csv", ["line 1: the header needs a 'text' or an 'image' column"]),
        (b"text,text\na,b\n", "b.csv", ["line 1: the header repeats the column 'text'"]),
        (b"text,\na,b\n", "b.csv", ["line 1: the header has an empty column name"]),
        (b"text\nok\n\xff\xfe\n", "b.csv", ["line 3: the file is not UTF-8 text (byte 0xff)"]),
        (b"text\nok\x00\n", "b.csv", ["line 2: the file is binary, not text"]),
        (
            b"text,id\na,1\nb\nc,3,4\n",
            "b.csv",
            ["line 3: 1 fields, but the header has 2", "line 4: 3 fields, but the header has 2"],
        ),
        (b'text\n"unclosed\n', "b.csv", ["line 2: bad CSV: unexpected end of data"]),
        (b"text,id\na,1\nb,1\n", "b.csv", ["line 3: id '1' repeats line 2"]),
        (
            b"text,gold\na,maybe\n",
            "b.csv",
            ["line 2: gold answer 'maybe' is not one of the options"],
        ),
        (b"text,image,note\n,,x\n", "b.csv", ["line 2: needs a text or an image"]),
        (
            b"text\n" + b"x" * 3001 + b"\n",
            "b.csv",
            ["line 2: text: String should have at most 3000 characters"],
        ),
        (
            b'{"text": "a"}\n[1]\n{"text": \n',
            "b.jsonl",
            ["line 2: each line must be a JSON object", "line 3: not valid JSON: Expecting value"],
        ),
        (b'{"text": {"nested": 1}}\n', "b.jsonl", ["line 1: 'text' must be text"]),
        (b'{"text": true}\n', "b.jsonl", ["line 1: 'text' must be text"]),
        (b"text\na\n", "b.xlsx", ["unknown file type '.xlsx': send a .csv, .jsonl or .json file"]),
        (b"text,image\na,/etc/passwd\n", "b.csv", ["line 2: image must be an http(s) URL"]),
    ],
)
def test_bad_files_are_refused_with_line_numbers(
    content: bytes, filename: str, expected: list[str]
) -> None:
    assert errors(content, filename) == expected


def test_too_many_columns_are_refused() -> None:
    header = ",".join(["text", *(f"c{i}" for i in range(MAX_COLUMNS))])
    assert errors(header + "\n") == [
        f"line 1: the header has {MAX_COLUMNS + 1} columns; at most {MAX_COLUMNS} are allowed"
    ]


def test_local_images_resolve_against_the_files_folder(tmp_path: Path) -> None:
    (tmp_path / "duck.jpg").write_bytes(b"\xff\xd8jpeg")
    items = parse_batch_file(b"image\nduck.jpg\n", "b.csv", CHOICE, base_dir=tmp_path)
    assert items[0].image == str(tmp_path / "duck.jpg")
    assert errors(b"image\nmissing.jpg\n", base_dir=tmp_path) == [
        "line 2: image file 'missing.jpg' not found"
    ]


def test_long_text_under_an_image_is_refused() -> None:
    content = "image,text\nhttps://x.org/a.png," + "y" * 401 + "\n"
    assert errors(content) == ["line 2: text shown under an image must be at most 400 characters"]


def test_error_list_is_capped_but_counted() -> None:
    content = "text,gold\n" + "a,maybe\n" * 120
    with pytest.raises(BatchFileError) as caught:
        parse_batch_file(content.encode(), "b.csv", CHOICE)
    assert caught.value.total == 120 and len(caught.value.errors) == 50
    assert caught.value.describe().endswith("... and 70 more errors")


@given(st.binary(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_any_bytes_give_items_or_a_batch_file_error(content: bytes) -> None:
    for filename in ("b.csv", "b.jsonl"):
        try:
            items = parse_batch_file(content, filename, CHOICE)
        except BatchFileError as error:
            assert error.errors and all(e.reason for e in error.errors)
        else:
            assert items and all(item.text or item.image for item in items)


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["text", "id", "gold", "note", "image"]),
            st.one_of(st.text(max_size=30), st.integers(), st.none(), st.floats(allow_nan=True)),
        ),
        max_size=20,
    )
)
@settings(max_examples=200, deadline=None)
def test_jsonl_of_any_objects_is_parsed_or_refused_cleanly(rows: list[dict[str, object]]) -> None:
    content = "\n".join(json.dumps(row) for row in rows).encode()
    try:
        items = parse_batch_file(content, "b.jsonl", CHOICE)
    except BatchFileError as error:
        assert all(0 <= e.line <= len(rows) for e in error.errors)
    else:
        assert len(items) == len(rows)
