"""The command line, run in-process as a user would type it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from tests.harness import TABLES


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("TELEGRAM_BOT_TOKEN", "COORDINATOR_IDS", "DATABASE_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "cli.db"))
    # Only `migrate` and `run` create or upgrade the schema; every other command checks it.
    assert main(["migrate"]) == 0
    (tmp_path / "good.csv").write_text("id,text,gold,lang\na,Nice,yes,en\nb,Awful,,de\n")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def table_counts(database: Path) -> dict[str, int]:
    import sqlite3

    with sqlite3.connect(database) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}


def test_import_publish_status_export(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "import",
        "good.csv",
        "--question",
        "Nice?",
        "--options",
        "yes,no",
        "--overlap",
        "2",
        "--reward",
        "0.1",
    )
    assert code == 0
    assert out.splitlines() == [
        "Batch 1 'good': 1 item (1 gold), answers: yes, no; overlap 2; reward 0.10 USD per task;"
        " expected pay 24.00 USD per hour (estimated 15.0 s per task).",
        "Publish it with: labelbot publish 1",
    ]
    code, out, _ = run(capsys, "status")
    assert (
        "batch 1 'good' [draft]" in out
        and "answers: 0 counted, 0 excluded (suspended workers), 0 stored; 0% of the 2 needed"
        in out
    )
    assert run(capsys, "publish", "1")[0] == 0
    assert "[open]" in run(capsys, "status", "1")[1]
    code, out, _ = run(capsys, "export", "1")
    assert out.splitlines() == [
        "wrote 2 labels rows to batch-1-labels.csv",
        "2 labels by one_coin; answers: 0 counted, 0 excluded (suspended workers), 0 stored;"
        " agreement (Krippendorff's alpha): n/a",
        "summary: batch-1-labels.csv.summary.json",
    ]
    rows = list(csv.DictReader((workdir / "batch-1-labels.csv").open()))
    assert [
        (r["id"], r["text"], r["lang"], r["answers"], r["label"], r["method"]) for r in rows
    ] == [("a", "Nice", "en", "0", "yes", "gold"), ("b", "Awful", "de", "0", "", "")]
    summary = json.loads((workdir / "batch-1-labels.csv.summary.json").read_text())
    assert summary["method"] == "one_coin" and summary["agreement_alpha"] is None
    run(capsys, "export", "1", "--what", "answers", "--format", "jsonl", "-o", "a.jsonl")
    assert (workdir / "a.jsonl").read_text() == ""


BAD_FILES = [
    (
        "rows.csv",
        b"text,gold\nfine,yes\nbad,maybe\n,no\n",
        [
            "line 3: gold answer 'maybe' is not one of the options",
            "line 4: needs a text or an image",
        ],
    ),
    (
        "latin1.csv",
        "text\nfine\ncaf\u00e9\n".encode("latin-1"),
        ["line 3: the file is not UTF-8 text (byte 0xe9)"],
    ),
    ("binary.csv", b"text\n\x00\x01\x02", ["line 2: the file is binary, not text"]),
    ("fields.csv", b"text,id\na,1\nb,2,3\n", ["line 3: 3 fields, but the header has 2"]),
    ("header.csv", b"title\nx\n", ["line 1: the header needs a 'text' or an 'image' column"]),
    ("dupes.csv", b"id,text\n1,a\n1,b\n", ["line 3: id '1' repeats line 2"]),
    (
        "lines.jsonl",
        b'{"text": "a"}\nnot json\n[2]\n',
        ["line 2: not valid JSON: Expecting value", "line 3: each line must be a JSON object"],
    ),
    ("empty.csv", b"", ["the file has no items"]),
    ("sheet.xlsx", b"PK\x03\x04", ["unknown file type '.xlsx': send a .csv, .jsonl or .json file"]),
]


@pytest.mark.parametrize(("name", "content", "reasons"), BAD_FILES)
def test_a_bad_file_is_refused_whole(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
    reasons: list[str],
) -> None:
    run(capsys, "import", "good.csv", "--question", "q", "--options", "yes,no")
    before = table_counts(workdir / "cli.db")
    (workdir / name).write_bytes(content)
    code, _, err = run(capsys, "import", name, "--question", "q", "--options", "yes,no")
    assert code == 1
    assert err.splitlines()[0] == "labelbot: the file was not imported, nothing was stored:"
    assert err.splitlines()[1:] == reasons
    assert table_counts(workdir / "cli.db") == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["import", "missing.csv", "--question", "q"], "missing.csv: No such file"),
        (["import", "good.csv", "--question", "q", "--options", "yes"], "--options: give at"),
        (["import", "good.csv", "--question", "q", "--overlap", "0"], "--overlap: Input should"),
        (["publish", "7"], "there is no batch 7"),
        (["export", "7"], "there is no batch 7"),
        (["status", "7"], "there is no batch 7"),
    ],
)
def test_mistakes_get_one_clear_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith("labelbot: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (workdir / "batch-7-labels.csv").exists()


def test_publishing_twice_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "import", "good.csv", "--question", "q")
    run(capsys, "publish", "1")
    code, _, err = run(capsys, "publish", "1")
    assert code == 2 and "batch 1 is open, and only a draft can be published" in err


def test_migrate_reports_the_version(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage.db import migrations

    monkeypatch.setenv("DATABASE_PATH", str(workdir / "fresh.db"))
    capsys.readouterr()

    versions = [version for version, _, _ in migrations()]
    applied = ", ".join(map(str, versions))
    latest = versions[-1]
    assert (
        run(capsys, "migrate")[1].strip().endswith(f"schema version {latest} (applied {applied})")
    )
    assert run(capsys, "migrate")[1].strip().endswith(f"schema version {latest} (nothing to apply)")


def test_run_without_a_token_stops_with_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "run")
    assert code == 2
    assert err.strip() == (
        "labelbot: TELEGRAM_BOT_TOKEN is not set: put the token from @BotFather in .env"
        " (see .env.example)"
    )


def test_malformed_coordinator_ids_stop_with_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COORDINATOR_IDS", "12,abc")
    code, _, err = run(capsys, "status")
    assert code == 2
    assert err.strip() == (
        "labelbot: COORDINATOR_IDS: must be comma-separated Telegram user ids like 123,456;"
        " got '12,abc'"
    )


def test_settings_come_from_dot_env(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.settings import load_settings

    monkeypatch.delenv("DATABASE_PATH")
    (workdir / ".env").write_text(
        "COORDINATOR_IDS=5, 6\nDATABASE_PATH=x.db\nTELEGRAM_BOT_TOKEN=1:abc\n"
    )
    settings = load_settings()
    assert settings.coordinator_ids == (5, 6)
    assert str(settings.database_path) == "x.db"
    assert "1:abc" not in repr(settings) and settings.token() == "1:abc"


def test_python_dash_m_bot_is_the_cli(workdir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "status"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0 and "no batches yet" in done.stdout


def test_env_example_lists_every_setting_with_its_default() -> None:
    from bot.settings import Settings

    example = Path(__file__).parent.parent / ".env.example"
    listed = dict(
        line.split("=", 1)
        for line in example.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert set(listed) == {name.upper() for name in Settings.model_fields}
    for name, field in Settings.model_fields.items():
        default = field.default
        if default is None or default == ():
            assert listed[name.upper()] == ""
        else:
            assert str(default).removesuffix(".0") == listed[name.upper()].removesuffix(".0")


async def _suspend_worker(database: Path) -> None:
    """Worker 1 answers every task of batch 1 with the same wrong option until gold stops it."""
    from labeling.models import Submission, WorkerProfile
    from storage.db import Database
    from tests.factories import Desk

    async with Database(database) as db:
        tasks = Desk(db)
        await tasks.upsert_worker(WorkerProfile(1, "Ann"), 0.0)
        task = (await tasks.current_or_next(1, 1.0, 600.0)).task
        while task is not None:
            outcome = await tasks.submit(Submission(task.assignment_id, 1, option=1), 2.0, 600.0)
            task = outcome.next_task


def test_trust_lists_standings_and_reinstate_lets_a_worker_back(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    rows = "".join(f"g{i},gold {i},a\n" for i in range(8))
    rows += "".join(f"r{i},plain {i},\n" for i in range(20))
    (workdir / "gold.csv").write_text("id,text,gold\n" + rows)
    run(capsys, "import", "gold.csv", "--question", "q", "--options", "a,b,c,d")
    run(capsys, "publish", "1")
    assert run(capsys, "trust", "1")[1].strip() == "batch 1: no worker has had a task yet"
    asyncio.run(_suspend_worker(workdir / "cli.db"))
    out = run(capsys, "trust", "1")[1].strip()
    assert out.startswith("worker 1 'Ann' [suspended]: ")
    # Six misses in a row on four options: 244 times likelier from a guesser than from a
    # careful worker, past the 100:1 that suspends.
    assert out.endswith(
        "0/6 gold right (0%, 95% CI 0%-39%); evidence 244:1 of 100:1 to suspend, 0 fast;"
        " gold accuracy 0/6: below 60% at odds 244 to 1"
    )
    assert run(capsys, "reinstate", "1", "1")[0] == 0
    assert "[active]" in run(capsys, "trust", "1")[1]
    code, _, err = run(capsys, "reinstate", "1", "1")
    assert code == 2 and "worker 1 is not suspended from batch 1" in err


async def test_backup_copies_the_live_database_while_the_bot_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import sqlite3

    from tests.harness import Harness

    database = tmp_path / "live.db"
    monkeypatch.setenv("DATABASE_PATH", str(database))
    async with Harness(database) as live:
        await live.add_batch(
            "text\n" + "".join(f"r{i}\n" for i in range(200)),
            options="yes,no",
            overlap=1,
            gold_ratio=0,
        )
        worker = await live.join(1)
        await live.first_task(worker)
        card = worker.last
        assert card is not None
        for step in range(30):  # keep writing while the backup runs
            worker.press("yes", message_id=card.message_id)
            if step == 10:
                code = await asyncio.to_thread(main, ["backup", str(tmp_path / "copy.db")])
                assert code == 0
            await worker.wait_for(lambda u, s=step: card.edits > s)
    assert "backed up" in capsys.readouterr().out
    with sqlite3.connect(tmp_path / "copy.db") as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        answers = copy.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    assert 10 <= answers <= 30
    assert main(["backup", str(tmp_path / "missing-dir" / "x.db")]) == 2


def test_backup_sends_a_postgresql_database_to_pg_dump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://labelbot:secret@db.example/labelbot")
    code, out, err = run(capsys, "backup", str(tmp_path / "copy.db"))
    assert (code, out) == (2, "")
    assert err == "labelbot: backup copies SQLite databases; back up PostgreSQL with pg_dump\n"
    assert not (tmp_path / "copy.db").exists()
