"""Coordinators run batches from the chat, through the sandbox as they would on a phone."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest

from bot.sandbox import SandboxUser
from tests.harness import BOSS, Harness, say, settle

REVIEWS = 'id,text,gold,source\nr1,Great phone,yes,shop\nr2,=HYPERLINK("x"),,app\nr3,Bad,no,web\n'
CAPTION = "question: Is it positive?\noptions: yes, no\noverlap: 1\nreward: 0.05\ngold_ratio: 0"


async def upload(
    user: SandboxUser, name: str, content: bytes, caption: str | None, expect: str
) -> str:
    before = len(user.bot_messages)
    user.send_document(name, content, caption)
    await user.wait_for(lambda u: any(expect in m.shown for m in u.bot_messages[before:]))
    return next(m.shown for m in user.bot_messages[before:] if expect in m.shown)


async def test_a_good_upload_is_summarised_and_stored(office: Harness) -> None:
    boss = office.user(BOSS)
    text = await upload(boss, "reviews.csv", REVIEWS.encode(), CAPTION, "Batch 1")
    assert text == (
        "Batch 1 'reviews': 1 item (2 gold), answers: yes, no; overlap 1; reward 0.05 USD per"
        " task; expected pay 12.00 USD per hour (estimated 15.0 s per task) ⚠ below the minimum"
        " of 15.00 USD per hour.\nSend /publish 1 to open it."
    )
    assert await office.query("SELECT name, status, created_by FROM batches") == [
        ("reviews", "draft", BOSS)
    ]


@pytest.mark.parametrize(
    ("name", "content", "caption", "expected"),
    [
        (
            "bad.csv",
            b"text,gold\nfine,yes\nbad,maybe\n,no\n",
            CAPTION,
            "The file was not imported; nothing was stored:\n"
            "line 3: gold answer 'maybe' is not one of the options\n"
            "line 4: needs a text or an image",
        ),
        (
            "latin.csv",
            "text\ncaf\u00e9\n".encode("latin-1"),
            CAPTION,
            "line 2: the file is not UTF-8 text (byte 0xe9)",
        ),
        ("sheet.xlsx", b"PK\x03\x04", CAPTION, "Send the batch as a .csv, .jsonl or .json"),
        (
            "items.json",
            b'[{"text": "a"}, {"txt": "b"}]',
            CAPTION,
            "line 1: needs a text or an image",
        ),
        (
            "reviews.csv",
            REVIEWS.encode(),
            "options: yes, no\ncolour: blue\nbad line",
            "caption line 2: unknown setting 'colour'\ncaption line 3: write settings as"
            " 'key: value'\nthe caption needs a 'question: ...' line",
        ),
        (
            "reviews.csv",
            REVIEWS.encode(),
            "question: q\noverlap: zero",
            "overlap: Input should be a valid integer",
        ),
        ("huge.csv", b"text\n" + b"x" * (20 * 1024 * 1024), CAPTION, "over Telegram's 20 MB limit"),
        (
            "wide.csv",
            b",".join([b"text"] + [b"c%d" % i for i in range(1_000_000)]) + b"\n",
            CAPTION,
            "line 1: the header has 1000001 columns; at most 200 are allowed",
        ),
        ("blob.csv", bytes(range(256)) * 100, CAPTION, "the file is not UTF-8 text"),
        ("nul.csv", b"text\nok\x00ok\n", CAPTION, "line 2: the file is binary, not text"),
    ],
)
async def test_a_bad_upload_says_why_and_stores_nothing(
    office: Harness, name: str, content: bytes, caption: str, expected: str
) -> None:
    before = await office.snapshot()
    text = await upload(office.user(BOSS), name, content, caption, expected.split("\n")[0])
    assert expected in text
    assert await office.snapshot() == before


COORDINATOR_COMMANDS = [
    "/batches",
    "/status 1",
    "/publish 1",
    "/pause 1",
    "/resume 1",
    "/close 1",
    "/export 1",
    "/broadcast hello all",
    "/workers",
    "/ban 42 spam",
    "/unban 42",
    "/promote 7",
    "/demote 500",
    "/coordinator",
]


async def test_a_non_coordinator_changes_nothing(office: Harness) -> None:
    await upload(office.user(BOSS), "reviews.csv", REVIEWS.encode(), CAPTION, "Batch 1")
    intruder = await office.join(7)
    await office.join(42)
    before = await office.snapshot()
    for command in COORDINATOR_COMMANDS:
        assert await say(intruder, command, "Unknown command") == (
            "Unknown command. /help lists what I can do."
        )
    # A file from someone else is no upload: they are told what the bot can read.
    await upload(intruder, "reviews.csv", REVIEWS.encode(), CAPTION, "I can only read text")
    await asyncio.sleep(0.3)  # a broadcast, had one been queued, would have started
    assert await office.snapshot() == before
    assert not office.sandbox.calls_by_chat[("send_document", 7)]


async def test_wrong_arguments_get_the_usage_line(office: Harness) -> None:
    boss = office.user(BOSS)
    for command, usage in (
        ("/publish", "Usage: /publish N [paid]"),
        ("/publish abc", "Usage: /publish N [paid]"),
        ("/publish 1 2 3", "Usage: /publish N [paid]"),
        ("/status 99999999999999999999", "Usage: /status N"),
        ("/export 1 pdf", "Usage: /export N"),
        ("/ban", "Usage: /ban WORKER_ID"),
        ("/broadcast", "Usage: /broadcast TEXT"),
        ("/status 12", "There is no batch 12."),
        ("/publish 1 paid", "Paid broadcasts are off"),
        ("/status \u0661", "Usage: /status N"),
        ("/status " + "9" * 3000, "Usage: /status N"),
        ("/ban " + "x" * 3000, "Usage: /ban WORKER_ID"),
    ):
        assert usage in await say(boss, command, usage.split(" ")[0])


async def told(worker: SandboxUser) -> int:
    return sum("New batch" in m.shown for m in worker.bot_messages)


async def test_publishing_to_fifty_workers_through_a_429_and_a_blocked_worker(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path / "b.db", coordinator_ids=str(BOSS), broadcast_rate=200) as h:
        boss = h.user(BOSS)
        await upload(boss, "reviews.csv", REVIEWS.encode(), CAPTION, "Batch 1")
        workers = [await h.join(1000 + i) for i in range(50)]
        workers[13].block()
        h.sandbox.inject(429, method="send_message", retry_after=1, times=2)
        await say(boss, "/publish 1", "is open")
        await boss.wait_for(
            lambda u: any(m.shown.startswith("Batch 1 announced") for m in u.bot_messages), 20
        )
        counts = [await told(w) for w in workers]
        assert counts[13] == 0 and counts[:13] + counts[14:] == [1] * 49
        assert await h.query("SELECT reachable FROM workers WHERE id = 1013") == [(0,)]
        final = next(m for m in boss.bot_messages if m.shown.startswith("Batch 1 announced"))
        assert final.shown == (
            "Batch 1 announced: 49 of 50 workers told, 1 unreachable (blocked the bot), 0 failed."
        )
        assert await h.query(
            "SELECT status, COUNT(*) FROM deliveries GROUP BY status ORDER BY 1"
        ) == [("failed", 1), ("sent", 49)]


async def test_a_restart_mid_broadcast_resumes_and_tells_no_one_twice(tmp_path: Path) -> None:
    async with Harness(tmp_path / "r.db", coordinator_ids=str(BOSS), broadcast_rate=25) as h:
        boss = h.user(BOSS)
        await upload(boss, "reviews.csv", REVIEWS.encode(), CAPTION, "Batch 1")
        workers = [await h.join(2000 + i) for i in range(50)]
        await say(boss, "/publish 1", "is open")
        await settle(
            lambda: sum(1 for w in workers if "New batch" in w.bot_messages[-1].shown) >= 10
        )
        await h.stop_bot()
        told_before = [await told(w) for w in workers]
        assert 0 < sum(told_before) < 50
        await h.start_bot()
        await boss.wait_for(
            lambda u: any(m.shown.startswith("Batch 1 announced") for m in u.bot_messages), 20
        )
        assert [await told(w) for w in workers] == [1] * 50
        assert await h.query("SELECT status, COUNT(*) FROM deliveries GROUP BY 1") == [("sent", 50)]


async def test_exports_arrive_as_documents_that_hold_the_database(office: Harness) -> None:
    boss = office.user(BOSS)
    with_gold = CAPTION.replace("gold_ratio: 0", "gold_ratio: 0.5")
    await upload(boss, "reviews.csv", REVIEWS.encode(), with_gold, "Batch 1")
    await say(boss, "/publish 1", "is open")
    worker = await office.join(11)
    await office.first_task(worker)
    card = worker.last
    assert card is not None
    for step in range(3):  # gold falls anywhere; "yes" is right on one gold item of two
        if card.find_button("yes") is None:
            break  # nothing left: gold is not handed out once the ordinary item is done
        worker.press("yes", message_id=card.message_id)
        await worker.wait_for(lambda u, s=step: card.edits > s)
    exports = {}
    for what in ("answers", "labels", "workers"):
        before = len(boss.bot_messages)
        boss.send(f"/export 1 {what}")
        await boss.wait_for(lambda u, b=before: any(m.document for m in u.bot_messages[b:]))
        document = next(m for m in boss.bot_messages[before:] if m.document)
        assert document.document is not None
        assert document.document.name == f"batch-1-{what}.csv"
        exports[what] = list(csv.DictReader(io.StringIO(document.document.content.decode())))
    stored = await office.query(
        "SELECT a.id, a.item_id, a.worker_id, a.value, a.duration_ms FROM answers a ORDER BY id"
    )
    assert [
        (
            int(r["answer_id"]),
            int(r["item_id"]),
            int(r["worker_id"]),
            r["answer"],
            int(r["duration_ms"]),
        )
        for r in exports["answers"]
    ] == stored
    labels = {r["id"]: r for r in exports["labels"]}
    assert labels["r2"]["text"] == '\'=HYPERLINK("x")'  # a formula is escaped, not run
    assert (labels["r1"]["label"], labels["r1"]["method"]) == ("yes", "gold")
    assert labels["r2"]["source"] == "app"
    (row,) = exports["workers"]
    ((given, right, gold),) = await office.query(
        "SELECT COUNT(*), SUM(correct), COUNT(correct) FROM answers"
    )
    assert (row["worker_id"], row["answers"], row["owed"]) == (
        "11",
        str(given),
        f"{0.05 * given:g}",
    )
    if gold:
        assert float(row["gold_accuracy"]) == right / gold
    else:
        assert row["gold_accuracy"] == ""


async def test_status_reports_the_batch(office: Harness) -> None:
    boss = office.user(BOSS)
    await upload(boss, "reviews.csv", REVIEWS.encode(), CAPTION, "Batch 1")
    text = await say(boss, "/status 1", "batch 1 'reviews' [draft]")
    assert "pay: 0.05 USD per task, 12.00 USD per hour" in text and "below the minimum" in text
    # A draft has no answers, so no chart (tests/test_chart_and_words.py draws them).
    assert "No chart" in text
    assert "#1 reviews [draft]" in await say(boss, "/batches", "#1")


async def test_pause_resume_close_control_what_workers_get(office: Harness) -> None:
    boss = office.user(BOSS)
    await upload(
        boss, "reviews.csv", REVIEWS.encode(), CAPTION.replace("gold_ratio: 0", ""), "Batch 1"
    )
    await say(boss, "/publish 1", "is open")
    assert await say(boss, "/pause 1", "Batch 1") == "Batch 1 is now paused."
    worker = await office.join(12)
    assert "Nothing left" in await say(worker, "/next", "Nothing left")
    assert await say(boss, "/pause 1", "Cannot") == ("Cannot do that: batch 1 is paused already.")
    await say(boss, "/resume 1", "is now open")
    assert "Is it positive?" in await say(worker, "/next", "Is it positive?")
    await say(boss, "/close 1", "is now closed")
    card = worker.last
    assert card is not None
    worker.press("yes", message_id=card.message_id)
    await worker.wait_for(lambda u: any("not taking answers" in n.text for n in u.notices))
    assert "Cannot do that" in await say(boss, "/resume 1", "Cannot")


async def test_bans_promotions_and_the_workers_list(office: Harness) -> None:
    boss = office.user(BOSS)
    await upload(boss, "reviews.csv", REVIEWS.encode(), CAPTION, "Batch 1")
    await say(boss, "/publish 1", "is open")
    worker = await office.join(13, "Mia")
    assert await say(boss, "/ban 13 copied answers", "Worker 13") == (
        "Worker 13 banned from every batch."
    )
    assert "Nothing left" in await say(worker, "/next", "Nothing left")
    assert "13 Mia [banned]: 0 answers" in await say(boss, "/workers", "Mia")
    await say(boss, "/unban 13", "may work again")
    assert "Is it positive?" in await say(worker, "/next", "Is it positive?")
    assert await office.query("SELECT action, subject_id, reason FROM audit_log") == [
        ("ban", 13, "copied answers"),
        ("unban", 13, None),
    ]
    helper = await office.join(14)
    await say(helper, "/batches", "Unknown command")
    await say(boss, "/promote 14", "is now a coordinator")
    assert "#1 reviews [open]" in await say(helper, "/batches", "#1")
    assert "/coordinator" in await say(helper, "/help", "coordinator")
    await say(boss, "/demote 14", "no longer")
    await say(helper, "/batches", "Unknown command")
    await say(helper, "/demote 500", "Unknown command")  # no longer a coordinator
    assert "set in COORDINATOR_IDS" in await say(boss, "/demote 500", "COORDINATOR_IDS")


async def test_an_announcement_reaches_every_active_worker(office: Harness) -> None:
    boss = office.user(BOSS)
    workers = [await office.join(3000 + i) for i in range(3)]
    workers[2].send("/stop")
    await workers[2].wait_for(lambda u: "Paused" in u.last.shown)
    await say(boss, "/broadcast Payday is Friday!", "queued")
    for worker in workers[:2]:
        await worker.wait_for(lambda u: "Payday is Friday!" in u.last.shown)
    await boss.wait_for(
        lambda u: any(m.shown.startswith("Your announcement was sent") for m in u.bot_messages)
    )
    assert not any("Payday" in m.shown for m in workers[2].bot_messages)
