"""Load and fault test: simulated workers label through the sandbox while Telegram misbehaves
and the bot is killed (SIGKILL) and started again.

It prints the answers confirmed to workers (the card turned into "✓ Saved" after their tap),
the answers stored, how many confirmed answers were lost (target 0), how many counts disagree
with the answers table where an answer could be counted twice (items' answer counters, the pay
ledger, workers' counters; target 0), p99 from tap to the next task, and the bot's peak memory.

    python bench/load.py [--workers 500] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.process import (  # noqa: E402
    WEBHOOK_SECRET_PATH,
    cpu_seconds,
    free_port,
    labelbot_command,
    labelbot_env,
    peak_rss_mb,
    start,
    stop,
    webhook_env,
)
from bot.local import SANDBOX_TOKEN  # noqa: E402
from bot.sandbox import Sandbox, SandboxServer, SandboxUser  # noqa: E402
from bot.sandbox.wire import Message  # noqa: E402
from handlers.callbacks import AnswerTap, decode  # noqa: E402
from labeling.batch import BatchSettings  # noqa: E402
from labeling.batches import BatchService  # noqa: E402
from storage import open_engine  # noqa: E402
from storage.batches import BatchStore  # noqa: E402
from storage.engine import Engine  # noqa: E402

SAVED = "✓ Saved"
REWARD = 0.05  # a reward, so that pay totals can disagree

# Where an answer can be counted twice. The answers table itself cannot hold one twice (its
# keys are unique), but the counts kept beside it could: each query counts the rows that
# disagree with the answers table.
DOUBLING_CHECKS = {
    # Ordinary items whose answer counter is not the number of answers that count on them
    # (a suspended worker's answers do not; gold items keep no counter).
    "item_counters": """
        SELECT COUNT(*) FROM items i WHERE i.gold IS NULL AND i.answers != (
            SELECT COUNT(*) FROM answers a LEFT JOIN worker_batches wb
                ON wb.worker_id = a.worker_id AND wb.batch_id = a.batch_id
            WHERE a.item_id = i.id AND COALESCE(wb.status, 'active') != 'suspended')""",
    # Reward rows that pay no answer, and answers without exactly one reward row.
    "pay_rows": """
        SELECT (SELECT COUNT(*) FROM ledger l WHERE l.kind = 'reward'
                AND NOT EXISTS (SELECT 1 FROM answers a WHERE a.id = l.answer_id))
             + (SELECT COUNT(*) FROM answers a WHERE (SELECT COUNT(*) FROM ledger l
                WHERE l.answer_id = a.id AND l.kind = 'reward') != 1)""",
    # Workers (per batch) whose rewards in the ledger do not add up to the batch's reward
    # times their answers.
    "pay_totals": """
        SELECT COUNT(*) FROM (
            SELECT worker_id, batch_id FROM (
                SELECT worker_id, batch_id, amount FROM ledger WHERE kind = 'reward'
                UNION ALL
                SELECT a.worker_id, a.batch_id, -b.reward
                FROM answers a JOIN batches b ON b.id = a.batch_id) AS paid
            GROUP BY worker_id, batch_id HAVING ABS(SUM(amount)) > 1e-9) AS off""",
    # Workers (per batch) whose answer and gold counters differ from their answers since their
    # record last started afresh.
    "worker_counters": """
        SELECT COUNT(*) FROM worker_batches wb
        WHERE wb.answers != (SELECT COUNT(*) FROM answers a
                WHERE a.worker_id = wb.worker_id AND a.batch_id = wb.batch_id
                AND a.created_at >= wb.trust_since)
           OR wb.gold_answers != (SELECT COUNT(a.correct) FROM answers a
                WHERE a.worker_id = wb.worker_id AND a.batch_id = wb.batch_id
                AND a.created_at >= wb.trust_since)
           OR wb.gold_correct != (SELECT COALESCE(SUM(a.correct), 0) FROM answers a
                WHERE a.worker_id = wb.worker_id AND a.batch_id = wb.batch_id
                AND a.created_at >= wb.trust_since)""",
}


@dataclass
class Report:
    confirmed: set[int] = field(default_factory=set)  # assignment ids the workers saw saved
    latencies: list[float] = field(default_factory=list)
    taps: int = 0
    stored: int = 0
    lost: int = 0
    doubled: dict[str, int] = field(default_factory=dict)  # by check, see DOUBLING_CHECKS
    peak_mb: float = 0.0
    restarts: int = 0
    kills: int = 0  # replicas killed and left dead, their peers carrying on
    faults: int = 0
    cpu_seconds: float = 0.0  # of every bot process

    @property
    def duplicated(self) -> int:
        return sum(self.doubled.values())

    def p99_ms(self) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000


async def count_doubling(db: Engine) -> dict[str, int]:
    """For each place an answer could be counted twice, the rows that disagree with the
    answers table."""
    return {name: (await db.read(sql))[0][0] for name, sql in DOUBLING_CHECKS.items()}


async def prepare(database: Path, workers: int, database_url: str | None = None) -> None:
    items = max(2000, workers * 60)
    content = ("text\n" + "".join(f"Review {i}: it works\n" for i in range(items))).encode()
    settings = BatchSettings(
        name="Load",
        question="Positive?",
        options="yes,no",
        overlap=1,
        gold_ratio=0.0,
        reward=REWARD,
    )
    db = open_engine(database, database_url)
    await db.open()
    try:
        await db.migrate()
        service = BatchService(BatchStore(db))  # type: ignore[arg-type]
        imported = await service.import_file(content, "load.csv", settings)
        await service.publish(imported.batch_id)
    finally:
        await db.close()


async def worker(user: SandboxUser, report: Report, until: float, rng: random.Random) -> None:
    """Taps the first option of the card, again and again; resyncs with /next when the bot
    does not answer (it may be dead for a moment)."""
    user.send("/start")
    card = None
    while time.monotonic() < until:
        if card is None or not card.buttons or "yes" not in card.buttons[0]:
            before = len(user.bot_messages)
            user.send("/next")
            try:
                await user.wait_for(lambda u, b=before: len(u.bot_messages) > b, 5)
            except TimeoutError:
                continue
            card = user.bot_messages[-1]
            continue
        button = card.find_button("yes")
        tap = decode(button["callback_data"]) if button else None
        if not isinstance(tap, AnswerTap):
            card = None
            continue
        edits = card.edits
        tapped = time.monotonic()
        user.press("yes", message_id=card.message_id)
        report.taps += 1
        try:
            await user.wait_for(lambda u, e=edits, c=card: c.edits > e, 5)
        except TimeoutError:
            card = None  # the bot was down: ask again
            continue
        if saved(card, tap.assignment_id):
            report.confirmed.add(tap.assignment_id)
            report.latencies.append(time.monotonic() - tapped)
        await asyncio.sleep(rng.uniform(0.0, 0.2))  # a worker reads the next item


def saved(card: Message, assignment_id: int) -> bool:
    """Whether the card, edited after a tap on `assignment_id`, tells the worker it was saved:
    it says so and has moved on (to another task, or to nothing left). An edit that only took
    the buttons away (an older card retired when another was sent) still shows the words of
    the answer before, and confirms nothing."""
    if not card.shown.startswith(SAVED) or not card.buttons:
        return False
    button = card.find_button("yes")
    moved_on = decode(button["callback_data"]) if button else None
    return not isinstance(moved_on, AnswerTap) or moved_on.assignment_id != assignment_id


async def faults(sandbox: Sandbox, report: Report, until: float, rng: random.Random) -> None:
    """A 429, a 5xx or a dropped connection on some Bot API call every few hundred
    milliseconds."""
    methods = ["answer_callback_query", "edit_message_text", "send_message"]
    while time.monotonic() < until:
        await asyncio.sleep(rng.uniform(0.2, 0.6))
        roll = rng.random()
        if roll < 0.4:
            sandbox.inject(429, method=rng.choice(methods), retry_after=1)
        elif roll < 0.8:
            sandbox.inject(rng.choice([500, 502]), method=rng.choice(methods))
        else:
            sandbox.inject(0, method=rng.choice(methods))  # a dropped connection
        report.faults += 1


async def run_load(
    workers: int,
    seconds: float,
    kill_at: float | None,
    seed: int = 5,
    *,
    replicas: int = 1,
    database_url: str | None = None,
    duplicates: float = 0.0,
) -> Report:
    """Workers label through the sandbox against `replicas` bot processes (more than one:
    webhook mode behind the sandbox's round-robin delivery, which posts a `duplicates` share
    of updates twice). At `kill_at` one bot is killed with SIGKILL: a lone bot is started
    again, one of several is not (its peers carry on)."""
    rng = random.Random(seed)
    report = Report()
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "load.db"
        await prepare(database, workers, database_url)
        sandbox = Sandbox(SANDBOX_TOKEN)
        async with SandboxServer(sandbox) as server:
            settings: dict[str, object] = {
                "user_rate": 1000,
                "user_burst": 1000,
                "concurrent_updates": 256,
            }
            if database_url:
                settings["database_url"] = database_url
            ports = [free_port() for _ in range(replicas)] if replicas > 1 else [None]
            envs = [
                labelbot_env(server, database, **settings, **(webhook_env(p) if p else {}))
                for p in ports
            ]
            bots = [
                await start(labelbot_command(), env, sandbox, port=port)
                for env, port in zip(envs, ports, strict=True)
            ]
            if replicas > 1:
                endpoints = [f"http://127.0.0.1:{port}/{WEBHOOK_SECRET_PATH}" for port in ports]
                sandbox.route_webhook(endpoints, duplicates=duplicates)
            cpu = {bot.pid: 0.0 for bot in bots}
            until = time.monotonic() + seconds
            users = [sandbox.user(200_000 + i) for i in range(workers)]
            crowd = asyncio.gather(
                *(worker(u, report, until, random.Random(seed + i)) for i, u in enumerate(users)),
                faults(sandbox, report, until, rng),
            )
            try:
                if kill_at is not None:
                    await asyncio.sleep(kill_at)
                    victim = bots[0]
                    report.peak_mb = peak_rss_mb(victim.pid)
                    cpu[victim.pid] = cpu_seconds(victim.pid)
                    victim.kill()  # SIGKILL: no cleanup, no flush, as a crash would
                    await victim.wait()
                    if replicas == 1:
                        sandbox.release_polls()
                        await asyncio.sleep(0.5)
                        bots[0] = await start(labelbot_command(), envs[0], sandbox)
                        cpu[bots[0].pid] = 0.0
                        report.restarts += 1
                    else:
                        report.kills += 1
                await crowd
                for bot in bots:
                    if bot.returncode is None:
                        report.peak_mb = max(report.peak_mb, peak_rss_mb(bot.pid))
                        cpu[bot.pid] = cpu_seconds(bot.pid)
                report.cpu_seconds = sum(cpu.values())
            finally:
                for bot in bots:
                    await stop(bot, sandbox)
        engine = open_engine(database, database_url)
        await engine.open()
        try:
            report.stored = (await engine.read("SELECT COUNT(*) AS n FROM answers"))[0]["n"]
            report.doubled = await count_doubling(engine)
            stored = await engine.read("SELECT assignment_id FROM answers")
            stored_ids = {row["assignment_id"] for row in stored}
        finally:
            await engine.close()
    report.lost = len(report.confirmed - stored_ids)
    return report


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--kill-at",
        type=float,
        default=None,
        help="when to SIGKILL the bot (default: a third of the way)",
    )
    args = parser.parse_args()
    kill_at = args.kill_at if args.kill_at is not None else args.seconds / 3
    report = await run_load(args.workers, args.seconds, kill_at)
    print(
        f"\nload test: {args.workers} workers for {args.seconds:g}s, {report.faults} injected"
        f" faults (429, 5xx, dropped connections), {report.restarts} SIGKILL and restart"
    )
    print(f"taps sent:          {report.taps}")
    print(f"answers confirmed:  {len(report.confirmed)}")
    print(f"answers stored:     {report.stored}")
    print(f"lost:               {report.lost} (target 0)")
    print("counted twice, where it could happen (target 0 each):")
    for name, count in report.doubled.items():
        print(f"  {name.replace('_', ' ') + ':':<17}{count}")
    print(f"p99 tap to next:    {report.p99_ms():.0f} ms")
    print(f"bot peak memory:    {report.peak_mb:.1f} MB")
    doubled = " ".join(f"{name}={count}" for name, count in report.doubled.items())
    rest = f"{doubled} p99_ms={report.p99_ms():.0f} peak_mb={report.peak_mb:.1f}"
    confirmed, lost, duplicated = len(report.confirmed), report.lost, report.duplicated
    print(f"load: confirmed={confirmed} lost={lost} duplicated={duplicated} {rest}")


if __name__ == "__main__":
    asyncio.run(main())
