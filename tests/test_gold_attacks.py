"""Attacks on gold, reports and the review of gold: workers who try to tell gold apart,
forged and replayed taps, colluding accounts, hostile coordinator commands and Telegram faults.

A test that passes shows a defence that holds. A test marked xfail(strict=True) shows a hole:
it asserts what should hold and fails today; its reason names the cause.

Gold positions are random per batch, so every walk loops with a bound and never assumes a
position. Items carry their own answer ("a cat sits here") and gold items say "Gold", so the
test (standing in for whatever the attacker knows) can tell them apart.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from bot.sandbox import SandboxUser
from bot.sandbox.faults import Disconnect
from bot.sandbox.wire import Message, Params
from handlers.cards import PROBLEMS, REPORT, SKIP
from labeling.batch import BatchSettings
from labeling.models import Problem, Submission, Task, Verdict
from labeling.review import ReviewService
from storage.db import Database
from storage.engine import Row
from storage.reviews import ReviewStore
from tests.factories import Desk, open_batch, registered
from tests.harness import BOSS, Harness, first_card, press, replies, settle

TTL = 600.0
OPTIONS = ("cat", "dog", "bird", "fish")
BATCH = "Animals"
QUESTION = "Which animal?"
ITEM = re.compile(r"(Gold|Photo) (\d+): a (cat|dog|bird|fish) sits here")
UNKNOWN = "Unknown command. /help lists what I can do."
GOOD_NEWS = "Good news: a check question"
# Every table an attack could write to.
TABLES = (
    "workers",
    "batches",
    "items",
    "assignments",
    "answers",
    "ledger",
    "worker_batches",
    "reports",
    "notices",
)


def animals(regular: int, gold: int) -> str:
    """A batch file: gold items g0.. ("Gold i"), then ordinary items r0.. ("Photo i")."""
    rows = ["id,text,gold"]
    rows += [f"g{i},Gold {i}: a {OPTIONS[i % 4]} sits here,{OPTIONS[i % 4]}" for i in range(gold)]
    rows += [f"r{i},Photo {i}: a {OPTIONS[i % 4]} sits here," for i in range(regular)]
    return "\n".join(rows) + "\n"


def truth(text: str | None) -> int:
    found = ITEM.search(text or "")
    assert found is not None, f"no item in {text!r}"
    return OPTIONS.index(found.group(3))


def is_gold_text(text: str | None) -> bool:
    found = ITEM.search(text or "")
    return found is not None and found.group(1) == "Gold"


def key(text: str | None) -> str:
    """The batch file's id of the item: g3, r12."""
    found = ITEM.search(text or "")
    assert found is not None, f"no item in {text!r}"
    return ("g" if found.group(1) == "Gold" else "r") + found.group(2)


# -- the stores alone -------------------------------------------------------------------------


async def store_batch(db: Database, regular: int, gold: int, **settings: Any) -> int:
    settings.setdefault("options", OPTIONS)
    settings.setdefault("fast_suspend", None)
    content = animals(regular, gold).encode()
    return await open_batch(db, content, BatchSettings(name=BATCH, question=QUESTION, **settings))


class Clock:
    """Time that moves on a little with every look, so rows never tie."""

    def __init__(self) -> None:
        self.now = 1.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


async def walk(
    tasks: Desk,
    worker: int,
    clock: Clock,
    act: Callable[[int, Task], str | int],
    *,
    limit: int = 400,
    after: Callable[[], Any] | None = None,
) -> list[str]:
    """Works through the worker's tasks: `act(step, task)` returns an option to answer,
    'skip' or 'report' (broken). Returns the items' keys in the order they came."""
    seen: list[str] = []
    task = (await tasks.current_or_next(worker, clock(), TTL)).task
    while task is not None:
        assert len(seen) < limit, f"worker {worker} still working after {limit} tasks"
        seen.append(key(task.text))
        action = act(len(seen) - 1, task)
        if action == "skip":
            outcome = await tasks.skip(task.assignment_id, worker, clock(), TTL)
        elif action == "report":
            outcome = await tasks.report(task.assignment_id, worker, Problem.BROKEN, clock(), TTL)
        else:
            assert isinstance(action, int)
            submission = Submission(task.assignment_id, worker, option=action)
            outcome = await tasks.submit(submission, clock(), TTL)
        if outcome.verdict is Verdict.BATCH_NOT_OPEN:
            break  # suspended by the upkeep's sweep between two taps
        assert outcome.saved, outcome.verdict
        if after is not None:
            await after()
        task = outcome.next_task
    return seen


# -- telling gold apart -----------------------------------------------------------------------


async def test_a_throwaway_account_that_skips_everything_cannot_learn_the_gold_set(
    db: Database,
) -> None:
    await store_batch(db, regular=60, gold=8, overlap=3)
    tasks = await registered(db, 1, 2)
    clock = Clock()
    seen = await walk(tasks, 1, clock, lambda step, task: "skip")
    # The attacker's inference, from their own cards only: everything after the first
    # min_gold cards is gold.
    inferred = set(seen[3:])
    gold = {f"g{i}" for i in range(8)}
    assert inferred <= gold  # the inference is never wrong...
    # ...and it should not cover most of the gold set.
    assert len(inferred) < len(gold) // 2


async def test_a_spammer_learns_too_little_gold_from_a_throwaway_to_pass(db: Database) -> None:
    """What a throwaway account leaks: it is closed after giving back min_gold gold tasks, so
    a second account that answers the leaked items right and spams the rest still meets gold
    it never saw, and misses it."""
    await store_batch(db, regular=60, gold=8, overlap=1)
    tasks = await registered(db, 1, 2)
    clock = Clock()
    leaked = set(await walk(tasks, 1, clock, lambda step, task: "skip"))
    assert len({item for item in leaked if item.startswith("g")}) <= 3
    first = await db.read("SELECT cause FROM worker_batches WHERE worker_id = 1")
    assert first[0]["cause"] == "dodging"
    await walk(
        tasks, 2, clock, lambda step, task: truth(task.text) if key(task.text) in leaked else 0
    )
    second = (
        await db.read("SELECT gold_answers, gold_correct FROM worker_batches WHERE worker_id = 2")
    )[0]
    assert second["gold_correct"] < second["gold_answers"], (
        "gold the throwaway never saw catches the spam"
    )


# -- colluding accounts -----------------------------------------------------------------------


GOLD_ITEMS = 20
REGULAR = 110


def judged_then_report(step: int, task: Task) -> str | int:
    """An account's plan: answer the first 9 tasks truthfully (3 x min_gold: the warm-up's
    third gold item is forced by task 7, so the account is judged on gold whatever its
    stream), then report every task broken until nothing is left."""
    return truth(task.text) if step < 9 else "report"


async def two_reporters(db: Database) -> None:
    # Enough ordinary items that the stream draws gold after the warm-up (at gold_ratio 0.1,
    # none in 100 draws has odds 3e-5): from then on owed gold comes back to back.
    await store_batch(db, regular=REGULAR, gold=GOLD_ITEMS, overlap=3)
    tasks = await registered(db, 1, 2)
    clock = Clock()
    for worker in (1, 2):
        await walk(tasks, worker, clock, judged_then_report)


async def test_two_judged_accounts_cannot_report_gold_away(db: Database) -> None:
    await two_reporters(db)
    broken = (
        await db.read("SELECT COUNT(*) AS n FROM items WHERE gold IS NOT NULL AND state != 'ok'")
    )[0]["n"]
    # Each account answered at most 9 gold items, so at least 2 of 20 went to reports by both.
    assert broken <= 1, f"{broken} of {GOLD_ITEMS} gold items withdrawn by two accounts"


async def test_two_accounts_cannot_report_a_whole_batch_away(db: Database) -> None:
    await two_reporters(db)
    broken = (
        await db.read("SELECT COUNT(*) AS n FROM items WHERE gold IS NULL AND state != 'ok'")
    )[0]["n"]
    assert broken <= 5, f"{broken} of {REGULAR} ordinary items withdrawn by two accounts"


async def frame(db: Database) -> list[Row]:
    """Colluders 1 and 2 answer gold right and every ordinary item with the same wrong answer
    (the option after the truth), first; honest worker 3 then answers everything truthfully
    and completes each item, the upkeep's sweep running after every answer."""
    await store_batch(db, regular=60, gold=10, overlap=3)
    tasks = await registered(db, 1, 2, 3)
    clock = Clock()
    review = ReviewService(ReviewStore(db), clock=clock)

    def collude(step: int, task: Task) -> int:
        right = truth(task.text)
        return right if is_gold_text(task.text) else (right + 1) % 4

    for worker in (1, 2):
        await walk(tasks, worker, clock, collude)

    async def sweep() -> None:
        await review.sweep()

    await walk(tasks, 3, clock, lambda step, task: truth(task.text), after=sweep)
    return await db.read(
        "SELECT worker_id, status, cause, gold_answers, gold_correct, peer_checks, peer_agreed"
        " FROM worker_batches ORDER BY 1"
    )


async def test_two_colluders_cannot_get_an_honest_worker_suspended(db: Database) -> None:
    rows = await frame(db)
    honest = next(row for row in rows if row["worker_id"] == 3)
    assert honest["gold_answers"] == honest["gold_correct"] >= 3  # right on every gold item
    assert honest["status"] == "active", f"the honest worker was suspended: {tuple(honest)}"


# -- through the bot -------------------------------------------------------------------------


async def add_animals(harness: Harness, content: str, **settings: Any) -> int:
    settings.setdefault("overlap", 3)
    settings.setdefault("name", BATCH)
    return await harness.add_batch(
        content, question=QUESTION, options=",".join(OPTIONS), fast_suspend=None, **settings
    )


async def snapshot(harness: Harness) -> dict[str, list[tuple[Any, ...]]]:
    return await harness.snapshot(TABLES)


async def write(harness: Harness, sql: str, params: tuple[Any, ...] = ()) -> None:
    async with harness.opened() as db:
        await db.run(lambda tx: tx.execute(sql, params))


async def forged(worker: SandboxUser, card: Message, data: str) -> str:
    """Taps `data` under the card; returns the text of the bot's answer to the query."""
    before = len(worker.notices)
    worker.tap(card, data)
    await worker.wait_for(lambda u: len(u.notices) > before)
    return worker.notices[-1].text or ""


def assignment(card: Message) -> int | None:
    """The assignment a task card's Skip button names (None: the card shows no task)."""
    if card.reply_markup is None:
        return None
    data = card.reply_markup["inline_keyboard"][-1][0]["callback_data"]
    return int(data[2:]) if data.startswith("s:") else None


def layout(card: Message) -> tuple[Any, ...]:
    """What a card shows apart from its item: buttons, their data with numbers masked, and the
    card's text with the item masked (and without the header, which tells what happened to
    the task before)."""
    assert card.reply_markup is not None
    data = tuple(
        tuple(re.sub(r"\d+", "N", button["callback_data"]) for button in row)
        for row in card.reply_markup["inline_keyboard"]
    )
    body = card.shown.split("\n\n", 1)[-1] if "task:" in card.shown else card.shown
    return (tuple(map(tuple, card.buttons)), data, ITEM.sub("ITEM", body))


# -- telling gold apart, through the bot ------------------------------------------------------


async def test_gold_and_ordinary_tasks_look_and_behave_alike(harness: Harness) -> None:
    """Card text, buttons, callback data, the message (edited in place, never re-sent), the
    header after an answer, a skip or a report, and the tap's answer: none depends on whether
    the task, or the one before it, was gold."""
    await add_animals(harness, animals(regular=40, gold=10), reward=0.05)
    worker = await harness.join(11)
    card = await first_card(harness, worker)
    messages = len(worker.bot_messages)
    layouts: dict[bool, set[tuple[Any, ...]]] = {True: set(), False: set()}
    # (what was done, on gold or not) -> the card's first line after it, and the tap's answer
    after: dict[tuple[str, bool], set[tuple[str, str | None]]] = {}
    for _ in range(60):
        if ITEM.search(card.shown) is None:
            break
        gold = is_gold_text(card.shown)
        layouts[gold].add(layout(card))
        action = next((a for a in ("answer", "skip", "report") if (a, gold) not in after), "answer")
        notices = len(worker.notices)
        if action == "answer":
            await press(worker, card, OPTIONS[truth(card.shown)])
        elif action == "skip":
            await press(worker, card, SKIP)
        else:
            await press(worker, card, REPORT)
            await press(worker, card, PROBLEMS[Problem.UNCLEAR])
        await worker.wait_for(lambda u, n=notices: len(u.notices) > n)
        if ITEM.search(card.shown) is None:
            break  # nothing left: the header says so whatever came before
        headline = card.shown.split("\n")[0]
        headline = "ITEM" if ITEM.search(headline) else headline
        after.setdefault((action, gold), set()).add((headline, worker.notices[-1].text))
        if all((a, g) in after for a in ("answer", "skip", "report") for g in (True, False)):
            break
    assert len(worker.bot_messages) == messages  # one card, edited in place throughout
    assert layouts[True] and layouts[True] == layouts[False]
    for action in ("answer", "skip", "report"):
        assert after[(action, True)] == after[(action, False)], action


async def test_stats_do_not_tell_gold_apart(harness: Harness) -> None:
    """Two workers, each with one answer, one of them on gold: /stats reads the same."""
    await add_animals(harness, animals(regular=10, gold=5), reward=0.05, overlap=1)
    seen: dict[bool, str] = {}
    for worker_id in range(21, 41):
        worker = await harness.join(worker_id)
        card = await first_card(harness, worker)
        gold = is_gold_text(card.shown)
        if gold in seen:
            continue
        await press(worker, card, OPTIONS[truth(card.shown)])
        before = len(worker.bot_messages)
        worker.send("/stats")
        await worker.wait_for(lambda u, n=before: len(u.bot_messages) > n)
        # The hourly rate follows the worker's own time on the task, not its kind.
        seen[gold] = re.sub(r"\(.* per hour", "(RATE per hour", worker.bot_messages[-1].shown)
        if len(seen) == 2:
            break
    assert seen[True] == seen[False]


# -- forged and replayed taps -----------------------------------------------------------------


async def test_forged_and_stale_report_taps_write_nothing(harness: Harness) -> None:
    await add_animals(harness, animals(regular=20, gold=4))
    owner = await harness.join(51)
    owner_card = await first_card(harness, owner)
    attacker = await harness.join(52)
    card = await first_card(harness, attacker)
    mine = assignment(card)
    before = await snapshot(harness)
    # Someone else's task, reported: refused, nothing written, the owner's card untouched.
    for choice in (1, 2, 3):
        text = await forged(attacker, card, f"r:{assignment(owner_card)}:{choice}")
        assert text == "This task belongs to someone else."
    # A problem that does not exist, or data the pattern does not allow.
    for data in (f"r:{mine}:9", f"r:{mine}:4", f"r:{mine}:22", f"r:{mine}:-1", f"r:{mine}:"):
        assert await forged(attacker, card, data) == "This button is no longer valid."
    assert await snapshot(harness) == before
    assert owner_card.edits == 0

    # A report after the task was answered, and after it was skipped: refused.
    answered = assignment(card)
    await press(attacker, card, OPTIONS[truth(card.shown)])
    skipped = assignment(card)
    await press(attacker, card, SKIP)
    before = await snapshot(harness)
    assert await forged(attacker, card, f"r:{answered}:2") == "Already saved. Thanks!"
    assert await forged(attacker, card, f"r:{skipped}:2") == "You skipped this task."
    # The card already shows the task after the skipped one: its buttons stay.
    assert assignment(card) not in (None, answered, skipped)
    assert await snapshot(harness) == before

    # A report tapped twice before the bot reacts: one report, one task given back.
    card = await first_card(harness, attacker)
    reported = assignment(card)
    await press(attacker, card, REPORT)
    attacker.press(PROBLEMS[Problem.BROKEN], message_id=card.message_id, times=2)
    await attacker.wait_for(
        lambda u: len(u.notices) >= 2 and assignment(card) not in (None, reported)
    )
    assert await harness.query("SELECT COUNT(*) FROM reports WHERE worker_id = 52") == [(1,)]
    assert await harness.query("SELECT status FROM assignments WHERE id = ?", (reported,)) == [
        ("skipped",)
    ]

    # A stale card: /next sends another card for the same task and retires the old one; the
    # task is answered on the new card; a report from the old one (a client that still shows
    # its buttons) is then refused and writes nothing.
    old = await first_card(harness, attacker)
    stale = assignment(old)
    new = await first_card(harness, attacker)
    assert old is not new and assignment(new) == stale is not None
    await press(attacker, new, OPTIONS[truth(new.shown)])
    await harness.idle()
    assert old.buttons == []
    before = await snapshot(harness)
    assert await forged(attacker, old, f"r:{stale}:2") == "Already saved. Thanks!"
    assert await snapshot(harness) == before


# -- coordinator commands ---------------------------------------------------------------------


async def say(user: SandboxUser, text: str) -> str:
    """Sends a message and returns the bot's first reply to it."""
    before = len(user.bot_messages)
    user.send(text)
    await user.wait_for(lambda u: bool(replies(u, before)))
    return replies(user, before)[0].shown


async def test_review_commands_refuse_everyone_but_coordinators(office: Harness) -> None:
    await add_animals(office, animals(regular=5, gold=3))
    worker = await office.join(61)
    await first_card(office, worker)
    before = await snapshot(office)
    for command in ("/reports 1", "/gold 1 g0 cat", "/dropgold 1 g0", "/restore 1 g0"):
        assert await say(worker, command) == UNKNOWN, command
    assert await snapshot(office) == before


async def test_hostile_arguments_to_the_review_commands_change_nothing(office: Harness) -> None:
    await add_animals(office, animals(regular=5, gold=3))
    other = "id,text,gold\nh0,Other 0: a cat sits here,cat\nq0,Other 1: a dog sits here,\n"
    await add_animals(office, other, name="Second")
    foreign = (await office.query("SELECT id FROM items WHERE batch_id = 2 LIMIT 1"))[0][0]
    boss = office.user(BOSS)
    before = await snapshot(office)
    refused = {
        "/reports 99999999999999999999": "Usage: /reports N",
        "/reports \u0661": "Usage: /reports N",
        "/reports 0": "Usage: /reports N",
        "/reports 1;DROP TABLE items": "Usage: /reports N",
        "/reports 7": "There is no batch 7.",
        "/gold 7 g0 cat": "There is no batch 7.",
        "/gold 1 g0": "Usage: /gold N ITEM ANSWER",
        "/gold 1 % cat": "That batch has no item %.",
        "/gold 1 # cat": "That batch has no item #.",
        "/gold 1 #\u0661 cat": "That batch has no item #\u0661.",
        "/gold 1 #99999999999999999999999 cat": "That batch has no item #99999999999999999999999.",
        "/gold 1 ' OR 1=1 -- cat": "That batch has no item '.",
        "/gold 1 h0 cat": "That batch has no item h0.",  # another batch's id
        f"/gold 1 #{foreign} cat": f"That batch has no item #{foreign}.",
        f"/restore 1 #{foreign}": f"That batch has no item #{foreign}.",
        "/gold 1 g0 zebra": "Cannot do that: the answer must be one of: cat, dog, bird, fish.",
        "/gold 1 g0 cat, dog": "Cannot do that: the answer must be one of",
        "/gold 1 r0 cat": "Cannot do that: that item is not gold.",
        "/dropgold 1 r0": "Cannot do that: that item is not hidden gold.",
        "/restore 1 r0": "Cannot do that: that item is in circulation already.",
        "/restore 1 g0": "Cannot do that: that item is in circulation already.",
        "/dropgold 1 g0 g1": "Usage: /dropgold N ITEM",
    }
    for command, expected in refused.items():
        assert (await say(boss, command)).startswith(expected), command
    assert await snapshot(office) == before
    assert (await say(boss, "/dropgold 1 g0")).startswith("g0 is an ordinary item now")
    after = await snapshot(office)
    assert (await say(boss, "/dropgold 1 g0")) == "Cannot do that: that item is not hidden gold."
    assert (await say(boss, "/gold 1 g0 cat")) == "Cannot do that: that item is not gold."
    assert await snapshot(office) == after
    assert await office.query("SELECT gold_total FROM batches WHERE id = 1") == [(2,)]


async def test_gold_on_an_exam_item_changes_only_its_training_answer(office: Harness) -> None:
    """Exam items are shown openly in training: /dropgold refuses them; /gold corrects their
    training answer and touches no worker's record."""
    await add_animals(office, animals(regular=5, gold=4), exam_size=2)
    boss = office.user(BOSS)
    exam = (await office.query("SELECT external_id FROM items WHERE exam = 1 ORDER BY id"))[0][0]
    assert (await say(boss, f"/dropgold 1 {exam}")) == (
        "Cannot do that: that item is not hidden gold."
    )
    before = await snapshot(office)
    assert (await say(boss, f"/gold 1 {exam} dog")).startswith(f"Gold answer of {exam} corrected")
    after = await snapshot(office)
    assert {t for t in TABLES if before[t] != after[t]} == {"items"}
    assert await office.query("SELECT gold FROM items WHERE external_id = ?", (exam,)) == [("dog",)]


# -- Telegram faults on notices ---------------------------------------------------------------


async def quiet(harness: Harness) -> None:
    """Waits until the announcement of the batch has gone out to everyone."""
    async with asyncio.timeout(10):
        while await harness.query(  # noqa: ASYNC110 - the state lives in the database
            "SELECT 1 FROM broadcasts WHERE finished_at IS NULL"
        ):
            await asyncio.sleep(0.05)


async def queue_notice(harness: Harness, worker_id: int) -> None:
    await write(
        harness,
        "INSERT INTO notices (worker_id, batch_id, kind, created_at)"
        " VALUES (?, 1, 'reinstated', 1)",
        (worker_id,),
    )


def good_news(worker: SandboxUser) -> int:
    return sum(GOOD_NEWS in message.shown for message in worker.bot_messages)


async def notices_settled(harness: Harness) -> None:
    async with asyncio.timeout(10):
        while await harness.query(  # noqa: ASYNC110 - the state lives in the database
            "SELECT 1 FROM notices WHERE status IN ('queued', 'sending')"
        ):
            await asyncio.sleep(0.05)


async def test_a_notice_to_a_worker_who_blocked_the_bot_is_tried_once(harness: Harness) -> None:
    await add_animals(harness, animals(regular=5, gold=3))
    worker = await harness.join(71)
    await quiet(harness)
    worker.block()
    sends = harness.sandbox.calls_by_chat[("send_message", 71)]
    await queue_notice(harness, 71)
    await notices_settled(harness)
    assert await harness.query("SELECT status FROM notices") == [("failed",)]
    worker.block(False)
    await asyncio.sleep(1.2)  # two more rounds of the notifier
    assert good_news(worker) == 0
    assert harness.sandbox.calls_by_chat[("send_message", 71)] == sends + 1
    # Like a broadcast's 403, it marks the worker unreachable: nothing more is sent to them.
    assert await harness.query("SELECT reachable FROM workers WHERE id = 71") == [(0,)]


async def test_a_notice_whose_response_is_lost_is_not_sent_twice(harness: Harness) -> None:
    await add_animals(harness, animals(regular=5, gold=3))
    worker = await harness.join(72)
    sandbox = harness.sandbox
    real = sandbox.call
    lost: list[int] = []

    async def lose_response(method: str, params: Params) -> Any:
        result = await real(method, params)
        if method.lower() == "sendmessage" and params.int("chat_id") == 72 and not lost:
            lost.append(1)
            raise Disconnect  # delivered, but the answer never reaches the bot
        return result

    sandbox.call = lose_response  # type: ignore[method-assign]
    await queue_notice(harness, 72)
    await notices_settled(harness)
    await asyncio.sleep(0.3)
    assert lost and good_news(worker) == 1


async def test_notices_not_yet_sent_when_the_bot_stops_are_sent_after_a_restart(
    harness: Harness,
) -> None:
    await add_animals(harness, animals(regular=5, gold=3))
    workers = [await harness.join(worker_id) for worker_id in (73, 74, 75)]
    await quiet(harness)
    # Telegram asks the bot to wait before the first notice: the stop comes meanwhile.
    harness.sandbox.inject(429, method="send_message", chat_id=73, retry_after=5)
    sends = harness.sandbox.calls_by_chat[("send_message", 74)]
    for worker in workers:
        await queue_notice(harness, worker.user_id)
    await settle(lambda: harness.sandbox.calls_by_chat[("send_message", 73)] >= 1)
    await harness.stop_bot()
    assert harness.sandbox.calls_by_chat[("send_message", 74)] == sends  # never attempted
    await harness.start_bot()
    # The restarted notifier tells the two never attempted (once Telegram's wait is over).
    for worker in workers[1:]:
        await worker.wait_for(lambda u: good_news(u) == 1, 10)
    await notices_settled(harness)
    statuses = dict(await harness.query("SELECT worker_id, status FROM notices"))
    assert (statuses[74], statuses[75]) == ("sent", "sent")
    # In flight at the stop: sent, or counted unconfirmed and never sent again.
    assert statuses[73] in ("sent", "unknown") and good_news(workers[0]) <= 1
