"""Operating labelbot: migrations run by several processes, the schema check of the command
line, backups under load, and start-up failures that say what to check."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest

from bench.backup import fill
from bot.cli import main
from storage.db import Database, migrations, use_wal

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


def test_processes_migrating_one_file_at_once_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    start = time.time() + 2.0  # every interpreter is up by then
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(path), str(start)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [racer.communicate(timeout=120) for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * 4, [err for _, err in outputs]
    applied = [int(v) for out, _ in outputs for v in out.strip().split(",") if v]
    assert sorted(applied) == list(range(1, LATEST + 1))
    assert versions(path) == list(range(1, LATEST + 1))


class _Contended:
    """A connection whose switch to WAL meets another process's lock a few times."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.tries = 0

    async def execute(self, sql: str) -> None:
        self.tries += 1
        if self.tries <= self.refusals:
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
            raise error


async def test_the_switch_to_wal_waits_out_another_process_opening_the_file() -> None:
    # SQLite fails this switch at once, without its busy timeout, when a second process is
    # opening the same new file: one race in six failed CI's migration test before.
    conn = _Contended(refusals=3)
    await use_wal(conn)  # type: ignore[arg-type]
    assert conn.tries == 4


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


# -- backups ------------------------------------------------------------------------------


# Another process writes without pause, far more often than a busy bot's write every 10 ms,
# until its stdin closes or, at most, `cap` times: a backup that cannot finish under writes
# shows as one that finished only after they stopped. (SQLite's stepped backup starts again
# from the first page after any write between two of its steps: at a write every 10 ms it
# took from 1.4 s to over 40 s on a 48 MB database, depending on when the writer happened to
# pause, and under this writer it never finished; VACUUM INTO takes 0.3 s.)
WRITER = textwrap.dedent(
    """
    import sqlite3, sys, threading
    conn = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    for n in range(int(sys.argv[2])):
        if stop.is_set():
            print("stopped")
            break
        conn.execute("INSERT INTO filler (data) VALUES (randomblob(100))")
    else:
        print("capped")
    """
)


def _rows(path: Path) -> int:
    with closing(sqlite3.connect(path, timeout=10)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM filler").fetchone()[0])


def _more_rows(path: Path, than: int) -> None:
    while _rows(path) <= than:
        time.sleep(0.01)


def test_a_backup_finishes_while_another_process_writes_all_the_time(tmp_path: Path) -> None:
    from storage.backup import backup

    source, target = tmp_path / "live.db", tmp_path / "backups" / "copy.db"
    target.parent.mkdir()
    fill(source, megabytes=48)
    before = _rows(source)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(source), "500000"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _more_rows(source, before)  # the writes are under way before the backup starts
        size = backup(source, target)
        _more_rows(source, _rows(source))  # and still going after it finished
    finally:
        ended, _ = writer.communicate(input="", timeout=120)
    assert ended.strip() == "stopped"  # not "capped": the backup did not wait for a pause
    assert size == target.stat().st_size
    assert [p.name for p in target.parent.iterdir()] == ["copy.db"]  # no partial file left
    with closing(sqlite3.connect(target)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert copy.execute("SELECT COUNT(*) FROM filler").fetchone()[0] >= 48_000


def test_a_backup_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    from storage.backup import backup

    fill(tmp_path / "live.db", megabytes=1)
    backup(tmp_path / "live.db", tmp_path / "copy.db")
    assert (tmp_path / "copy.db").stat().st_mode & 0o777 == 0o600


def test_a_failed_backup_leaves_the_previous_one_alone(tmp_path: Path) -> None:
    from storage.backup import backup

    (tmp_path / "copy.db").write_bytes(b"yesterday's backup")
    (tmp_path / "broken.db").write_bytes(b"this is not a database, but long enough" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        backup(tmp_path / "broken.db", tmp_path / "copy.db")
    assert (tmp_path / "copy.db").read_bytes() == b"yesterday's backup"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.db", "copy.db"]


# -- start-up failures --------------------------------------------------------------------

WEBHOOK_SECRET = "s3cret-webhook-token_0123456789"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _run_labelbot(tmp_path: Path, **env: str) -> tuple[int, str, str]:
    """`labelbot run` in its own process, as an operator starts it; its exit code and output."""
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WEBHOOK_"))}
    clean |= {"PYTHONPATH": str(ROOT), "DATABASE_PATH": str(tmp_path / "run.db"), **env}
    clean.pop("COORDINATOR_IDS", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=tmp_path,
        env=clean,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _says_once(err: str, line: str) -> None:
    """The failure is one line at the end, the rest of stderr log lines; no traceback."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1] == line
    assert all(not each.startswith(("labelbot:", " ")) for each in lines[:-1])


async def test_run_with_telegram_unreachable_says_so_in_one_line(tmp_path: Path) -> None:
    from bot.local import SANDBOX_TOKEN

    url = f"http://127.0.0.1:{_free_port()}/bot"  # nothing listens there
    code, out, err = await _run_labelbot(
        tmp_path, TELEGRAM_BOT_TOKEN=SANDBOX_TOKEN, TELEGRAM_BASE_URL=url
    )
    assert code == 1
    _says_once(
        err,
        f"labelbot: cannot reach Telegram at {url}: httpx.ConnectError: All connection attempts"
        " failed; check the network (a proxy, a firewall) and TELEGRAM_BASE_URL",
    )
    assert SANDBOX_TOKEN not in out + err


async def test_run_with_a_refused_token_says_so_in_one_line(tmp_path: Path) -> None:
    from bot.local import LocalBot

    token = "987654321:REFUSEDtokenREFUSEDtokenREFUSED_x"
    local = LocalBot(tmp_path / "unused.db")  # the sandbox knows another token: it answers 401
    async with local.server:
        code, out, err = await _run_labelbot(
            tmp_path, TELEGRAM_BOT_TOKEN=token, TELEGRAM_BASE_URL=local.server.base_url
        )
    assert code == 1
    _says_once(
        err,
        "labelbot: Telegram refused the bot token (401 Unauthorized): check TELEGRAM_BOT_TOKEN"
        " (the token from @BotFather, revoked tokens stop working)",
    )
    assert token not in out + err and token.split(":")[1] not in out + err


async def test_run_with_a_webhook_telegram_refuses_says_so_in_one_line(tmp_path: Path) -> None:
    from bot.local import SANDBOX_TOKEN, LocalBot

    local = LocalBot(tmp_path / "unused.db")
    local.sandbox.inject(
        400,
        method="set_webhook",
        description="Bad Request: bad webhook: Failed to resolve host: Name or service not known",
    )
    async with local.server:
        code, out, err = await _run_labelbot(
            tmp_path,
            TELEGRAM_BOT_TOKEN=SANDBOX_TOKEN,
            TELEGRAM_BASE_URL=local.server.base_url,
            WEBHOOK_URL="https://nowhere.invalid/telegram",
            WEBHOOK_SECRET=WEBHOOK_SECRET,
            WEBHOOK_PORT=str(_free_port()),
        )
    assert code == 1
    _says_once(
        err,
        "labelbot: Telegram refused the webhook https://nowhere.invalid/telegram: Bad webhook:"
        " failed to resolve host: name or service not known; check that WEBHOOK_URL is a public"
        " https address that reaches this bot",
    )
    assert SANDBOX_TOKEN not in out + err and WEBHOOK_SECRET not in out + err
