"""Coordinators in control from the chat: standings, reinstatement, notices about their batches,
money and counts, a paused batch back, a file imported again."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

from bot.sandbox import SandboxUser
from bot.sandbox.wire import Message
from labeling.batch import BatchSettings
from labeling.models import BatchStatus
from labeling.quality import Suspension
from labeling.report import pages
from labeling.watch import DIGEST_EVERY, WatchService, digest
from storage.batches import BatchStore
from storage.db import Database
from storage.engine import Engine, Tx
from storage.standing import suspend
from storage.watch import WatchStore
from tests.engines import replica, stored_batch
from tests.harness import BOSS, Harness, say
from tests.test_coordinator_flow import CAPTION, REVIEWS, upload
from tests.test_quality_flow import OPTIONS, animal_batch, work, wrong

PLAIN = "id,text\n" + "".join(f"p{i},Review number {i}\n" for i in range(4))


async def careless_batch(office: Harness) -> tuple[int, dict[str, str]]:
    content, truth = animal_batch(regular=24, gold=8)
    batch = await office.add_batch(
        content, options=",".join(OPTIONS), overlap=3, gold_ratio=0.2, question="Which animal?"
    )
    return batch, truth


async def suspended(office: Harness, worker_id: int, truth: dict[str, str]) -> SandboxUser:
    """A worker who answers every card wrong until the gold stops them."""
    worker = await office.join(worker_id)
    await office.first_task(worker)
    await work(worker, lambda text: wrong(text, truth))
    assert worker.last is not None and "closed to you" in worker.last.shown
    return worker


def from_bot(user: SandboxUser, part: str) -> list[str]:
    return [m.shown for m in user.bot_messages if part in m.shown]


# -- /workers N and /reinstate N WORKER -------------------------------------------------------


async def test_workers_shows_standing_and_reinstate_lets_the_worker_back(office: Harness) -> None:
    batch, truth = await careless_batch(office)
    tapper = await suspended(office, 9, truth)
    honest = await office.join(3, "Ann")
    await office.first_task(honest)
    await work(honest, lambda text: truth[next(t for t in truth if t in text)], limit=6)
    boss = office.user(BOSS)

    standing = await say(boss, f"/workers {batch}", "worker 9")
    lines = standing.splitlines()
    tapper_line = next(line for line in lines if line.startswith("worker 9 "))
    assert "[suspended]" in tapper_line and "95% CI" in tapper_line
    assert "gold accuracy 0/" in tapper_line  # why
    ann = next(line for line in lines if line.startswith("worker 3 "))
    assert "[active]" in ann and "95% CI" in ann
    assert lines.index(tapper_line) < lines.index(ann), "the suspended come first"
    assert f"/reinstate {batch} WORKER" in standing

    intruder = await office.join(77)
    assert await say(intruder, f"/reinstate {batch} 9", "Unknown") == (
        "Unknown command. /help lists what I can do."
    )
    assert await say(boss, f"/reinstate {batch} 9", "Worker 9") == (
        f"Worker 9 may work on batch {batch} again; their answers count, and they have been told."
    )
    await tapper.wait_for(lambda u: bool(from_bot(u, "A coordinator let you back")))
    (told,) = from_bot(tapper, "A coordinator let you back")
    assert "Which animal?" not in told and "/next" in told
    assert "Which animal?" in await say(tapper, "/next", "Which animal?")
    assert "[active]" in next(
        line
        for line in (await say(boss, f"/workers {batch}", "worker 9")).splitlines()
        if line.startswith("worker 9 ")
    )
    assert await say(boss, f"/reinstate {batch} 9", "Worker 9") == (
        f"Worker 9 is not suspended from batch {batch}."
    )
    assert await say(boss, "/reinstate 99 9", "batch") == "There is no batch 99."
    assert "Usage: /reinstate N WORKER" in await say(boss, "/reinstate 1", "Usage")
    assert await office.query("SELECT actor_id, action, subject_id FROM audit_log") == [
        (BOSS, "reinstate", 9)
    ]
    await asyncio.sleep(0.3)  # the notifier would have sent a second notice by now
    assert len(from_bot(tapper, "A coordinator let you back")) == 1


async def test_the_workers_export_says_who_is_suspended(office: Harness) -> None:
    batch, truth = await careless_batch(office)
    await suspended(office, 9, truth)
    out = io.StringIO()
    await office.services.batches.export(batch, "workers", "csv", out)
    (row,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert (row["worker_id"], row["status"]) == ("9", "suspended")
    assert row["reason"].startswith("gold accuracy 0/")


def test_long_lists_are_cut_into_pages_that_fit_a_message() -> None:
    lines = [f"worker {i} " + "x" * 90 for i in range(200)]
    split = pages(lines, limit=4096)
    assert len(split) > 1 and all(len(page) <= 4096 for page in split)
    assert "\n".join(split).split("\n") == lines  # nothing lost, nothing doubled
    assert pages([], limit=100) == []
    assert pages(["y" * 500], limit=100) == ["y" * 99 + "…"]


async def test_a_long_workers_list_is_paged(office: Harness) -> None:
    batch = await office.add_batch(PLAIN, options="yes,no", overlap=1)

    def many(tx: Tx) -> None:
        for worker in range(1000, 1080):
            tx.execute(
                "INSERT INTO workers (id, name, created_at, last_seen_at) VALUES (?, ?, 0, 0)",
                (worker, "W" * 60),
            )
            tx.execute(
                "INSERT INTO worker_batches (worker_id, batch_id) VALUES (?, ?)", (worker, batch)
            )

    async with office.opened() as db:
        await db.run(many)
    boss = office.user(BOSS)
    first = await say(boss, f"/workers {batch}", "worker 1000")
    assert len(first) <= 4096 and "Page 1 of " in first and f"/workers {batch} 2" in first
    second = await say(boss, f"/workers {batch} 2", "Page 2 of ")
    assert "worker 1000 " not in second and "worker 10" in second
    assert "Usage" in await say(boss, f"/workers {batch} 99", "Usage")


# -- notices to the coordinator ----------------------------------------------------------------


async def answer_everything(worker: SandboxUser, office: Harness) -> None:
    await office.first_task(worker)
    card = next(m for m in reversed(worker.bot_messages) if m.buttons)
    while card.find_button("yes") is not None:
        edits = card.edits
        worker.press("yes", message_id=card.message_id)
        await worker.wait_for(lambda u, e=edits: card.edits > e)


async def test_a_complete_batch_is_reported_once_to_its_coordinator(office: Harness) -> None:
    boss = office.user(BOSS)
    await office.join(14)
    await say(boss, "/promote 14", "is now a coordinator")
    helper = office.user(14)
    caption = "question: Is it positive?\noptions: yes, no\noverlap: 1"
    await upload(helper, "plain.csv", PLAIN.encode(), caption, "Batch 1")
    await say(helper, "/publish 1", "is open")
    worker = await office.join(21)
    await answer_everything(worker, office)
    await helper.wait_for(lambda u: bool(from_bot(u, "is complete")))
    assert from_bot(helper, "is complete") == [
        "Batch 1 'plain' is complete: every item has its answers (4 counted, 0 excluded"
        " (suspended workers), 4 stored). Results: /export 1 labels"
    ]
    await office.stop_bot()
    await office.start_bot()
    await asyncio.sleep(1.5)  # a round of upkeep and of the notifier after the restart
    assert len(from_bot(helper, "is complete")) == 1
    assert not from_bot(boss, "is complete"), "the batch's own coordinator is told, no one else"


async def test_a_batch_from_the_command_line_is_reported_to_the_owners(office: Harness) -> None:
    batch = await office.add_batch(PLAIN, options="yes,no", overlap=1)
    boss = office.user(BOSS)
    boss.send("/batches")  # the owner has written to the bot
    await answer_everything(await office.join(22), office)
    await boss.wait_for(lambda u: bool(from_bot(u, f"Batch {batch} 'Reviews' is complete")))


async def test_suspensions_reach_the_coordinator_as_one_digest(office: Harness) -> None:
    batch, truth = await careless_batch(office)
    boss = office.user(BOSS)
    boss.send("/batches")
    # Upkeep once at the start and then rarely: both suspensions land before the next round.
    await office.stop_bot()
    await office.start_bot(upkeep_every=3600)
    await suspended(office, 8, truth)
    await suspended(office, 9, truth)
    await asyncio.sleep(0.5)
    assert not from_bot(boss, "suspended"), "not one message per suspension"
    await office.stop_bot()
    await office.start_bot()
    await boss.wait_for(lambda u: bool(from_bot(u, "suspended in batch")))
    (text,) = from_bot(boss, "suspended in batch")
    assert text.startswith(f"2 workers suspended in batch {batch} 'Reviews' since the last digest")
    assert "worker 8 " in text and "worker 9 " in text and "gold accuracy" in text
    assert f"/workers {batch}" in text and f"/reinstate {batch} WORKER" in text
    await office.stop_bot()
    await office.start_bot()
    await asyncio.sleep(1.5)
    assert len(from_bot(boss, "suspended in batch")) == 1


async def watching(engine: Engine, now: list[float]) -> tuple[WatchService, int]:
    """A batch of PLAIN open for a while, and the rounds that watch it at `now`."""
    settings = BatchSettings(name="b", question="q?", options="a,b", overlap=1)
    batch = await stored_batch(engine, PLAIN.encode(), settings)
    watch = WatchService(
        WatchStore(engine), BatchStore(engine), owners=frozenset({BOSS}), clock=lambda: now[0]
    )
    return watch, batch


async def suspend_worker(engine: Engine, batch: int, worker_id: int, now: float) -> None:
    def change(tx: Tx) -> None:
        tx.execute(
            "INSERT INTO workers (id, name, created_at, last_seen_at)"
            " VALUES (?, 'w', 0, 0) ON CONFLICT (id) DO NOTHING",
            (worker_id,),
        )
        suspend(tx, worker_id, batch, Suspension("fast", "too fast"), now)

    await engine.run(change)


async def digests(engine: Engine) -> list[str]:
    rows = await engine.read("SELECT text FROM notices WHERE kind = 'suspensions' ORDER BY id")
    return [row["text"] for row in rows]


async def test_digests_are_paced_and_list_each_suspension_once(engine: Engine) -> None:
    now = [1000.0]
    watch, batch = await watching(engine, now)
    await suspend_worker(engine, batch, 1, now[0])
    await watch.round()
    assert len(await digests(engine)) == 1
    now[0] += 10
    await suspend_worker(engine, batch, 2, now[0])
    await watch.round()
    now[0] += DIGEST_EVERY - 20
    await watch.round()
    assert len(await digests(engine)) == 1, "at most one digest per batch every few minutes"
    now[0] += 10
    await watch.round()
    await watch.round()
    texts = await digests(engine)
    assert len(texts) == 2 and "worker 2 " in texts[1] and "worker 1 " not in texts[1]


async def test_two_replicas_rounds_at_once_send_one_digest(engine: Engine) -> None:
    """Both replicas read the batch before either queues its digest: the second finds it
    sent since and queues nothing."""
    now = [1000.0]
    watch, batch = await watching(engine, now)
    await suspend_worker(engine, batch, 1, now[0])
    async with replica(engine) as other:
        peer = WatchService(
            WatchStore(other), BatchStore(other), owners=frozenset({BOSS}), clock=lambda: now[0]
        )
        (seen,) = await watch.store.watched()
        workers = await watch.store.unreported(batch)
        sent = await asyncio.gather(
            watch.store.digested(batch, seen.digest_at, [BOSS], "first", workers, now[0]),
            peer.store.digested(batch, seen.digest_at, [BOSS], "second", workers, now[0]),
        )
        assert sorted(sent) == [False, True]
        await asyncio.gather(watch.round(), peer.round())
    assert len(await digests(engine)) == 1


async def test_a_batch_is_marked_complete_once_whoever_marks_it(engine: Engine) -> None:
    now = [1000.0]
    watch, batch = await watching(engine, now)
    (seen,) = await watch.store.watched()
    assert (seen.has_items, seen.unanswered, seen.completed) == (True, True, False)
    await engine.run(lambda tx: tx.execute("UPDATE items SET answers = target"))
    (seen,) = await watch.store.watched()
    assert (seen.unanswered, seen.completed) == (False, False)
    async with replica(engine) as other:
        marked = await asyncio.gather(
            watch.store.complete(batch, [BOSS, 7], "done", now[0]),
            WatchStore(other).complete(batch, [BOSS, 7], "done", now[0]),
        )
    assert sorted(marked) == [False, True]
    rows = await engine.read(
        "SELECT coordinator_id, kind, text FROM notices ORDER BY coordinator_id"
    )
    assert [tuple(row) for row in rows] == [(7, "completed", "done"), (BOSS, "completed", "done")]
    (seen,) = await watch.store.watched()
    assert seen.completed and not seen.unanswered


def test_a_digest_of_many_fits_one_message() -> None:
    from labeling.watch import Suspended

    many = [Suspended(i, "N" * 64, "gold accuracy 0/6: " + "r" * 100) for i in range(300)]
    text = digest(7, "big", many)
    assert len(text) <= 4096 and text.startswith("300 workers suspended in batch 7 'big'")
    assert "more: /workers 7" in text


# -- money and the same counts everywhere -----------------------------------------------------


async def test_status_shows_money_spent_and_the_projected_total(office: Harness) -> None:
    batch = await office.add_batch(PLAIN, options="yes,no", overlap=2, reward=0.05)
    worker = await office.join(31)
    card = await office.first_task(worker)
    for _ in range(3):
        edits = card.edits
        worker.press("yes", message_id=card.message_id)
        await worker.wait_for(lambda u, e=edits: card.edits > e)
    status = await say(office.user(BOSS), f"/status {batch}", "pay:")
    # 3 answers paid 0.05 each; 5 of the 8 answers needed still to come at 0.05.
    assert (
        "spent 0.15 USD (the pay ledger); projected total 0.40 USD (5 answers still needed"
        in status
    )


async def test_status_and_exports_use_the_same_counts(office: Harness) -> None:
    batch, truth = await careless_batch(office)
    tapper_answers = 0
    tapper = await office.join(9)
    await office.first_task(tapper)
    tapper_answers = await work(tapper, lambda text: wrong(text, truth))
    honest = await office.join(3)
    await office.first_task(honest)
    await work(honest, lambda text: truth[next(t for t in truth if t in text)], limit=10)
    ((stored,),) = await office.query("SELECT COUNT(*) FROM answers")
    ((counted,),) = await office.query(
        "SELECT COUNT(*) FROM answers a JOIN items i ON i.id = a.item_id"
        " WHERE i.gold IS NULL AND a.worker_id = 3"
    )
    words = f"{counted} counted, {tapper_answers} excluded (suspended workers), {stored} stored"
    boss = office.user(BOSS)
    assert words in await say(boss, f"/status {batch}", "counted")
    captions = []
    for what in ("answers", "labels"):
        before = len(boss.bot_messages)
        boss.send(f"/export {batch} {what}")
        await boss.wait_for(lambda u, b=before: any(m.document for m in u.bot_messages[b:]))
        captions.append(next(m.shown for m in boss.bot_messages[before:] if m.document))
    assert all(words in caption for caption in captions), captions
    assert "87 answers" not in captions[0] and captions[0].startswith(f"{stored} answers")


# -- a paused batch is back --------------------------------------------------------------------


async def test_resume_tells_the_batch_s_workers_once(office: Harness) -> None:
    boss = office.user(BOSS)
    await upload(
        boss, "plain.csv", PLAIN.encode(), CAPTION.replace("overlap: 1", "overlap: 2"), "Batch 1"
    )
    worked = await office.join(41)
    told = await office.join(42)
    stopped = await office.join(43)
    await say(stopped, "/stop", "Paused")
    await say(boss, "/publish 1", "is open")
    await worked.wait_for(lambda u: bool(from_bot(u, "New batch")))
    await told.wait_for(lambda u: bool(from_bot(u, "New batch")))
    await office.first_task(worked)
    await say(boss, "/pause 1", "paused")
    newcomer = await office.join(44)  # came after the announcement, never worked in it
    await say(boss, "/resume 1", "is now open")
    for worker in (worked, told):
        await worker.wait_for(lambda u: bool(from_bot(u, "is back")))
    await boss.wait_for(
        lambda u: any(m.shown.startswith("Batch 1 announced") for m in u.bot_messages)
    )
    (back,) = from_bot(worked, "is back")
    assert back.startswith("Batch plain is back")
    assert worked.last is not None and worked.last.find_button("Start labeling ▶") is not None
    assert not from_bot(stopped, "is back") and not from_bot(newcomer, "is back")
    await office.stop_bot()
    await office.start_bot()
    await asyncio.sleep(1.5)
    assert [len(from_bot(w, "is back")) for w in (worked, told)] == [1, 1]


# -- a file imported again ---------------------------------------------------------------------


def resend(user: SandboxUser, original: Message, caption: str) -> int:
    """Sends the same file again (Telegram keeps its file_unique_id), with a new caption."""
    sandbox = user.sandbox
    message = sandbox._add(
        user.user_id, user.chat, False, document=original.document, caption=caption, raw=caption
    )
    return user._push_message(message)


async def test_a_file_sent_again_is_imported_again_only_when_asked(office: Harness) -> None:
    boss = office.user(BOSS)
    await upload(boss, "reviews.csv", REVIEWS.encode(), CAPTION, "Batch 1")
    original = next(m for m in boss.messages if m.document is not None and not m.from_bot)
    corrected = CAPTION.replace("overlap: 1", "overlap: 2")
    before = len(boss.bot_messages)
    resend(boss, original, corrected)
    await boss.wait_for(lambda u: len(u.bot_messages) > before)
    assert boss.bot_messages[-1].shown == (
        "Nothing new: this file was imported already, as batch 1. To import it again as a new"
        " batch, send it with 'again: yes' in the caption."
    )
    await say(boss, "/close 1", "closed")
    before = len(boss.bot_messages)
    update_id = resend(boss, original, corrected + "\nagain: yes")
    await boss.wait_for(lambda u: any("Batch 2" in m.shown for m in u.bot_messages[before:]))
    office.sandbox.replay(update_id)  # the same upload delivered again
    await boss.wait_for(lambda u: any("Nothing new" in m.shown for m in u.bot_messages[before:]))
    assert await office.query("SELECT id, status, overlap FROM batches ORDER BY id") == [
        (1, "closed", 1),
        (2, "draft", 2),
    ]
    assert "again: write yes or no" in await upload(
        boss, "reviews.csv", REVIEWS.encode(), CAPTION + "\nagain: perhaps", "again"
    )


async def test_status_and_batches_still_work_for_a_draft(office: Harness) -> None:
    batch = await office.add_batch(PLAIN, options="yes,no", overlap=1, publish=False)
    summary = (await office.services.batches.status(batch))[0]
    assert summary.status is BatchStatus.DRAFT and summary.answers == 0
    assert "0 counted, 0 excluded (suspended workers), 0 stored" in await say(
        office.user(BOSS), f"/status {batch}", "counted"
    )


async def test_the_migration_keeps_notices_and_marks_old_work_done(tmp_path: Path) -> None:
    def old_notice(tx: Tx) -> None:
        tx.execute("INSERT INTO workers (id, name, created_at, last_seen_at) VALUES (5, 'w', 0, 0)")
        tx.execute(
            "INSERT INTO notices (worker_id, kind, status, created_at)"
            " VALUES (5, 'reinstated', 'sent', 1)"
        )

    async with Database(tmp_path / "old.db") as db:
        await db.migrate(up_to=7)
        await db.run(old_notice)
        await db.migrate()
        notices = await db.read("SELECT worker_id, coordinator_id, kind FROM notices")
        assert [tuple(row) for row in notices] == [(5, None, "reinstated")]
