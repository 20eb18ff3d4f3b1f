"""Operating labelbot: migrations run by several processes, the schema check of the command
line, backups under load, and start-up failures that say what to check."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.cli import main
from storage.db import Database, migrations

LATEST = max(version for version, _, _ in migrations())
ROOT = Path(__file__).resolve().parent.parent


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("TELEGRAM_BOT_TOKEN", "COORDINATOR_IDS", "WEBHOOK_URL", "WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "ops.db"))
    return tmp_path


def versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


# -- migrations ---------------------------------------------------------------------------


async def test_connections_migrating_one_file_at_once_apply_each_version_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "race.db"
    databases = [await Database(path).open() for _ in range(4)]
    try:
        applied = await asyncio.gather(*(db.migrate() for db in databases))
    finally:
        for db in databases:
            await db.close()
    assert sorted(v for each in applied for v in each) == list(range(1, LATEST + 1))
    assert versions(path) == list(range(1, LATEST + 1))


# Each process waits for the same moment, then migrates: they race for the write lock.
RACER = textwrap.dedent(
    """
    import asyncio, sys, time
    from storage.db import Database

    async def main(path, start):
        async with Database(path) as db:
            time.sleep(max(0.0, start - time.time()))
            print(",".join(map(str, await db.migrate())))

    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
    """
)


def test_two_processes_migrating_one_file_at_once_both_succeed(tmp_path: Path) -> None:
    import time

    path = tmp_path / "race.db"
    start = time.time() + 2.0  # both interpreters are up by then
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(path), str(start)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [racer.communicate(timeout=120) for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], [err for _, err in outputs]
    applied = [int(v) for out, _ in outputs for v in out.strip().split(",") if v]
    assert sorted(applied) == list(range(1, LATEST + 1))
    assert versions(path) == list(range(1, LATEST + 1))


async def _migrate(path: Path, up_to: int) -> None:
    async with Database(path) as db:
        await db.migrate(up_to=up_to)


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["status", "1"],
        ["publish", "1"],
        ["export", "1"],
        ["trust", "1"],
        ["reports", "1"],
        ["reinstate", "1", "2"],
        ["restore", "1", "x"],
    ],
)
def test_commands_other_than_migrate_leave_an_old_schema_alone(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    asyncio.run(_migrate(workdir / "ops.db", 3))
    code, out, err = run(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"labelbot: the database is at version 3, this labelbot needs {LATEST}:"
        " run `labelbot migrate`"
    ]
    assert versions(workdir / "ops.db") == [1, 2, 3]
    assert run(capsys, "migrate")[0] == 0
    assert versions(workdir / "ops.db") == list(range(1, LATEST + 1))


def test_commands_other_than_migrate_create_no_database(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "status")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"labelbot: there is no database at {workdir / 'ops.db'}: run `labelbot migrate`"
        " to create it"
    ]
    assert not (workdir / "ops.db").exists()
