"""Gold that cannot be dodged, reports of problem items and the review of gold, as workers and
coordinators meet them through the sandbox.

Gold falls at random places in each worker's stream (keyed by a secret per batch), so every
test walks the stream until a condition holds, with a bound, and never assumes a position.
Items name their own answer ("a cat sits here"), so an honest worker, and the test, can read
the truth off the card; gold items say "Gold photo", so a dodger can recognise them.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.cli import main
from bot.sandbox import SandboxUser
from bot.sandbox.wire import Message
from handlers.cards import BACK, CLOSED, NEXT, NOTHING_LEFT, PROBLEMS, REPORT, SKIP
from labeling.models import Problem
from labeling.review import Sweep
from tests.harness import BOSS, Harness, first_card, press, say

OPTIONS = ("cat", "dog", "bird", "fish")
QUESTION = "Which animal?"
BATCH = "Animals"
GOLD = "Gold photo"
ITEM = re.compile(r"(Gold photo|Photo) (\d+): a (cat|dog|bird|fish) sits here")
SUSPENDED = "did not pass its quality checks"
GOOD_NEWS = f"Good news: a check question in {BATCH} turned out to be wrong"
UNKNOWN = "Unknown command. /help lists what I can do."


def animals(regular: int, gold: int, wrong: Callable[[int], bool] = lambda i: False) -> str:
    """A batch file: gold items g0.. ("Gold photo i"), then ordinary items r0.. ("Photo i").
    Gold item i's known answer is the option after the truth when `wrong(i)`."""
    rows = ["id,text,gold"]
    for i in range(gold):
        animal = OPTIONS[i % 4]
        known = OPTIONS[(i + 1) % 4] if wrong(i) else animal
        rows.append(f"g{i},{GOLD} {i}: a {animal} sits here,{known}")
    rows += [f"r{i},Photo {i}: a {OPTIONS[i % 4]} sits here," for i in range(regular)]
    return "\n".join(rows) + "\n"


async def add_animals(harness: Harness, content: str, **settings: object) -> int:
    settings.setdefault("overlap", 3)
    return await harness.add_batch(
        content,
        name=BATCH,
        question=QUESTION,
        options=",".join(OPTIONS),
        fast_suspend=None,  # tests answer faster than any person: only gold judges here
        **settings,
    )


def external_id(text: str) -> str:
    """The batch file's id of the item on a card: g3, r12."""
    found = ITEM.search(text)
    assert found is not None, f"no item on the card: {text!r}"
    return ("g" if found.group(1) == GOLD else "r") + found.group(2)


def truth(text: str) -> str:
    found = ITEM.search(text)
    assert found is not None, f"no item on the card: {text!r}"
    return found.group(3)


def miss(text: str) -> str:
    """An answer that is neither the truth nor the option after it (a wrong file's gold)."""
    return OPTIONS[(OPTIONS.index(truth(text)) + 2) % 4]


def is_task(card: Message) -> bool:
    return ITEM.search(card.shown) is not None and any(OPTIONS[0] in row for row in card.buttons)


def is_gold(card: Message) -> bool:
    return is_task(card) and external_id(card.shown).startswith("g")


async def report(worker: SandboxUser, card: Message, problem: Problem) -> None:
    await press(worker, card, REPORT)
    await press(worker, card, PROBLEMS[problem])


async def work(
    worker: SandboxUser,
    card: Message,
    choose: Callable[[str], str],
    *,
    until: Callable[[Message], bool] = lambda card: False,
    limit: int = 100,
) -> list[str]:
    """Answers the card's tasks until none is left, `until` holds or the worker is stopped;
    returns the ids of the items answered."""
    answered: list[str] = []
    while is_task(card) and not until(card):
        assert len(answered) < limit, f"still working after {limit} answers"
        answered.append(external_id(card.shown))
        await press(worker, card, choose(card.shown))
    return answered


async def gold_record(harness: Harness, worker_id: int) -> tuple[int, int]:
    rows = await harness.query(
        "SELECT gold_answers, gold_correct FROM worker_batches WHERE worker_id = ?", (worker_id,)
    )
    return rows[0] if rows else (0, 0)


async def eventually(harness: Harness, sql: str, expected: object, timeout: float = 5.0) -> None:
    """Waits until a query on the database gives `expected` (the upkeep runs every second)."""
    async with asyncio.timeout(timeout):
        while await harness.query(sql) != expected:  # noqa: ASYNC110 - state in the database
            await asyncio.sleep(0.05)


# -- gold cannot be dodged ------------------------------------------------------------------


@pytest.mark.parametrize("dodge", ["skip", "report"])
async def test_a_worker_who_dodges_every_gold_task_gets_no_further(
    harness: Harness, dodge: str
) -> None:
    await add_animals(harness, animals(regular=30, gold=5), reward=0.05)
    dodger = await harness.join(21)
    card = await first_card(harness, dodger)
    dodged: list[str] = []
    answered: list[str] = []
    for _ in range(40):
        if not is_task(card):
            break
        if not is_gold(card):
            assert not dodged, "once gold is owed, every task is gold until it is answered"
            answered.append(external_id(card.shown))
            await press(dodger, card, truth(card.shown))
            continue
        dodged.append(external_id(card.shown))
        if dodge == "skip":
            await press(dodger, card, SKIP)
        else:
            await report(dodger, card, Problem.UNCLEAR)
            assert card.shown.startswith("Thank you: reported.")
        if is_task(card):
            assert is_gold(card), f"after dodging {dodged[-1]} the next task is gold again"
    # Three gold items dodged (min_gold: a worker who gives back gold as often as they answer
    # it is dodging), each a different one; at most min_gold ordinary answers.
    assert len(dodged) == len(set(dodged)) == 3
    assert len(answered) <= 3
    closed = f"{CLOSED.format(batch=BATCH)}\n\n{NOTHING_LEFT}"
    if dodge == "skip":
        assert card.shown == closed
    else:
        assert card.shown == f"Thank you: reported.\n\n{closed}"
    assert card.buttons == [[NEXT]]
    # The dodger is out of the batch: no task comes back by asking again.
    assert await say(dodger, "/next", NOTHING_LEFT) == NOTHING_LEFT
    assert await harness.query("SELECT status, cause FROM worker_batches WHERE worker_id = 21") == [
        ("suspended", "dodging")
    ]

    assert await harness.query(
        "SELECT COUNT(*) FROM answers a JOIN items i ON i.id = a.item_id"
        " WHERE a.worker_id = 21 AND i.gold IS NULL"
    ) == [(len(answered),)]
    assert await harness.query("SELECT COUNT(*) FROM answers WHERE worker_id = 21") == [
        (len(answered),)
    ]
    assert await harness.query(
        "SELECT kind, status, COUNT(*) FROM assignments WHERE worker_id = 21 GROUP BY 1, 2"
    ) == [("gold", "skipped", 3)] + ([("task", "answered", len(answered))] if answered else [])
    assert await gold_record(harness, 21) == (0, 0)
    # Paid for exactly the answers given: nothing for dodged gold.
    ledger = await harness.query(
        "SELECT l.answer_id, l.amount FROM ledger l WHERE l.worker_id = 21 ORDER BY 1"
    )
    given = await harness.query("SELECT id FROM answers WHERE worker_id = 21 ORDER BY 1")
    assert [row[0] for row in ledger] == [row[0] for row in given]
    assert all(amount == pytest.approx(0.05) for _, amount in ledger)
    reported = await harness.query("SELECT COUNT(*) FROM reports WHERE worker_id = 21")
    assert reported == [(3 if dodge == "report" else 0,)]


async def test_gold_left_to_expire_is_still_owed(tmp_path: Path) -> None:
    async with Harness(tmp_path / "expire.db", assignment_timeout_seconds=1.5) as harness:
        await add_animals(harness, animals(regular=20, gold=4))
        worker = await harness.join(22)
        card = await first_card(harness, worker)
        ordinary = await work(worker, card, truth, until=is_gold, limit=3)
        assert is_gold(card) and len(ordinary) <= 3
        expired = external_id(card.shown)
        await eventually(
            harness,
            "SELECT kind, status FROM assignments WHERE worker_id = 22 ORDER BY id DESC LIMIT 1",
            [("gold", "expired")],
        )
        worker.send("/next")
        await worker.wait_for(
            lambda u: u.last is not card and u.last is not None and is_task(u.last)
        )
        again = worker.last
        assert again is not None and is_gold(again)
        assert external_id(again.shown) != expired  # another gold item: never the same twice
        await press(worker, again, truth(again.shown))
        assert await gold_record(harness, 22) == (1, 1)
        assert await harness.query("SELECT gold_owed FROM worker_batches WHERE worker_id = 22") == [
            (int(is_gold(again)),)
        ]


# -- reports ----------------------------------------------------------------------------------


async def test_two_broken_reports_withdraw_an_item_until_a_coordinator_restores_it(
    office: Harness,
) -> None:
    await add_animals(office, animals(regular=8, gold=3))
    first_regular = "r0"  # ordinary items are handed out in file order, gold comes between
    boss = office.user(BOSS)
    for reporter in (31, 32):
        worker = await office.join(reporter)
        card = await first_card(office, worker)
        gold = await work(worker, card, truth, until=lambda c: not is_gold(c), limit=3)
        assert all(item.startswith("g") for item in gold)
        assert external_id(card.shown) == first_regular
        options = card.buttons
        assert options[-1] == [SKIP, REPORT]
        record = await gold_record(office, reporter)

        await press(worker, card, REPORT)
        assert card.buttons == [[label] for label in PROBLEMS.values()] + [[BACK]]
        assert external_id(card.shown) == first_regular  # the item stays on the card
        await press(worker, card, BACK)
        assert card.buttons == options
        await report(worker, card, Problem.BROKEN)
        assert card.shown.startswith("Thank you: reported. Next task:")
        assert is_task(card) and external_id(card.shown) != first_regular
        assert await gold_record(office, reporter) == record  # a report is no gold answer
        assert await office.query(
            "SELECT i.external_id, r.reason FROM reports r JOIN items i ON i.id = r.item_id"
            " WHERE r.worker_id = ?",
            (reporter,),
        ) == [(first_regular, "broken")]
        state = "ok" if reporter == 31 else "broken"
        assert await office.query(
            "SELECT state FROM items WHERE external_id = ?", (first_regular,)
        ) == [(state,)]

    third = await office.join(33)
    card = await first_card(office, third)
    seen = await work(third, card, truth)
    assert NOTHING_LEFT in card.shown
    assert first_regular not in seen
    assert sorted(seen) == sorted([f"g{i}" for i in range(3)] + [f"r{i}" for i in range(1, 8)])

    assert await say(third, "/reports 1", "Unknown command") == UNKNOWN
    listed = await say(boss, "/reports 1", "items with problems")
    assert f"{first_regular} [broken] · 2 broken: Photo 0: a cat sits here" in listed
    assert await say(boss, f"/restore 1 {first_regular}", "back in circulation") == (
        f"{first_regular} is back in circulation; no worker's record depends on it."
    )
    assert await office.query(
        "SELECT state FROM items WHERE external_id = ?", (first_regular,)
    ) == [("ok",)]
    back = await say(third, "/next", QUESTION)
    assert "Photo 0: a cat sits here" in back
    assert "Cannot do that" in await say(boss, f"/restore 1 {first_regular}", "Cannot")


async def test_reporting_every_gold_item_broken_from_two_accounts_is_no_way_past_gold(
    harness: Harness,
) -> None:
    await add_animals(harness, animals(regular=30, gold=5))
    ordinary: dict[int, list[str]] = {}
    for worker_id in (81, 82):
        worker = await harness.join(worker_id)
        card = await first_card(harness, worker)
        ordinary[worker_id] = []
        for _ in range(40):
            if not is_task(card):
                break
            if is_gold(card):
                await report(worker, card, Problem.BROKEN)
            else:
                ordinary[worker_id].append(external_id(card.shown))
                await press(worker, card, truth(card.shown))
    # Reports on gold count only from workers already judged on gold: none is withdrawn.
    assert await harness.query(
        "SELECT COUNT(*) FROM items WHERE gold IS NOT NULL AND state = 'broken'"
    ) == [(0,)]
    assert await harness.query("SELECT gold_items FROM batches") == [(5,)]
    for worker_id in (81, 82):
        assert len(ordinary[worker_id]) <= 3
        assert await gold_record(harness, worker_id) == (0, 0)
    assert await harness.query("SELECT cause FROM worker_batches ORDER BY worker_id") == [
        ("dodging",),
        ("dodging",),
    ]


# -- suspect gold and the review of gold ------------------------------------------------------


async def test_a_coordinator_corrects_wrong_gold_and_the_suspended_worker_is_let_back(
    office: Harness,
) -> None:
    # Every known answer in the file is wrong: an honest worker misses every gold item.
    await add_animals(office, animals(regular=40, gold=8, wrong=lambda i: True))
    honest = await office.join(41)
    card = await first_card(office, honest)
    answered = await work(honest, card, truth)
    assert SUSPENDED in card.shown and "closed to you" in card.shown
    assert any(SUSPENDED in n.text and n.alert for n in honest.notices)
    gold = [item for item in answered if item.startswith("g")]
    assert len(gold) == 6 and answered[-1] in gold  # six misses in a row on four options
    assert await office.query(
        "SELECT status, cause, reason FROM worker_batches WHERE worker_id = 41"
    ) == [("suspended", "gold", "gold accuracy 0/6: below 60% at odds 244 to 1")]

    boss = office.user(BOSS)
    fixed = gold[0]
    right = OPTIONS[int(fixed[1:]) % 4]
    assert await say(boss, f"/gold 1 {fixed} {right.upper()}", "corrected") == (
        f"Gold answer of {fixed} corrected; every worker's record was recomputed:"
        " 1 reinstated, 0 suspended."
    )
    await honest.wait_for(lambda u: any(GOOD_NEWS in m.shown for m in u.bot_messages))
    assert await office.query(
        "SELECT status, gold_answers, gold_correct FROM worker_batches WHERE worker_id = 41"
    ) == [("active", 6, 1)]
    assert await office.query("SELECT i.gold FROM items i WHERE i.external_id = ?", (fixed,)) == [
        (right,)
    ]
    assert await office.query("SELECT kind, status FROM notices WHERE worker_id = 41") == [
        ("reinstated", "sent")
    ]
    assert QUESTION in await say(honest, "/next", QUESTION)  # back at work

    # Gold the worker never answered changes no one's standing.
    unseen = next(f"g{i}" for i in range(8) if f"g{i}" not in gold)
    assert "0 reinstated, 0 suspended" in await say(
        boss, f"/gold 1 {unseen} {OPTIONS[int(unseen[1:]) % 4]}", "corrected"
    )
    assert "the answer must be one of: cat, dog, bird, fish" in await say(
        boss, f"/gold 1 {fixed} zebra", "Cannot"
    )
    assert await say(boss, "/gold 1 nope cat", "no item") == "That batch has no item nope."


HONEST = range(52, 57)


async def flag_wrong_gold(office: Harness) -> SandboxUser:
    """Batch 1 with six gold items, g0's known answer wrong ("dog" for a cat). A careless
    worker (51) is suspended with g0 among their misses; five honest workers then miss g0 and
    only g0, until the upkeep's sweep flags it suspect. Returns the careless worker."""
    await add_animals(
        office, animals(regular=30, gold=6, wrong=lambda i: i == 0), overlap=10, gold_ratio=0.5
    )
    # The careless worker misses every gold item but g0, where they tell the truth: six
    # misses by the file, g0 among them (the sixth gold answer suspends, and there are six).
    careless = await office.join(51)
    card = await first_card(office, careless)
    answered = await work(
        careless, card, lambda text: truth(text) if external_id(text) == "g0" else miss(text)
    )
    assert SUSPENDED in card.shown
    assert sorted(item for item in answered if item.startswith("g")) == [f"g{i}" for i in range(6)]
    assert await office.query("SELECT status FROM worker_batches WHERE worker_id = 51") == [
        ("suspended",)
    ]
    # Honest workers answer the truth: right on five gold items, "wrong" on g0. Five of them
    # miss g0 by a clear margin (a few trusted misses could be chance). The upkeep's sweep
    # waits until all have answered: on a slow machine it could flag g0 half way through,
    # and the last of them would never see it.
    review = office.services.review
    review.sweep = pending_sweep  # type: ignore[method-assign]
    try:
        await honest_workers_answer_every_gold(office)
    finally:
        del review.sweep
    await eventually(
        office,
        "SELECT external_id, state FROM items WHERE state != 'ok'",
        [("g0", "suspect")],
    )
    return careless


async def pending_sweep() -> Sweep:
    return Sweep()


async def honest_workers_answer_every_gold(office: Harness) -> None:
    for worker_id in HONEST:
        worker = await office.join(worker_id)
        card = await first_card(office, worker)
        seen: set[str] = set()

        def all_gold_seen(card: Message, seen: set[str] = seen) -> bool:
            if is_gold(card):
                seen.add(external_id(card.shown))
            return len(seen) == 6 and not is_gold(card)

        await work(worker, card, truth, until=all_gold_seen)
        assert len(seen) == 6


async def test_gold_that_trusted_workers_miss_is_flagged_and_its_victim_reinstated(
    office: Harness,
) -> None:
    careless = await flag_wrong_gold(office)
    await careless.wait_for(lambda u: any(GOOD_NEWS in m.shown for m in u.bot_messages))
    # g0 counts in no one's record: the careless worker's 0/5 is not enough to suspend.
    assert await office.query(
        "SELECT worker_id, status, gold_answers, gold_correct FROM worker_batches ORDER BY 1"
    ) == [(51, "active", 5, 0)] + [(worker_id, "active", 5, 5) for worker_id in HONEST]
    assert await office.query(
        "SELECT COUNT(*) FROM answers a JOIN items i ON i.id = a.item_id"
        " WHERE i.external_id = 'g0' AND a.correct IS NOT NULL"
    ) == [(0,)]
    # What the workers were told (a coordinator's digest of the suspension may come too,
    # when the upkeep ran between the suspension and the review).
    assert await office.query(
        "SELECT worker_id, kind, status FROM notices WHERE worker_id IS NOT NULL"
    ) == [(51, "reinstated", "sent")]
    assert QUESTION in await say(careless, "/next", QUESTION)  # back at work
    listed = await say(office.user(BOSS), "/reports 1", "items with problems")
    assert "g0 [suspect] · gold 'dog'" in listed
    assert "Gold photo 0: a cat sits here" in listed


async def test_reports_show_the_misses_that_made_gold_suspect(office: Harness) -> None:
    await flag_wrong_gold(office)
    listed = await say(office.user(BOSS), "/reports 1", "items with problems")
    # Six answers on g0, every one of them "cat" against the file's "dog".
    assert "g0 [suspect] · gold 'dog', missed by 6 of 6: Gold photo 0" in listed


async def test_gold_a_coordinator_restores_stays_restored(office: Harness) -> None:
    careless = await flag_wrong_gold(office)
    await careless.wait_for(lambda u: any(GOOD_NEWS in m.shown for m in u.bot_messages))
    boss = office.user(BOSS)
    # The coordinator judges g0 right after all: the careless worker's six misses count again.
    assert await say(boss, "/restore 1 g0", "circulation") == (
        "g0 is back in circulation; every worker's record was recomputed:"
        " 0 reinstated, 1 suspended."
    )
    await careless.wait_for(lambda u: SUSPENDED in u.bot_messages[-1].shown)
    await office.services.review.sweep()  # what the upkeep does every second
    assert await office.query("SELECT state FROM items WHERE external_id = 'g0'") == [("ok",)]
    assert await office.query("SELECT status FROM worker_batches WHERE worker_id = 51") == [
        ("suspended",)
    ]


async def test_dropping_gold_makes_its_answers_count_towards_its_label(
    office: Harness,
) -> None:
    await add_animals(office, animals(regular=8, gold=3))
    # Three workers answer everything; the last one misses g0. Warm-up gold comes within the
    # first nine tasks, so each of them meets all three gold items.
    for worker_id in (61, 62, 63):
        worker = await office.join(worker_id)
        card = await first_card(office, worker)

        def choose(text: str, last: bool = worker_id == 63) -> str:
            return miss(text) if last and external_id(text) == "g0" else truth(text)

        answered = await work(worker, card, choose)
        assert NOTHING_LEFT in card.shown and "g0" in answered
    assert await gold_record(office, 63) == (3, 2)

    boss = office.user(BOSS)
    assert await say(boss, "/dropgold 1 g0", "ordinary") == (
        "g0 is an ordinary item now; every worker's record was recomputed:"
        " 0 reinstated, 0 suspended."
    )
    assert await office.query(
        "SELECT gold, state, answers FROM items WHERE external_id = 'g0'"
    ) == [(None, "ok", 3)]
    assert await office.query(
        "SELECT worker_id, gold_answers, gold_correct FROM worker_batches ORDER BY 1"
    ) == [(61, 2, 2), (62, 2, 2), (63, 2, 2)]

    before = len(boss.bot_messages)
    boss.send("/export 1 labels")
    await boss.wait_for(lambda u: any(m.document for m in u.bot_messages[before:]))
    document = next(m.document for m in boss.bot_messages[before:] if m.document)
    assert document is not None
    labels = {r["id"]: r for r in csv.DictReader(io.StringIO(document.content.decode()))}
    g0 = labels["g0"]
    assert (g0["label"], g0["answers"], g0["gold"]) == ("cat", "3", "")
    assert g0["method"] != "gold"
    assert (labels["g1"]["method"], labels["g1"]["label"]) == ("gold", "dog")
    assert "Cannot do that: that item is not hidden gold." in await say(
        boss, "/dropgold 1 g0", "Cannot"
    )


async def test_the_command_line_lists_problems_and_corrects_gold_while_the_bot_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "cli.db"
    monkeypatch.chdir(tmp_path)
    for name in ("TELEGRAM_BOT_TOKEN", "COORDINATOR_IDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_PATH", str(database))
    async with Harness(database) as harness:
        await add_animals(harness, animals(regular=40, gold=8, wrong=lambda i: True))
        worker = await harness.join(71)
        card = await first_card(harness, worker)
        answered = await work(worker, card, truth)
        assert SUSPENDED in card.shown
        capsys.readouterr()

        assert await asyncio.to_thread(main, ["reports", "1"]) == 0
        assert capsys.readouterr().out.strip() == "batch 1: no reports and no suspect gold"
        fixed = next(item for item in answered if item.startswith("g"))
        right = OPTIONS[int(fixed[1:]) % 4]
        assert await asyncio.to_thread(main, ["gold", "1", fixed, "--answer", right]) == 0
        assert capsys.readouterr().out.strip() == (
            f"gold answer of {fixed} corrected; every worker's record was recomputed:"
            " 1 reinstated, 0 suspended"
        )
        await worker.wait_for(lambda u: any(GOOD_NEWS in m.shown for m in u.bot_messages))
        assert await harness.query("SELECT status FROM worker_batches WHERE worker_id = 71") == [
            ("active",)
        ]
