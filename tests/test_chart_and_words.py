"""What a coordinator reads in the status chart, and the words workers and coordinators meet:
amounts with their currency, plurals, the welcome, times said as UTC."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from labeling.charts import BatchChart, draw
from tests.harness import BOSS, Harness, say
from tests.test_coordinator_flow import CAPTION, REVIEWS, upload
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
    text = await say(boss, f"/status {batch}", "answers: 72/72 counted")
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
