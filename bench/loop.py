"""How fast workers can label: labelbot against a bare PTB bot, through the same sandbox.

N simulated workers (default 32) tap through tasks as fast as the bot lets them. The sandbox
and the workers (the driver) run in this process; each bot runs in its own process, as it would
in production. For each run: taps per second, p50/p99 from a tap to the next task shown, and
the CPU of the bot, of the driver and of everything else on the machine.

One run proves little on a small shared machine (a bare run that went badly once gave a ratio
of 0.85 instead of 0.58), so the bots take turns, `--runs` times each (bare, labelbot, bare,
...), and the result is the median of each bot and the median of each turn's ratio: a turn's
two runs saw the same machine, and one disturbed turn moves no median. Each run waits for other
work on the machine to pause first (--settle), and the table shows what it ran beside anyway.

    python bench/loop.py [--workers 32] [--seconds 10] [--runs 3] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.process import (  # noqa: E402
    cpu_seconds,
    labelbot_command,
    labelbot_env,
    peak_rss_mb,
    start,
    stop,
)
from bot.app import POLL_INTERVAL  # noqa: E402
from bot.local import SANDBOX_TOKEN  # noqa: E402
from bot.sandbox import Sandbox, SandboxServer, SandboxUser  # noqa: E402

BOTS = ("bare", "labelbot")
# The driver is one event loop: at this share of one core it is the bottleneck, and the ratio
# compares how fast it can drive each bot instead of how fast each bot answers.
SATURATED = 0.9
# With this share of all the machine's cores in use, the bots waited for a core: other work
# (another program, the host's steal) took time they would have used, and the run is noise.
BUSY = 0.9
CORES = os.cpu_count() or 1
# Before a run, the rest of the machine counts as quiet below this share of a core, for this
# many seconds in a row: a test suite or a build running beside the bench comes and goes.
QUIET = 0.25
QUIET_SECONDS = 3

# Something the bench does alongside a measured window, given the bot's pid and the window's
# length (bench/profile_loop.py samples the bot with py-spy).
During = Callable[[int, float], Coroutine[Any, Any, None]]


@dataclass
class Run:
    name: str
    answers: int = 0  # taps whose next task appeared within the measured window
    taps: int = 0  # taps made within the window, whether or not their answer came in it
    api_calls: int = 0  # Bot API calls the bot made within the window, besides getUpdates
    polls: int = 0  # getUpdates calls within the window: fewer when each brings more taps
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    # CPU seconds per wall second of the measured window (1.0 is one core busy throughout).
    bot_cpu: float = 0.0
    driver_cpu: float = 0.0  # this process: the sandbox and the simulated workers
    other_cpu: float = 0.0  # every other process on the machine, and time the host took

    @property
    def rate(self) -> float:
        return self.answers / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_tap_ms(self) -> float:
        """The bot's CPU per answer: less at the mercy of other work than the rate."""
        return self.bot_cpu / self.rate * 1000 if self.rate else float("nan")

    @property
    def saturated(self) -> bool:
        return self.driver_cpu >= SATURATED

    @property
    def busy(self) -> bool:
        return self.bot_cpu + self.driver_cpu + self.other_cpu >= BUSY * CORES

    def percentile(self, share: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


@dataclass(frozen=True)
class Summary:
    bare_per_s: float  # the median of the bare bot's runs
    labelbot_per_s: float
    ratio: float  # the median over turns of labelbot's rate over the bare bot's
    saturated: tuple[int, ...]  # the runs (numbered from 1) whose driver was saturated
    busy: tuple[int, ...]  # the runs on a machine with no core to spare


def summarize(runs: list[Run]) -> Summary:
    """The summary of runs taken in turns, bare first, as `schedule` orders them."""
    bare, labelbot = runs[0::2], runs[1::2]
    return Summary(
        bare_per_s=statistics.median(run.rate for run in bare),
        labelbot_per_s=statistics.median(run.rate for run in labelbot),
        ratio=statistics.median(
            mine.rate / theirs.rate for theirs, mine in zip(bare, labelbot, strict=True)
        ),
        saturated=tuple(number for number, run in enumerate(runs, 1) if run.saturated),
        busy=tuple(number for number, run in enumerate(runs, 1) if run.busy),
    )


def schedule(runs: int) -> list[str]:
    """Which bot runs when: in turns, so that a slow minute of the machine hits both."""
    return [name for _ in range(runs) for name in BOTS]


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle since boot, all cores together;
    the steal time the host took from this virtual machine counts as busy."""
    # The first line: user nice system idle iowait irq softirq steal, then guest time,
    # which user time includes already.
    ticks = [int(tick) for tick in Path("/proc/stat").read_text().split()[1:9]]
    busy = sum(ticks[:3]) + sum(ticks[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


async def settle(limit: int) -> bool:
    """Waits up to `limit` seconds for the rest of the machine to go quiet; False when it did
    not (the run goes ahead, and its other CPU shows what it ran beside)."""
    quiet = 0
    for _ in range(limit):
        machine, own = machine_busy_seconds(), time.process_time()
        await asyncio.sleep(1)
        others = machine_busy_seconds() - machine - (time.process_time() - own)
        quiet = quiet + 1 if others < QUIET else 0
        if quiet == QUIET_SECONDS:
            return True
    return False


def api_calls(sandbox: Sandbox) -> tuple[int, int]:
    """Bot API calls so far: getUpdates, and all the others."""
    polls = sandbox.calls["get_updates"]
    return polls, sum(sandbox.calls.values()) - polls


async def tap_loop(user: SandboxUser, run: Run, window: tuple[float, float]) -> None:
    """Taps the first option on the worker's card, waits for the card to change, repeats."""
    begin, end = window
    card = next(m for m in reversed(user.bot_messages) if m.find_button("yes"))
    while time.monotonic() < end:
        edits = card.edits
        tapped = time.monotonic()
        user.press("yes", message_id=card.message_id)
        await user.wait_for(lambda u, e=edits: card.edits > e, timeout=30)
        done = time.monotonic()
        if begin <= tapped < end:
            run.taps += 1
        if begin <= tapped and done <= end:
            run.answers += 1
            run.latencies.append(done - tapped)


async def measure(
    name: str,
    command: list[str],
    env: dict[str, str],
    workers: int,
    seconds: float,
    warmup: float,
    sandbox: Sandbox,
    during: During | None = None,
) -> Run:
    process = await start(command, env, sandbox)
    run = Run(name)
    try:
        users = [sandbox.user(100_000 + index) for index in range(workers)]
        for user in users:
            user.send("/start")
        if name == "labelbot":
            await asyncio.gather(*(u.wait_for(lambda u: u.last is not None, 30) for u in users))
            for user in users:
                user.send("/next")
        await asyncio.gather(
            *(
                u.wait_for(lambda u: any(m.find_button("yes") for m in u.bot_messages), 30)
                for u in users
            )
        )
        begin = time.monotonic() + warmup
        window = (begin, begin + seconds)
        loops = asyncio.gather(*(tap_loop(user, run, window) for user in users))
        await asyncio.sleep(warmup)
        bot, own, machine = cpu_seconds(process.pid), time.process_time(), machine_busy_seconds()
        polls, calls = api_calls(sandbox)
        beside = None if during is None else asyncio.create_task(during(process.pid, seconds))
        await asyncio.sleep(seconds)
        bot = cpu_seconds(process.pid) - bot
        own = time.process_time() - own
        machine = machine_busy_seconds() - machine
        polls_now, calls_now = api_calls(sandbox)
        run.polls, run.api_calls = polls_now - polls, calls_now - calls
        run.bot_cpu, run.driver_cpu = bot / seconds, own / seconds
        run.other_cpu = max(0.0, machine - bot - own) / seconds
        await loops
        if beside is not None:
            await beside
        run.seconds = seconds
        run.peak_rss_mb = peak_rss_mb(process.pid)
    finally:
        await stop(process, sandbox)
    return run


def cli_env(database: Path, database_url: str | None) -> dict[str, str]:
    """The environment of labelbot's command line for the database under test."""
    env = {**os.environ, "DATABASE_PATH": str(database), "PYTHONPATH": str(ROOT)}
    return with_database(env, database_url)


def with_database(env: dict[str, str], database_url: str | None) -> dict[str, str]:
    """`env` with DATABASE_URL set to `database_url`, or without one (SQLite at DATABASE_PATH):
    only --database-url chooses, not a DATABASE_URL left in the shell."""
    env = {name: value for name, value in env.items() if name != "DATABASE_URL"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


async def labelbot_cli(env: dict[str, str], *args: str) -> str:
    """Runs a `labelbot` command and returns what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"labelbot {' '.join(args)} failed: {err.decode().strip()}")
    return out.decode()


async def prepare_database(env: dict[str, str], folder: Path, items: int) -> int:
    """Creates and opens the batch the workers label through labelbot's command line, so it
    lands in whichever database `env` gives the bot; returns its id."""
    data = folder / "bench.csv"
    data.write_text("text\n" + "".join(f"Review number {i}: fine\n" for i in range(items)))
    await labelbot_cli(env, "migrate")
    said = await labelbot_cli(
        env,
        "import",
        str(data),
        "--name",
        "Bench",
        "--question",
        "Is this review positive?",
        "--options",
        "yes,no",
        "--overlap",
        "1",
    )
    found = re.search(r"labelbot publish (\d+)", said)
    if found is None:
        raise RuntimeError(f"labelbot import did not name the batch: {said}")
    await labelbot_cli(env, "publish", found[1])
    return int(found[1])


async def stored_answers(env: dict[str, str], folder: Path, batch_id: int) -> int:
    """How many answers labelbot stored in the batch, as its export counts them."""
    path = folder / "answers.csv"
    said = await labelbot_cli(env, "export", str(batch_id), "--what", "answers", "-o", str(path))
    found = re.search(r"wrote (\d+) answers rows", said)
    if found is None:
        raise RuntimeError(f"labelbot export did not count the rows: {said}")
    return int(found[1])


async def phase(
    name: str,
    workers: int,
    seconds: float,
    warmup: float,
    database: Path,
    database_url: str | None,
    during: During | None = None,
) -> Run:
    # This measures the bot, not Telegram: the sandbox's flood limits are off.
    sandbox = Sandbox(SANDBOX_TOKEN, limits=None)
    async with SandboxServer(sandbox) as server:
        # Simulated workers tap as fast as the bot answers: flood control is lifted.
        env = labelbot_env(server, database, user_rate=1000, user_burst=1000)
        env = with_database(env, database_url)
        command = labelbot_command()
        if name == "bare":
            bare = ROOT / "bench" / "bare_bot.py"
            command = [
                sys.executable,
                str(bare),
                "--token",
                SANDBOX_TOKEN,
                "--base-url",
                server.base_url,
                "--poll-interval",
                str(POLL_INTERVAL),
            ]
        return await measure(name, command, env, workers, seconds, warmup, sandbox, during)


def table(runs: list[Run]) -> list[str]:
    """Every run, each labelbot run with its ratio to the bare run of its turn."""
    lines = [
        f"{'run':>3}  {'bot':<9}{'taps/s':>8}{'ratio':>7}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'polls/tap':>10}{'calls/tap':>10}{'bot CPU':>9}{'CPU ms/tap':>11}{'driver CPU':>12}"
        f"{'other CPU':>11}{'peak MB':>9}"
    ]
    for number, run in enumerate(runs, 1):
        ratio = f"{run.rate / runs[number - 2].rate:.2f}" if run.name == "labelbot" else ""
        lines.append(
            f"{number:>3}  {run.name:<9}{run.rate:>8.1f}{ratio:>7}{run.percentile(0.5):>8.1f}"
            f"{run.percentile(0.99):>8.1f}{run.polls / max(run.taps, 1):>10.2f}"
            f"{run.api_calls / max(run.taps, 1):>10.2f}"
            f"{run.bot_cpu:>9.0%}{run.cpu_per_tap_ms:>11.2f}{run.driver_cpu:>12.0%}"
            f"{run.other_cpu:>11.0%}{run.peak_rss_mb:>9.1f}"
            + ("  driver saturated" if run.saturated else "")
            + ("  machine busy" if run.busy else "")
        )
    return lines


def verdict(runs: list[Run], summary: Summary) -> list[str]:
    """The medians, a warning when the driver was the bottleneck, and the one summary line."""
    labelbot = [run for run in runs if run.name == "labelbot"]
    p99 = statistics.median(run.percentile(0.99) for run in labelbot)
    cpu = {
        name: statistics.median(run.cpu_per_tap_ms for run in runs if run.name == name)
        for name in BOTS
    }
    lines = [
        f"median: bare {summary.bare_per_s:.1f}/s, labelbot {summary.labelbot_per_s:.1f}/s,"
        f" ratio {summary.ratio:.2f} (target >= 0.75); CPU per tap: bare {cpu['bare']:.2f} ms,"
        f" labelbot {cpu['labelbot']:.2f} ms"
    ]
    if summary.saturated:
        lines.append(
            f"WARNING: the driver (sandbox and simulated workers) used >= {SATURATED:.0%} of a"
            f" core in run(s) {listed(summary.saturated)}: the ratio measures the driver,"
            " not the bots"
        )
    if summary.busy:
        lines.append(
            f"note: other work kept every core busy in run(s) {listed(summary.busy)}: the bots"
            " waited for a core there; a median needs most turns on a quiet machine"
        )
    lines.append(
        f"loop: ratio={summary.ratio:.2f} bare_per_s={summary.bare_per_s:.1f}"
        f" labelbot_per_s={summary.labelbot_per_s:.1f} runs={len(labelbot)} p99_ms={p99:.1f}"
        f" saturated={'yes' if summary.saturated else 'no'} busy_runs={len(summary.busy)}"
    )
    return lines


def listed(numbers: tuple[int, ...]) -> str:
    return ", ".join(map(str, numbers))


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each run")
    parser.add_argument("--runs", type=int, default=3, help="runs of each bot (default 3)")
    parser.add_argument(
        "--settle",
        type=int,
        default=60,
        help="seconds to wait at most, before each run, for other work on the machine to pause"
        " (default 60; 0: no wait)",
    )
    parser.add_argument(
        "--items", type=int, help="items in the batch (default: 2,000 per worker, at least 20,000)"
    )
    parser.add_argument(
        "--database-url",
        help="the database of the labelbot under test, given to it as DATABASE_URL"
        " (default: SQLite in a temporary folder)",
    )
    return parser


async def main(argv: list[str] | None = None) -> None:
    args = arguments().parse_args(argv)
    items = args.items or max(20_000, args.workers * 2_000)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        database = folder / "bench.db"
        env = cli_env(database, args.database_url)
        batch_id = await prepare_database(env, folder, items)
        runs = []
        for number, bot in enumerate(schedule(args.runs), 1):
            if args.settle and not await settle(args.settle):
                print(f"  run {number}: the machine stayed busy", file=sys.stderr, flush=True)
            run = await phase(
                bot, args.workers, args.seconds, args.warmup, database, args.database_url
            )
            print(f"  run {number}: {bot} {run.rate:.1f} taps/s", file=sys.stderr, flush=True)
            runs.append(run)
        stored = await stored_answers(env, folder, batch_id)
    print(
        f"\nloop benchmark: {args.workers} workers, {args.seconds:g}s measured per run,"
        f" {args.runs} runs of each bot in turns"
    )
    print("\n".join(table(runs)))
    print(f"answers stored by labelbot: {stored} (every run's taps, warm-ups included)")
    print("\n".join(verdict(runs, summarize(runs))))


if __name__ == "__main__":
    asyncio.run(main())
