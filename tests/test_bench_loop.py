"""bench/loop.py: the bots take turns, the result is a median, and a run that measured the
driver or a crowded machine instead of the bots says so; bench/profile_loop.py: what py-spy saw,
thread by thread."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

import aiosqlite.core
import pytest

from bench import loop
from bench.loop import Run, cli_env, schedule, summarize, table, verdict, with_database
from bench.profile_loop import blocking_lines, read_raw, report, thread_cpu


@pytest.fixture(autouse=True)
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine these figures come from."""
    monkeypatch.setattr(loop, "CORES", 2)


def run(name: str, per_second: float, *, driver: float = 0.3, other: float = 0.0) -> Run:
    return Run(
        name,
        answers=round(per_second * 10),
        seconds=10.0,
        latencies=[0.1],
        bot_cpu=1.0,
        driver_cpu=driver,
        other_cpu=other,
    )


def summary_line(lines: list[str]) -> str:
    assert lines[-1].startswith("loop: ")
    return lines[-1]


def test_the_bots_take_turns_bare_first() -> None:
    assert schedule(3) == ["bare", "labelbot", "bare", "labelbot", "bare", "labelbot"]


def test_one_bad_bare_run_moves_neither_median_nor_ratio() -> None:
    # Three turns as measured here; in the second the bare bot had a bad run (a ratio of 0.80).
    runs = [
        run("bare", 287),
        run("labelbot", 166),
        run("bare", 215),
        run("labelbot", 171),
        run("bare", 290),
        run("labelbot", 163),
    ]
    summary = summarize(runs)
    assert summary.bare_per_s == pytest.approx(287)
    assert summary.labelbot_per_s == pytest.approx(166)
    assert summary.ratio == pytest.approx(166 / 287)
    lines = verdict(runs, summary)
    # Each bot ran at one core: its CPU per tap is one second over its median rate.
    assert lines[0].endswith("CPU per tap: bare 3.48 ms, labelbot 6.02 ms")
    line = summary_line(lines)
    assert re.fullmatch(
        r"loop: ratio=0\.58 bare_per_s=287\.0 labelbot_per_s=166\.0 runs=3 p99_ms=100\.0"
        r" saturated=no busy_runs=0",
        line,
    )


def test_the_table_shows_every_run_with_each_turns_ratio() -> None:
    runs = [run("bare", 200), run("labelbot", 120), run("bare", 100), run("labelbot", 90)]
    runs[1].taps, runs[1].polls, runs[1].api_calls = 1200, 900, 2400
    lines = table(runs)
    assert lines[2].split()[6:8] == ["0.75", "2.00"]  # getUpdates, and other calls, per tap
    assert len(lines) == 1 + len(runs)
    assert "0.60" in lines[2] and "0.90" in lines[4]
    assert lines[3].split()[:3] == ["3", "bare", "100.0"]
    assert lines[3].split()[8] == "10.00"  # ms of CPU per tap: a core for 100 taps a second


def test_a_saturated_driver_is_warned_of_before_the_summary() -> None:
    runs = [run("bare", 280, driver=0.95), run("labelbot", 170, driver=0.6)]
    lines = verdict(runs, summarize(runs))
    assert "saturated=yes" in summary_line(lines)
    warnings = [line for line in lines[:-1] if line.startswith("WARNING")]
    assert len(warnings) == 1 and "run(s) 1:" in warnings[0]
    assert "driver saturated" in table(runs)[1]


def test_a_driver_below_the_bound_gives_no_warning() -> None:
    runs = [run("bare", 280, driver=0.85), run("labelbot", 170, driver=0.85)]
    lines = verdict(runs, summarize(runs))
    assert "saturated=no" in summary_line(lines)
    assert not any("WARNING" in line for line in lines)


def test_a_run_on_a_machine_with_no_core_to_spare_is_pointed_out() -> None:
    # The bot and the driver took 1.3 cores: 0.5 of other work leaves none free, 0.2 does.
    runs = [run("bare", 280, other=0.5), run("labelbot", 170, other=0.2)]
    lines = verdict(runs, summarize(runs))
    assert "busy_runs=1" in summary_line(lines)
    assert "run(s) 1:" in lines[-2]
    assert "machine busy" in table(runs)[1] and "machine busy" not in table(runs)[2]


class Machine:
    """Other work taking `load(second)` of a core in each second; sleeping moves time on."""

    def __init__(self, load: Callable[[int], float]) -> None:
        self.load, self.second, self.busy = load, 0, 0.0

    def busy_seconds(self) -> float:
        return self.busy

    async def sleep(self, seconds: float) -> None:
        self.busy += self.load(self.second) * seconds
        self.second += 1


async def test_a_run_waits_for_other_work_to_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = Machine(lambda second: 0.8 if second < 5 else 0.0)
    monkeypatch.setattr(loop, "machine_busy_seconds", machine.busy_seconds)
    monkeypatch.setattr(loop.asyncio, "sleep", machine.sleep)
    assert await loop.settle(limit=60)
    assert machine.second == 5 + loop.QUIET_SECONDS


async def test_a_run_goes_ahead_when_other_work_does_not_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Quiet now and then, never for long enough.
    machine = Machine(lambda second: 0.0 if second % loop.QUIET_SECONDS else 0.8)
    monkeypatch.setattr(loop, "machine_busy_seconds", machine.busy_seconds)
    monkeypatch.setattr(loop.asyncio, "sleep", machine.sleep)
    assert not await loop.settle(limit=20)
    assert machine.second == 20


def test_only_the_option_chooses_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://left@in/the-shell")
    env = {"DATABASE_URL": "postgresql://left@in/the-shell", "OTHER": "kept"}
    assert with_database(env, None) == {"OTHER": "kept"}
    url = "postgresql://postgres@127.0.0.1:5432/test"
    assert with_database(env, url) == {"DATABASE_URL": url, "OTHER": "kept"}
    assert "DATABASE_URL" not in cli_env(loop.ROOT / "bench.db", None)


async def test_a_short_benchmark_measures_both_bots_and_stores_every_tap(
    capsys: pytest.CaptureFixture[str],
) -> None:
    await loop.main(
        [
            *("--runs", "1", "--workers", "2", "--seconds", "1", "--warmup", "0.5"),
            *("--items", "3000", "--settle", "0"),
        ]
    )
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if re.match(r"\s+\d+  ", line)]
    assert [row[1] for row in rows] == ["bare", "labelbot"]
    assert all(float(row[2]) > 0 for row in rows)
    stored = re.search(r"answers stored by labelbot: (\d+)", out)
    assert stored is not None
    counted = float(rows[1][2])  # taps answered per second over one measured second
    assert int(stored[1]) >= counted
    assert re.search(r"^loop: ratio=\d+\.\d\d bare_per_s=.* runs=1 ", out, re.MULTILINE)


# bench/profile_loop.py reads py-spy's raw samples: outermost frame first, a count at the end.
RAW = """\
thread (7): MainThread;<module> (bot/__main__.py:7);Handle._run (asyncio/events.py:80);\
Bot._post (telegram/_bot.py:712);AsyncClient.send (httpx/_client.py:1629) 30
thread (7): MainThread;<module> (bot/__main__.py:7);Handle._run (asyncio/events.py:80);\
TaskStore.submit (storage/tasks.py:230) 10
thread (7): MainThread;<module> (bot/__main__.py:7);EpollSelector.select (selectors.py:468) 50
thread (8): Thread-1 (_connection_worker_thread);_connection_worker_thread (aiosqlite/core.py:59) 80
thread (8): Thread-1 (_connection_worker_thread);_connection_worker_thread (aiosqlite/core.py:63);\
sqlite3VdbeExec (libsqlite3.so.0.8.6) 20
"""
BLOCKING = {("selectors.py", 468), ("aiosqlite/core.py", 59)}


def test_the_profile_counts_a_thread_blocked_for_work_as_waiting_not_busy() -> None:
    threads = read_raw(RAW, BLOCKING)
    assert (threads["MainThread"].busy, threads["MainThread"].waiting) == (40, 50)
    database = threads["Thread-1 (_connection_worker_thread)"]
    assert (database.busy, database.waiting, database.tid) == (20, 80, 8)
    # Time in C (SQLite) is the C function's own, in the area of the Python frame that called it.
    assert database.own == {"sqlite3VdbeExec (libsqlite3.so.0.8.6:0)": 20}
    assert database.areas == {"aiosqlite": 20}


def test_the_profile_sorts_the_event_loops_time_by_area_and_function() -> None:
    loop_thread = read_raw(RAW, BLOCKING)["MainThread"]
    assert loop_thread.areas == {"HTTP client (httpx, httpcore, anyio)": 30, "labelbot": 10}
    assert loop_thread.own["TaskStore.submit (storage/tasks.py:230)"] == 10
    assert loop_thread.under["Bot._post (telegram/_bot.py)"] == 30
    loop_thread.cpu = 0.9
    lines = report({"MainThread": loop_thread}, top=5)
    assert "  CPU  90.0%      40 samples  MainThread" in lines
    assert "   75.0%  Bot._post (telegram/_bot.py)" in lines  # 30 of its 40 samples
    # The frames under every sample tell nothing and are left out of what-they-called.
    called = lines[lines.index("top functions with what they called") :]
    assert not any("Handle._run" in line for line in called)


def test_the_profile_knows_where_an_aiosqlite_thread_waits_for_work() -> None:
    lines = {line for file, line in blocking_lines() if file == "aiosqlite/core.py"}
    source = Path(aiosqlite.core.__file__).read_text().splitlines()
    assert lines and all(".get(" in source[line - 1] for line in lines)


def test_the_profile_reads_each_threads_cpu_from_the_kernel() -> None:
    spent = thread_cpu(os.getpid())
    assert threading.get_native_id() in spent
    assert all(seconds >= 0 for seconds in spent.values())
