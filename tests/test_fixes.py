"""Fixes from the audit (issue 9): announcements after /stop, cards Telegram refuses, exports
whose column names collide or run as formulas, a broadcast on the next line, and exams of
banned workers. Each test acts through the sandbox as a worker or coordinator would."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox import SandboxUser
from labeling.batch import BatchSettings
from labeling.export import LABEL_COLUMNS, Format, write_labels
from labeling.models import ExportAnswer, ExportItem
from tests.harness import BOSS, Harness, first_card, say, settle

CAPTION = "question: Is it positive?\noptions: yes, no\noverlap: 1\ngold_ratio: 0"


async def publish_batch(boss: SandboxUser, number: int) -> None:
    """Uploads a small batch, publishes it and waits until every active worker was told."""
    before = len(boss.bot_messages)
    boss.send_document(f"batch{number}.csv", b"text\nGreat phone\nBroke in a day\n", CAPTION)
    await boss.wait_for(
        lambda u: any(f"Batch {number}" in m.shown for m in u.bot_messages[before:])
    )
    await say(boss, f"/publish {number}", "is open")
    await boss.wait_for(
        lambda u: any(m.shown.startswith(f"Batch {number} announced") for m in u.bot_messages)
    )


async def announced(office: Harness, content: str, *workers: SandboxUser, **settings: Any) -> int:
    """Adds and publishes a batch, and waits until its announcement reached `workers`."""
    batch = await office.add_batch(content, **settings)
    for worker in workers:
        await worker.wait_for(lambda u: any("New batch" in m.shown for m in u.bot_messages))
    return batch


def told(worker: SandboxUser, batch: int) -> bool:
    """Whether the worker got batch `batch`'s announcement (its uploads are named batchN)."""
    return any(f"New batch: batch{batch}." in m.shown for m in worker.bot_messages)


# -- item 4: only /start turns announcements back on ----------------------------------------


async def test_next_and_its_buttons_keep_announcements_off_until_start(office: Harness) -> None:
    boss = office.user(BOSS)
    quiet, keen = await office.join(41), await office.join(42)
    await publish_batch(boss, 1)
    assert told(quiet, 1) and told(keen, 1)
    await say(quiet, "/stop", "Paused")
    # Every way to ask for work that is not /start: the announcement's button, /next, and the
    # Next task button under "nothing left".
    quiet.press("Start labeling ▶")
    await quiet.wait_for(lambda u: any("Is it positive?" in m.shown for m in u.bot_messages))
    await say(quiet, "/next", "Is it positive?")
    quiet.press("yes")
    await quiet.wait_for(lambda u: u.last.find_button("yes") is not None and u.last.edits == 1)
    quiet.press("no")
    await quiet.wait_for(lambda u: "Nothing left" in u.last.shown)
    answered = len(quiet.notices)
    quiet.press("Next task ▶")
    await quiet.wait_for(lambda u: len(u.notices) > answered)

    await publish_batch(boss, 2)
    assert told(keen, 2)
    assert not told(quiet, 2), "/next and the buttons turned announcements back on"
    assert await office.query("SELECT notify FROM workers WHERE id = 41") == [(0,)]

    await say(quiet, "/start", "Welcome")
    await publish_batch(boss, 3)
    assert told(quiet, 3) and told(keen, 3)


# -- item 5: a card Telegram refuses takes its item out, not the worker ---------------------

REFUSED = "Bad Request: wrong type of the web page content"


def photos(images: str) -> str:
    """Three items whose pictures the sandbox can fetch from the tests' image server."""
    return "image,text\n" + "".join(
        f"{images}/{name}.jpg,{text}\n"
        for name, text in (("a", "first"), ("b", "second"), ("c", "third"))
    )


async def test_a_refused_image_is_taken_out_and_the_worker_gets_the_next_task(
    office: Harness, images: str
) -> None:
    worker = await office.join(51)
    batch = await announced(office, photos(images), worker, options="duck,no duck", overlap=1)
    office.sandbox.inject(400, method="send_photo", description=REFUSED)
    card = await first_card(office, worker)
    assert "second" in card.shown and card.photo is not None
    assert await office.query("SELECT text, state FROM items ORDER BY id") == [
        ("first", "broken"),
        ("second", "ok"),
        ("third", "ok"),
    ]
    # Released, and neither answered, paid nor counted as a skip against the worker.
    assert await office.query(
        "SELECT i.text, a.status FROM assignments a JOIN items i ON i.id = a.item_id ORDER BY a.id"
    ) == [("first", "expired"), ("second", "open")]
    assert await office.query("SELECT COUNT(*) FROM answers") == [(0,)]
    assert await office.query("SELECT COUNT(*) FROM ledger") == [(0,)]
    assert "Skipped: 0" in await say(worker, "/stats", "Skipped")
    # The next worker is not trapped by it, and the coordinator sees it.
    other = await office.join(52)
    assert "third" in await say(other, "/next", "third")
    boss = office.user(BOSS)
    assert "#1 [broken]: first" in await say(boss, f"/reports {batch}", "broken")


async def test_a_missing_local_image_is_taken_out_too(office: Harness, tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"\x89PNG fake")
    imported = await office.services.batches.import_file(
        b"image,text\na.png,first\nb.png,second\n",
        "local.csv",
        BatchSettings(name="Local", question="Duck?", options=("duck", "no duck"), overlap=1),
        base_dir=tmp_path,
    )
    worker = await office.join(53)
    await office.services.batches.publish(imported.batch_id)
    await worker.wait_for(lambda u: any("New batch" in m.shown for m in u.bot_messages))
    (tmp_path / "a.png").unlink()
    card = await first_card(office, worker)
    assert "second" in card.shown and card.photo is not None
    assert await office.query("SELECT text, state FROM items ORDER BY id") == [
        ("first", "broken"),
        ("second", "ok"),
    ]


async def test_a_refused_next_card_after_a_tap_moves_on_to_the_one_after(
    office: Harness, images: str
) -> None:
    worker = await office.join(54)
    await announced(office, photos(images), worker, options="duck,no duck", overlap=1)
    card = await first_card(office, worker)
    assert "first" in card.shown
    # Telegram refuses the second image whichever way it is sent.
    office.sandbox.inject(400, method="edit_message_media", description=REFUSED)
    office.sandbox.inject(400, method="send_photo", description=REFUSED)
    worker.press("duck", message_id=card.message_id)
    await worker.wait_for(lambda u: "third" in u.last.shown)
    assert "✓ Saved." in worker.last.shown
    assert await office.query("SELECT text, state FROM items ORDER BY id") == [
        ("first", "ok"),
        ("second", "broken"),
        ("third", "ok"),
    ]
    assert await office.query("SELECT COUNT(*) FROM answers") == [(1,)]


async def test_refused_gold_is_not_counted_as_gold_given_back(office: Harness, images: str) -> None:
    """Gold items are images and ordinary ones text, so the first gold card is refused."""
    gold = "".join(f"{images}/g{n}.jpg,gold {n},{'yes' if n % 2 else 'no'}\n" for n in range(4))
    plain = "".join(f",plain {n},\n" for n in range(8))
    worker = await office.join(55)
    await announced(office, "image,text,gold\n" + gold + plain, worker, options="yes,no")
    office.sandbox.inject(400, method="send_photo", description=REFUSED)
    card = await first_card(office, worker)
    while card.photo is None:  # gold comes within the first min_gold (3) tasks
        edits = card.edits
        worker.press("yes", message_id=card.message_id)
        await worker.wait_for(
            lambda u, c=card, e=edits: u.last is not c or (c.edits > e and c.buttons != [])
        )
        card = worker.last
        assert card is not None
    assert card.find_button("yes") is not None and "gold" in card.shown
    assert await office.query(
        "SELECT a.kind, i.state FROM assignments a JOIN items i ON i.id = a.item_id"
        " WHERE a.status != 'answered' ORDER BY a.id"
    ) == [("gold", "broken"), ("gold", "ok")]
    # Still owed (the card shown is gold again), and not counted as gold given back.
    assert await office.query("SELECT gold_returned, gold_owed FROM worker_batches") == [(0, 1)]


async def test_a_network_error_on_a_card_breaks_nothing(office: Harness, images: str) -> None:
    worker = await office.join(56)
    await announced(office, photos(images), worker, options="duck,no duck", overlap=1)
    office.sandbox.inject(0, method="send_photo")  # the connection breaks: not the card's fault
    worker.send("/next")
    await settle(lambda: office.sandbox.calls["send_photo"] >= 1)
    card = await first_card(office, worker)
    assert "first" in card.shown
    assert await office.query("SELECT COUNT(*) FROM items WHERE state = 'broken'") == [(0,)]


# -- item 11: exports, broadcasts on the next line, exams of banned workers -----------------


async def items_of(rows: list[ExportItem]) -> AsyncIterator[ExportItem]:
    for row in rows:
        yield row


async def no_answers() -> AsyncIterator[ExportAnswer]:
    for answer in ():
        yield answer


async def labels_export(metadata: dict[str, str], fmt: Format) -> str:
    out = io.StringIO()
    item = ExportItem(1, "r1", "Great phone", None, None, metadata)
    settings = BatchSettings(name="b", question="q", options=("yes", "no"))
    await write_labels(items_of([item]), no_answers(), settings, out, fmt)
    return out.getvalue()


async def test_a_metadata_column_named_like_a_formula_is_escaped_in_the_header() -> None:
    header = next(csv.reader(io.StringIO(await labels_export({"=cmd()": "x"}, "csv"))))
    assert header[-1] == "'=cmd()"
    jsonl = json.loads(await labels_export({"=cmd()": "x"}, "jsonl"))
    assert jsonl["=cmd()"] == "x"  # JSON keys run nowhere


@pytest.mark.parametrize(
    "metadata",
    [
        {"label": "mine", "meta_label": "also mine"},
        {"meta_label": "also mine", "label": "mine"},
        {"label": "mine", "meta_label": "also mine", "meta_label_2": "third", "answers": "4"},
        {"=x": "formula", "'=x": "apostrophe"},
    ],
)
async def test_metadata_columns_never_collide_with_export_columns_or_each_other(
    metadata: dict[str, str],
) -> None:
    rows = list(csv.reader(io.StringIO(await labels_export(metadata, "csv"))))
    header, values = rows
    assert len(set(header)) == len(header), header
    assert sorted(values[len(LABEL_COLUMNS) :]) == sorted(metadata.values())
    assert header[: len(LABEL_COLUMNS)] == list(LABEL_COLUMNS)
    record = json.loads(await labels_export(metadata, "jsonl"))
    assert sorted(list(record.values())[len(LABEL_COLUMNS) :]) == sorted(metadata.values())
    # The same names every time, and a column keeps its own name unless an export column
    # has it.
    assert header == next(csv.reader(io.StringIO(await labels_export(metadata, "csv"))))
    if "meta_label" in metadata:
        assert values[header.index("meta_label")] == "also mine"
        assert record["meta_label"] == "also mine"


async def test_a_broadcast_written_on_the_next_line_keeps_its_first_word(office: Harness) -> None:
    boss = office.user(BOSS)
    worker = await office.join(57)
    await say(boss, "/broadcast\nHello all,\nthe batch closes today", "queued")
    await worker.wait_for(lambda u: "Hello" in u.last.shown)
    assert worker.last is not None
    assert worker.last.shown == "Hello all,\nthe batch closes today"


async def test_a_banned_worker_cannot_finish_an_exam_already_started(office: Harness) -> None:
    rows = "".join(f"g{n},Photo {n}: a {animal},{animal}\n" for n, animal in enumerate("ab" * 2))
    worker = await office.join(58)
    await announced(
        office, "id,text,gold\n" + rows + "r9,Photo 9,\n", worker, options="a,b", exam_size=2
    )
    card = await first_card(office, worker)
    assert card.shown.startswith("Training 1 of 2")
    worker.press("a", message_id=card.message_id)
    await worker.wait_for(lambda u: "Training 2 of 2" in card.shown)
    await say(office.user(BOSS), "/ban 58 cheating", "banned")
    worker.press("b", message_id=card.message_id)
    await worker.wait_for(lambda u: len(u.notices) >= 2)
    assert worker.notices[-1].text == "This batch is not taking answers right now."
    assert await office.query("SELECT COUNT(*) FROM exam_answers") == [(1,)]
    assert await office.query("SELECT finished_at FROM exam_attempts") == [(None,)]
    assert await office.query("SELECT COUNT(*) FROM worker_batches WHERE status = 'active'") == [
        (0,)
    ]
