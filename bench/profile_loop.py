"""Where labelbot's time goes under the loop benchmark: py-spy samples the bot process.

Runs labelbot (or the bare bot) as bench/loop.py does, same workers, same batch, and samples it
with py-spy over the measured window, each thread apart: its CPU as the kernel counts it, what
it spent its time on by area (the package of the innermost Python frame: HTTP client, PTB,
labelbot, asyncio...), and its top functions, by their own time (by line) and with what they
called. --native adds C frames: system calls, SQLite, the GIL. Sampling slows the bot a
little: its taps per second here are not the benchmark's.

    pip install py-spy
    python bench/profile_loop.py [--bot labelbot|bare] [--seconds 10] [--native] [--raw FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures.thread
import contextlib
import inspect
import os
import re
import selectors
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite.core

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loop import BOTS, cli_env, phase, prepare_database  # noqa: E402

# The innermost Python frame's file decides the area; the first prefix that matches wins.
AREAS = (
    ("HTTP client (httpx, httpcore, anyio)", ("httpx/", "httpcore/", "h11/", "anyio/", "sniffio/")),
    ("PTB's request and JSON", ("telegram/request/", "json/")),
    ("PTB (objects, dispatch, bot methods)", ("telegram/",)),
    ("labelbot", ("bot/", "handlers/", "labeling/", "storage/")),
    ("aiosqlite", ("aiosqlite/",)),
    ("asyncio, selectors, sockets", ("asyncio/", "selectors.py", "socket.py", "ssl.py")),
)
# The calls where a thread blocks until it has work. py-spy cannot always tell such a thread is
# idle (it may be waking up, or waiting for the GIL to take its work up): no one's cost.
BLOCKING: tuple[tuple[Callable[..., Any], str], ...] = (
    (aiosqlite.core._connection_worker_thread, ".get("),
    (concurrent.futures.thread._worker, ".get("),
    (selectors.EpollSelector.select, ".poll("),
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True)
class Frame:
    function: str
    file: str
    line: int

    @staticmethod
    def parse(text: str) -> Frame:
        match = _FRAME.match(text.strip())
        if match is None:
            return Frame(text.strip(), "", 0)
        return Frame(match["function"], match["file"], int(match["line"] or 0))

    @property
    def python(self) -> bool:
        return self.file.endswith(".py") or self.file.startswith("<")

    @property
    def place(self) -> str:
        return f"{self.function} ({self.file}:{self.line})"

    @property
    def name(self) -> str:
        return f"{self.function} ({self.file})"


@dataclass
class Thread:
    name: str
    tid: int
    cpu: float = 0.0  # CPU seconds per wall second of the window, as the kernel counted them
    busy: int = 0  # samples in which the thread was working
    waiting: int = 0
    areas: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)  # by innermost frame and line
    under: Counter[str] = field(default_factory=Counter)  # by every function on the stack


def spy_file(path: str) -> str:
    """A source file named as py-spy names it: from the import root down (aiosqlite/core.py)."""
    source = Path(path).resolve()
    roots = [Path(entry).resolve() for entry in sys.path if entry]
    root = max((r for r in roots if source.is_relative_to(r)), key=lambda r: len(r.parts))
    return source.relative_to(root).as_posix()


def blocking_lines() -> set[tuple[str, int]]:
    """The (file, line) of each call in BLOCKING."""
    found = set()
    for function, call in BLOCKING:
        source, first = inspect.getsourcelines(function)
        file = spy_file(inspect.getfile(function))
        found |= {(file, first + at) for at, text in enumerate(source) if call in text}
    return found


def area(file: str) -> str:
    for name, prefixes in AREAS:
        if any(file.startswith(prefix) for prefix in prefixes):
            return name
    return "other (stdlib, logging, ...)"


def read_raw(text: str, blocking: set[tuple[str, int]]) -> dict[str, Thread]:
    """py-spy's raw format with --threads: `thread (TID): NAME;frame;...;frame COUNT` a line,
    the outermost frame first."""
    threads: dict[str, Thread] = {}
    for line in text.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack:
            continue
        head, *texts = stack.split(";")
        tid, _, name = head.removeprefix("thread (").partition("): ")
        thread = threads.setdefault(name, Thread(name, int(tid)))
        count = int(number)
        frames = [Frame.parse(text) for text in texts]
        python = [frame for frame in frames if frame.python]
        if not python or (python[-1].file, python[-1].line) in blocking:
            thread.waiting += count
            continue
        thread.busy += count
        thread.areas[area(python[-1].file)] += count
        thread.own[frames[-1].place] += count
        for name in {frame.name for frame in frames}:
            thread.under[name] += count
    return threads


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process so far, by thread id, as the kernel counts."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


def report(threads: dict[str, Thread], top: int) -> list[str]:
    """Each thread's CPU as the kernel counted it (py-spy cannot tell a thread waiting for the
    GIL from one at work), then where its samples fell, as shares of its own samples."""
    ordered = sorted(threads.values(), key=lambda thread: -thread.busy)
    lines = ["threads: CPU per wall second (as the kernel counts it), and py-spy's samples at work"]
    lines += [
        f"  CPU {thread.cpu:6.1%}  {thread.busy:>6} samples  {thread.name}" for thread in ordered
    ]
    everything = sum(thread.busy for thread in ordered)
    for thread in ordered:
        if thread.busy < everything / 100:
            continue
        # Frames under nearly every sample (the thread's start, the event loop's) say nothing.
        telling = Counter({n: c for n, c in thread.under.items() if c < 0.98 * thread.busy})
        lines += [
            "",
            f"{thread.name}, CPU {thread.cpu:.1%}; shares of its samples at work:",
            "by area of the innermost Python frame",
            *shares(thread.areas, thread.busy),
            "top functions by own time",
            *shares(thread.own, thread.busy, top),
            "top functions with what they called",
            *shares(telling, thread.busy, top),
        ]
    return lines


def shares(counts: Counter[str], total: int, limit: int | None = None) -> list[str]:
    return [f"  {count / total:6.1%}  {name}" for name, count in counts.most_common(limit)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bot", choices=BOTS, default="labelbot", help="the bot to sample")
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10, help="sampled (whole seconds)")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--top", type=int, default=25, help="functions listed per thread")
    parser.add_argument("--native", action="store_true", help="C frames too (py-spy --native)")
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw samples in this file")
    parser.add_argument("--database-url", help="as in bench/loop.py")
    args = parser.parse_args()
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is not installed: pip install py-spy")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        raw = args.raw or folder / "profile.txt"

        used: dict[int, float] = {}

        async def sample(pid: int, seconds: float) -> None:
            before = thread_cpu(pid)
            process = await asyncio.create_subprocess_exec(
                spy,
                *("record", "--pid", str(pid), "--format", "raw", "--threads"),
                *("--duration", str(round(seconds)), "--rate", str(args.rate), "-o", str(raw)),
                *(["--native"] if args.native else []),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"py-spy failed: {err.decode().strip()}")
            after = thread_cpu(pid)
            used.update({tid: (cpu - before.get(tid, 0.0)) / seconds for tid, cpu in after.items()})

        database = folder / "bench.db"
        env = cli_env(database, args.database_url)
        await prepare_database(env, folder, max(20_000, args.workers * 2_000))
        run = await phase(
            args.bot, args.workers, args.seconds, args.warmup, database, args.database_url, sample
        )
        threads = read_raw(raw.read_text(), blocking_lines())
        for thread in threads.values():
            thread.cpu = used.get(thread.tid, 0.0)
    print(
        f"{args.bot} under py-spy: {args.workers} workers, {run.rate:.1f} taps/s, bot CPU"
        f" {run.bot_cpu:.0%}, other CPU {run.other_cpu:.0%}; {args.rate} samples/s"
        f" for {args.seconds}s\n"
    )
    print("\n".join(report(threads, args.top)))
    print(f"profile: bot={args.bot} taps_per_s={run.rate:.1f} bot_cpu={run.bot_cpu:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
