"""What a coordinator reads in the status chart, and the words workers and coordinators meet:
amounts with their currency, plurals, the welcome, times said as UTC."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings
from handlers.cards import NOTHING_LEFT
from labeling.charts import BatchChart, draw
from labeling.words import money, plural
from tests.harness import BOSS, Harness, first_card, press, say
from tests.test_coordinator_flow import CAPTION, REVIEWS, upload
from tests.test_fixes import REFUSED
from tests.test_quality_flow import OPTIONS, animal_batch, item_of, work, wrong

ROOT = Path(__file__).resolve().parent.parent


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_starting_the_bot_does_not_import_matplotlib() -> None:
    """matplotlib costs a second and tens of MB: only a chart may bring it in."""
    code = (
        "import sys, bot.cli, bot.app, bot.local, handlers.coordinator, labeling.batches;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


async def test_the_chart_counts_what_the_status_counts(office: Harness) -> None:
    """A careless worker's answers are stored but not counted: the chart's line ends where
    the status's count does (it used to count them: 74 of 72), and its threshold is the
    batch's own min_accuracy."""
    content, truth = animal_batch(regular=24, gold=8)
    batch = await office.add_batch(
        content,
        options=",".join(OPTIONS),
        overlap=3,
        gold_ratio=0.2,
        question="Which animal?",
        min_accuracy=0.7,
    )
    tapper = await office.join(9)
    await office.first_task(tapper)
    await work(tapper, lambda text: wrong(text, truth))
    for uid in (1, 2, 3):
        worker = await office.join(uid)
        await office.first_task(worker)
        await work(worker, lambda text: truth[item_of(text, truth)])

    batches = office.services.batches
    summary = (await batches.status(batch))[0]
    assert summary.suspended == 1 and summary.answers_counted == summary.answers_needed == 72
    chart = await batches.chart_data(summary)
    assert chart is not None
    assert chart.progress[-1][1] == summary.answers_counted == chart.counted
    assert chart.needed == 72 and chart.stored == summary.answers > 72
    assert chart.threshold == 0.7
    assert sorted(suspended for _, suspended in chart.accuracies) == [False, False, False, True]

    boss = office.user(BOSS)
    text = await say(boss, f"/status {batch}", "answers: 72 counted")
    assert "100% of the 72 needed" in text
    assert "No chart" not in text
    await boss.wait_for(lambda u: u.last is not None and u.last.photo is not None)
    photo = boss.last
    assert photo is not None and photo.photo is not None
    assert png_size(photo.photo.content) == (1080, 1280)
    assert "answers counted over time" in photo.shown and "UTC" in photo.shown


async def test_a_batch_without_answers_gets_no_chart(office: Harness) -> None:
    boss = office.user(BOSS)
    await upload(boss, "reviews.csv", REVIEWS.encode(), CAPTION, "Batch 1")
    before = len(boss.bot_messages)
    text = await say(boss, "/status 1", "batch 1 'reviews' [draft]")
    assert text.endswith("No chart: nothing has been answered yet.")
    # The /batches reply comes after: no photo was sent between the two.
    await say(boss, "/batches", "#1 reviews")
    assert all(m.photo is None for m in boss.bot_messages[before:])


@pytest.mark.parametrize(
    ("progress", "accuracies", "threshold"),
    [
        ([(1_714_744_800.0, 0), (1_714_744_801.0, 1)], [], 0.6),  # one answer, no gold yet
        ([(1_714_744_800.0, 0)], [(1.0, False)], 0.0),  # gold only; the rule is off
        (
            [(1_714_744_800.0 + 3600 * k, 400 * k) for k in range(50)],  # two days
            [(k / 40, k < 10) for k in range(41)],
            0.85,
        ),
    ],
)
def test_any_batch_with_answers_draws_a_phone_sized_chart(
    progress: list[tuple[float, int]], accuracies: list[tuple[float, bool]], threshold: float
) -> None:
    counted = progress[-1][1]
    chart = BatchChart(1, "A" * 80, progress, counted, 20_000, counted + 5, accuracies, threshold)
    assert png_size(draw(chart)) == (1080, 1280)


# -- item 7: words ----------------------------------------------------------------------------


def test_amounts_carry_their_currency_and_counts_their_plural() -> None:
    amounts = [money(12, "EUR"), money(0.05, "USD"), money(0.005, "USD"), money(0.015, "USD")]
    assert amounts == ["12.00 EUR", "0.05 USD", "0.005 USD", "0.015 USD"]
    # An hourly rate worked out from a median time (the demo's status showed 133.086876 USD).
    assert money(133.086876, "USD") == "133.09 USD"
    assert [plural(1, "worker"), plural(2, "worker"), plural(0, "worker")] == [
        "1 worker",
        "2 workers",
        "0 workers",
    ]
    assert plural(1200, "child", "children") == "1200 children"


@pytest.mark.parametrize("bad", ["usd", "EURO", "12€", "", "U S"])
def test_a_currency_that_is_not_a_code_is_refused_in_one_line(bad: str) -> None:
    with pytest.raises(SettingsError, match="CURRENCY: must be a three-letter currency code"):
        load_settings(currency=bad)
    assert load_settings().currency == "USD"


async def test_every_amount_is_said_with_the_currency(tmp_path: Path) -> None:
    async with Harness(tmp_path / "eur.db", coordinator_ids=str(BOSS), currency="EUR") as office:
        boss = office.user(BOSS)
        uploaded = await upload(boss, "reviews.csv", REVIEWS.encode(), CAPTION, "Batch 1")
        assert "reward 0.05 EUR per task; expected pay 12.00 EUR per hour" in uploaded
        assert "below the minimum of 15.00 EUR per hour" in uploaded
        worker = await office.join(21, "Ann")
        await say(boss, "/publish 1", "is open")
        await worker.wait_for(lambda u: any("New batch" in m.shown for m in u.bot_messages))
        news = next(m.shown for m in worker.bot_messages if "New batch" in m.shown)
        assert news == "New batch: reviews. 1 choice task is waiting. Reward: 0.05 EUR per task."
        card = await first_card(office, worker)
        await press(worker, card, "yes")
        assert "Earned: 0.05 EUR" in await say(worker, "/stats", "Earned")
        status = await say(boss, "/status 1", "pay:")
        assert "pay: 0.05 EUR per task, 12.00 EUR per hour" in status
        assert "21 Ann: 1 answer, no gold, earned 0.05 EUR" in await say(boss, "/workers", "Ann")
        before = len(boss.bot_messages)
        boss.send("/export 1 workers")
        await boss.wait_for(lambda u: any(m.document for m in u.bot_messages[before:]))
        export = next(m for m in boss.bot_messages[before:] if m.document)
        assert export.shown == "1 worker, owed 0.05 EUR in all"


async def test_plurals_and_states_read_as_sentences(office: Harness) -> None:
    boss = office.user(BOSS)
    await upload(boss, "reviews.csv", REVIEWS.encode(), CAPTION, "Batch 1")
    assert await say(boss, "/pause 1", "Cannot") == (
        "Cannot do that: batch 1 is a draft, and only an open batch can be paused."
    )
    await say(boss, "/publish 1", "is open")
    assert await say(boss, "/resume 1", "Cannot") == "Cannot do that: batch 1 is open already."
    assert await say(boss, "/publish 1", "Cannot") == (
        "Cannot do that: batch 1 is open, and only a draft can be published."
    )
    worker = await office.join(22)
    await press(worker, await first_card(office, worker), "yes")
    assert await say(boss, "/batches", "#1") == "#1 reviews [open]: 100% of 1 item, 1 worker"


async def test_the_welcome_is_short_and_its_button_is_the_first_task(office: Harness) -> None:
    await office.add_batch("text\nGreat phone\n", options="yes,no", overlap=1)
    worker = office.user(23, "Ann")
    welcome = await say(worker, "/start", "Welcome")
    assert len(welcome.split()) < 40
    assert "/next - " not in welcome and "/stats" not in welcome  # not the /help text again
    message = worker.last
    assert message is not None and message.buttons == [["Show my first task ▶"]]
    await press(worker, message, "Show my first task ▶")
    assert "Great phone" in message.shown and message.buttons[0] == ["yes", "no"]


async def test_saved_is_not_followed_by_next_task_when_nothing_is_left(
    office: Harness, images: str
) -> None:
    """The next task's picture is refused, so the tap that saved the answer has nothing to
    show: the card said "✓ Saved. Next task:" and then "Nothing left to label"."""
    worker = await office.join(24)
    content = f"image,text\n{images}/a.jpg,first\n{images}/b.jpg,second\n"
    await office.add_batch(content, options="duck,no duck", overlap=1)
    card = await first_card(office, worker)
    office.sandbox.inject(400, method="edit_message_media", description=REFUSED)
    office.sandbox.inject(400, method="send_photo", description=REFUSED)
    worker.press("duck", message_id=card.message_id)
    await worker.wait_for(lambda u: NOTHING_LEFT in u.last.shown)
    assert worker.last.shown == f"✓ Saved.\n\n{NOTHING_LEFT}"


async def test_coordinators_are_workers_only_once_they_label(office: Harness) -> None:
    """A coordinator writes to the bot, so is in the workers' table: not counted, listed or
    told as a worker until they label."""
    boss = await office.join(BOSS)
    helper = await office.join(31)  # promoted below: a coordinator from the database
    worker = await office.join(32, "Mia")
    await say(boss, "/promote 31", "is now a coordinator")
    await upload(boss, "one.csv", b"text\nGreat phone\nBad\n", CAPTION, "Batch 1")
    await say(boss, "/publish 1", "is open")
    await boss.wait_for(lambda u: any("Batch 1 announced" in m.shown for m in u.bot_messages))
    final = next(m.shown for m in boss.bot_messages if "Batch 1 announced" in m.shown)
    assert final.startswith("Batch 1 announced: 1 of 1 worker told")
    assert not any("New batch" in m.shown for m in [*boss.bot_messages, *helper.bot_messages])
    assert "Mia" in (listed := await say(boss, "/workers", "Mia"))
    assert f"{BOSS} " not in listed and "31 " not in listed
    # The boss labels a task: from now on a worker too.
    await press(boss, await first_card(office, boss), "yes")
    assert f"{BOSS} " in await say(boss, "/workers", "Mia")
    await upload(boss, "two.csv", b"text\nFine\n", CAPTION, "Batch 2")
    await say(boss, "/publish 2", "is open")
    await boss.wait_for(lambda u: any("New batch: two" in m.shown for m in u.bot_messages))
    assert not any("New batch: two" in m.shown for m in helper.bot_messages)
    await worker.wait_for(lambda u: any("New batch: two" in m.shown for m in u.bot_messages))
