"""Erasure: a worker is forgotten (name, language, Telegram id) while their work stays valid;
and the files that hold people's data are readable by their owner only."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.cli import main
from bot.sandbox import SandboxUser
from handlers.callbacks import ForgetTap, decode, encode
from handlers.cards import PROBLEMS, REPORT
from handlers.erasure import CANCEL, DONE, ERASE, KEPT
from labeling.batch import BatchSettings
from labeling.erasure import ERASED_NAME, Erased, PseudonymTaken, Subject, pseudonym, refusal
from labeling.models import Problem, Submission
from storage.admin import AdminStore
from storage.db import Database
from storage.engine import Engine, Tx
from storage.erasure import PERSON_COLUMNS, ErasureStore, worker_columns
from tests.engines import replica, stored_batch
from tests.factories import registered
from tests.harness import Harness, first_card, press, say
from tests.test_replays import replayed_changes_nothing

BOSS = 500_000_001
ANN = 770_001_234  # an id no counter or message number in these tests reaches by chance
BOB = 770_005_678
ROWS = "id,text,gold\n" + "".join(
    f"r{i},review {i},{'yes' if i % 5 == 0 else ''}\n" for i in range(20)
)

# -- the rules ----------------------------------------------------------------------------


def test_pseudonyms_are_random_and_never_a_telegram_user_id() -> None:
    drawn = [pseudonym() for _ in range(1000)]
    assert all(-(2**53) < p < 0 for p in drawn)  # user ids are positive
    assert len(set(drawn)) == len(drawn)


@pytest.mark.parametrize(
    ("subject", "own", "refused"),
    [
        (Subject(5, known=True, banned=False, coordinator=False), True, None),
        (Subject(5, known=True, banned=False, coordinator=False), False, None),
        (Subject(5, known=False, banned=False, coordinator=False), True, "Nothing is stored"),
        (Subject(5, known=False, banned=False, coordinator=False), False, "there is no worker 5"),
        (Subject(-5, known=True, banned=False, coordinator=False), False, "there is no worker"),
        (Subject(5, known=True, banned=True, coordinator=False), True, "banned: ask a coord"),
        (Subject(5, known=True, banned=True, coordinator=False), False, None),
        (Subject(5, known=True, banned=False, coordinator=True), True, "must demote you"),
        (Subject(5, known=True, banned=False, coordinator=True), False, "is a coordinator"),
    ],
)
def test_who_may_be_erased(subject: Subject, own: bool, refused: str | None) -> None:
    reason = refusal(subject, own=own)
    assert reason == refused if refused is None else refused in (reason or "")


@given(st.none() | st.text("0123456789abcdef", min_size=16, max_size=16))
def test_the_forget_button_data_round_trips(code: str | None) -> None:
    assert decode(encode(ForgetTap(code))) == ForgetTap(code)


# -- what erasure keeps and what it removes -------------------------------------------------


async def _label_everything(harness: Harness, worker: SandboxUser) -> None:
    """The worker answers every task they are given: gold and ordinary, one reported."""
    card = await first_card(harness, worker)
    await press(worker, card, REPORT)
    await press(worker, card, PROBLEMS[Problem.UNCLEAR])
    while card.find_button("yes") is not None:
        await press(worker, card, "yes" if card.edits % 3 else "no")


async def _exports(harness: Harness, batch_id: int) -> dict[str, list[dict[str, str]]]:
    exported = {}
    for what in ("labels", "answers", "workers"):
        out = io.StringIO()
        await harness.services.batches.export(batch_id, what, "csv", out)  # type: ignore[arg-type]
        exported[what] = list(csv.DictReader(io.StringIO(out.getvalue())))
    return exported


def _mentions(database: Path, person: int) -> list[str]:
    """Every table and column that still holds `person`, as a number or inside a text."""
    found = []
    with closing(sqlite3.connect(database)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]:
                if conn.execute(
                    f"SELECT 1 FROM {table} WHERE {column} = ? OR instr({column}, ?) > 0",
                    (person, str(person)),
                ).fetchall():
                    found.append(f"{table}.{column}")
    return found


@contextmanager
def owner_only_umask() -> Iterator[None]:
    """A usual umask (022), so that a file created readable by all would show it."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


async def _populated(harness: Harness) -> tuple[int, SandboxUser, SandboxUser]:
    """Ann and Bob label a batch with gold; Ann reports an item, types an answer, was banned
    and unbanned, took an exam and has a notice; a broadcast reached both."""
    batch_id = await harness.add_batch(ROWS, options="yes,no", overlap=2, gold_ratio=0.2)
    ann, bob = await harness.join(ANN, "Ann"), await harness.join(BOB, "Bob")
    await _label_everything(harness, ann)
    await _label_everything(harness, bob)
    await harness.add_batch("text\nwhat colour is the sky?\n", name="Typed", overlap=1)
    card = await first_card(harness, ann)
    assert "Reply with your answer" in card.shown
    await say(ann, "blue", "Saved")
    boss = await harness.join(BOSS, "Boss")
    await say(boss, "/broadcast Thank you all", "Announcement queued")
    await ann.wait_for(lambda u: any("Thank you all" in m.shown for m in u.bot_messages))
    admin = harness.services.admin
    assert await admin.ban(ANN, BOSS, "testing") and await admin.unban(ANN, BOSS, None)
    async with Database(harness.database) as db, db.atomic() as conn:
        await conn.execute(
            "INSERT INTO exam_attempts (batch_id, worker_id, started_at, finished_at, answered,"
            " correct, passed) VALUES (?, ?, 1, 2, 1, 1, 1)",
            (batch_id, ANN),
        )
        await conn.execute(
            "INSERT INTO notices (worker_id, batch_id, kind, status, created_at)"
            " VALUES (?, ?, 'reinstated', 'sent', 1)",
            (ANN, batch_id),
        )
    return batch_id, ann, bob


async def _forget(worker: SandboxUser) -> Any:
    """Sends /forgetme and returns the confirmation message."""
    await say(worker, "/forgetme", "Erase your data?")
    message = worker.last
    assert message is not None and message.find_button(ERASE) is not None
    return message


async def test_a_worker_who_asks_is_forgotten_and_their_work_stays_valid(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path / "e.db", coordinator_ids=str(BOSS)) as harness:
        batch_id, ann, _ = await _populated(harness)
        before = await _exports(harness, batch_id)
        owed = await harness.query("SELECT SUM(amount), COUNT(*) FROM ledger")
        ann_owed = await harness.query("SELECT SUM(amount) FROM ledger WHERE worker_id = ?", (ANN,))
        standing = await harness.query(
            "SELECT * FROM worker_batches WHERE worker_id = ? ORDER BY batch_id", (ANN,)
        )
        assert _mentions(harness.database, ANN)  # the check below can see the id

        message = await _forget(ann)
        await press(ann, message, ERASE)
        assert message.shown == DONE

        assert _mentions(harness.database, ANN) == []
        ((alias, name, language, notify),) = await harness.query(
            "SELECT id, name, language, notify FROM workers WHERE id < 0"
        )
        assert (name, language, notify) == (ERASED_NAME, None, 0)
        after = await _exports(harness, batch_id)
        assert after["labels"] == before["labels"]  # aggregation unchanged
        renamed = {str(ANN): str(alias)}
        assert after["answers"] == [
            {**row, "worker_id": renamed.get(row["worker_id"], row["worker_id"])}
            for row in before["answers"]
        ]
        by_worker = {row["worker_id"]: row for row in after["workers"]}
        was = {row["worker_id"]: row for row in before["workers"]}[str(ANN)]
        assert by_worker[str(alias)] == {**was, "worker_id": str(alias), "name": ERASED_NAME}
        assert await harness.query("SELECT SUM(amount), COUNT(*) FROM ledger") == owed
        assert (
            await harness.query("SELECT SUM(amount) FROM ledger WHERE worker_id = ?", (alias,))
            == ann_owed
        )
        assert [
            row[1:]
            for row in await harness.query(
                "SELECT * FROM worker_batches WHERE worker_id = ? ORDER BY batch_id", (alias,)
            )
        ] == [row[1:] for row in standing]
        assert await harness.query(
            "SELECT action, actor_id, subject_id, reason FROM audit_log WHERE action = 'erase'"
        ) == [("erase", None, None, "at the worker's request")]

        # Writing again, Ann is a new worker with nothing behind her.
        assert "Welcome" in await say(ann, "/start", "Welcome")
        stats = await say(ann, "/stats", "Your work")
        assert "Answers: 0 (today 0)" in stats and "Earned: 0.00" in stats
        assert await harness.query("SELECT name FROM workers WHERE id = ?", (ANN,)) == [("Ann",)]


async def test_only_the_worker_s_own_fresh_confirmation_erases(tmp_path: Path) -> None:
    async with Harness(tmp_path / "c.db", coordinator_ids=str(BOSS)) as harness:
        await harness.add_batch(ROWS, options="yes,no", overlap=2)
        ann, bob = await harness.join(ANN, "Ann"), await harness.join(BOB, "Bob")
        await _label_everything(harness, ann)
        message = await _forget(ann)
        erase = message.find_button(ERASE)
        assert erase is not None
        await harness.delivered()
        snapshot = await harness.snapshot()

        async def refused(user: SandboxUser, data: str) -> None:
            notices = len(user.notices)
            user.tap(message, data)
            await user.wait_for(lambda u: len(u.notices) > notices)
            assert user.notices[-1].text == "This button is no longer valid."
            assert await harness.snapshot() == snapshot

        await refused(bob, erase["callback_data"])  # someone else's button: forged
        await refused(ann, "f:" + "0" * 16)  # a code Ann was never given
        # Cancelled, the same button erases nothing any more.
        await press(ann, message, CANCEL)
        assert message.shown == KEPT
        await refused(ann, erase["callback_data"])

        message = await _forget(ann)
        await press(ann, message, ERASE)
        assert message.shown == DONE
        erased = await harness.snapshot()
        # Ann starts afresh; the same tap delivered again finds no request and changes nothing.
        await say(ann, "/start", "Welcome")
        assert (await harness.snapshot())["workers"] != erased["workers"]
        await replayed_changes_nothing(harness, ann, ann.last_update_id - 1)  # the Erase tap


async def test_banned_workers_and_coordinators_cannot_erase_themselves(tmp_path: Path) -> None:
    async with Harness(tmp_path / "b.db", coordinator_ids=str(BOSS)) as harness:
        ann, boss = await harness.join(ANN, "Ann"), await harness.join(BOSS, "Boss")
        assert await harness.services.admin.ban(ANN, BOSS, None)
        assert "banned: ask a coordinator" in await say(ann, "/forgetme", "banned")
        assert "must demote you first" in await say(boss, "/forgetme", "coordinator")
        stranger = harness.user(BOB)
        assert await say(stranger, "/forgetme", "Nothing") == "Nothing is stored about you."
        assert await harness.query("SELECT COUNT(*) FROM workers") == [(2,)]


def test_the_operator_erases_a_worker_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "cli.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_PATH", str(database))
    monkeypatch.setenv("COORDINATOR_IDS", str(BOSS))

    async def scene() -> None:
        async with Harness(database, coordinator_ids=str(BOSS)) as harness:
            await harness.add_batch(ROWS, options="yes,no", overlap=2)
            await _label_everything(harness, await harness.join(ANN, "Ann"))
            await harness.join(BOSS, "Boss")
            assert await harness.services.admin.ban(ANN, BOSS, "spam")

    asyncio.run(scene())
    capsys.readouterr()
    assert main(["erase", str(ANN)]) == 0  # banned: the operator may still erase
    out = capsys.readouterr().out
    assert out.startswith(f"worker {ANN} erased: name and language removed; ")
    assert "kept under a random pseudonym" in out and "-" not in out.split(";")[1]
    assert _mentions(database, ANN) == []
    assert main(["erase", str(ANN)]) == 2
    assert capsys.readouterr().err.strip() == f"labelbot: there is no worker {ANN}"
    assert main(["erase", str(BOSS)]) == 2
    assert "is a coordinator" in capsys.readouterr().err


# Every table's columns, as each engine's catalogue lists them.
COLUMNS = {
    "sqlite": "SELECT m.name AS tab, c.name AS col FROM sqlite_master m,"
    " pragma_table_info(m.name) c WHERE m.type = 'table'",
    "postgresql": "SELECT table_name AS tab, column_name AS col FROM information_schema.columns"
    " WHERE table_schema = current_schema()",
}


async def test_every_column_that_names_a_person_is_rewritten(engine: Engine) -> None:
    """A later migration that adds a column holding a person's id must be rewritten too:
    through a foreign key to workers, or listed in storage.erasure."""
    covered = set(await engine.run(worker_columns)) | set(PERSON_COLUMNS)
    assert ("answers", "worker_id") in covered  # the schema's keys were read
    # Coordinators are never erased (they step down first).
    covered.add(("coordinators", "user_id"))
    naming = {
        (row["tab"], row["col"])
        for row in await engine.read(COLUMNS[engine.engine])
        if row["col"] in ("worker_id", "user_id", "actor_id", "subject_id")
        or row["col"].endswith("_by")
    }
    assert naming <= covered, naming - covered


# -- files readable by their owner only -----------------------------------------------------


async def test_the_database_and_its_journal_are_readable_by_their_owner_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new" / "labelbot.db"
    with owner_only_umask():
        async with Database(path) as db:
            await db.migrate()
            modes = {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir() if p.is_file()}
    assert modes == {"labelbot.db": 0o600, "labelbot.db-wal": 0o600, "labelbot.db-shm": 0o600}


def test_migrate_creates_the_database_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "cli.db"))
    with owner_only_umask():
        assert main(["migrate"]) == 0
        assert main(["backup", str(tmp_path / "copy.db")]) == 0
    assert (tmp_path / "cli.db").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "copy.db").stat().st_mode & 0o777 == 0o600


# -- erasure in the database, on both engines ---------------------------------------------------


async def _mentioned(engine: Engine, person: int) -> list[str]:
    """Every table and column that still holds `person`, as a number or inside a text."""
    found = []
    for column in await engine.read(COLUMNS[engine.engine]):
        table, name = column["tab"], column["col"]
        if await engine.read(
            f"SELECT 1 FROM {table} WHERE CAST({name} AS TEXT) LIKE ?", (f"%{person}%",)
        ):
            found.append(f"{table}.{name}")
    return found


async def test_erasure_rewrites_every_table_in_one_change(engine: Engine) -> None:
    """Ann answered (typed, from her messages), holds a task, was banned and unbanned,
    promoted Bob once, uploaded a batch, took an exam, was announced to and has notices."""
    typed = BatchSettings(name="Typed", question="Which colour?", overlap=2, reward=0.5)
    batch = await stored_batch(engine, b"text\nsky\ngrass\nsun\nsea\nsnow\n", typed)
    desk = await registered(engine, ANN, BOB, BOSS)
    for number in (1, 2):
        task = (await desk.current_or_next(ANN, 1.0, 600.0)).task
        assert task is not None
        answer = Submission(task.assignment_id, ANN, text="blue", source=f"m:{ANN}:{number}")
        await desk.submit(answer, 2.0, 600.0)
    held = (await desk.current_or_next(ANN, 3.0, 600.0)).task
    assert held is not None
    admin = AdminStore(engine)
    assert await admin.set_banned(ANN, True, BOSS, "testing", 4.0)
    assert await admin.set_banned(ANN, False, BOSS, None, 4.5)
    held = (await desk.current_or_next(ANN, 5.0, 600.0)).task  # handed out again
    assert held is not None

    def history(tx: Tx) -> None:
        tx.execute(
            "INSERT INTO coordinators (user_id, promoted_by, created_at) VALUES (?, ?, 0)",
            (BOB, ANN),
        )
        tx.execute("UPDATE batches SET created_by = ?", (ANN,))
        told = tx.insert(
            "INSERT INTO broadcasts (text, created_at, created_by, source_message)"
            " VALUES ('hi', 0, ?, ?)",
            (ANN, f"{ANN}:7"),
        )
        tx.execute(
            "INSERT INTO deliveries (broadcast_id, worker_id, status, updated_at)"
            " VALUES (?, ?, 'sent', 0)",
            (told, ANN),
        )
        tx.execute(
            "INSERT INTO exam_attempts (batch_id, worker_id, started_at) VALUES (?, ?, 0)",
            (batch, ANN),
        )
        tx.execute(
            "INSERT INTO notices (worker_id, batch_id, kind, status, created_at)"
            " VALUES (?, ?, 'reinstated', 'sent', 1), (?, ?, 'let_back', 'queued', 1)",
            (ANN, batch, ANN, batch),
        )
        tx.execute(
            "INSERT INTO notices (coordinator_id, batch_id, kind, text, created_at)"
            " VALUES (?, ?, 'completed', 'done', 1)",
            (ANN, batch),
        )

    await engine.run(history)
    assert len(await _mentioned(engine, ANN)) > 10  # the check below can see the id
    store = ErasureStore(engine)
    assert await store.subject(ANN) == (True, False)
    with pytest.raises(PseudonymTaken):
        await store.erase(ANN, BOB, "at the worker's request", 6.0)
    alias = -12345
    erased = await store.erase(ANN, alias, "at the worker's request", 6.0)
    assert erased == Erased(answers=2, payments=2, batches=1)
    assert await _mentioned(engine, ANN) == []
    rows = await engine.read(
        "SELECT name, language, notify, reachable FROM workers WHERE id = ?", (alias,)
    )
    assert [tuple(row) for row in rows] == [(ERASED_NAME, None, 0, 0)]
    sources = await engine.read(
        "SELECT source FROM answers WHERE worker_id = ? ORDER BY id", (alias,)
    )
    assert [row["source"] for row in sources] == [f"m:{alias}:1", f"m:{alias}:2"]
    statuses = await engine.read(
        "SELECT kind, status FROM notices WHERE worker_id = ? ORDER BY id", (alias,)
    )
    assert [tuple(row) for row in statuses] == [("reinstated", "sent"), ("let_back", "failed")]
    task = await engine.read("SELECT status FROM assignments WHERE id = ?", (held.assignment_id,))
    assert task[0]["status"] == "expired"  # no one will answer it now
    assert await store.subject(ANN) == (False, False)
    assert await store.erase(ANN, -777, "again", 7.0) is None


async def test_the_same_erasure_on_two_replicas_at_once_erases_once(engine: Engine) -> None:
    await registered(engine, ANN, BOB)
    async with replica(engine) as other:
        erased = await asyncio.gather(
            ErasureStore(engine).erase(ANN, -1, "at the worker's request", 1.0),
            ErasureStore(other).erase(ANN, -2, "at the worker's request", 1.0),
        )
    assert sorted(erased, key=lambda e: e is None) == [Erased(0, 0, 0), None]
    rows = await engine.read("SELECT id FROM workers ORDER BY id")
    assert len(rows) == 2 and rows[1]["id"] == BOB  # one pseudonym, and Bob
    log = await engine.read("SELECT action FROM audit_log")
    assert [row["action"] for row in log] == ["erase"]
