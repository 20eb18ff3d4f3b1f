"""Coordinator reports on big batches: agreement from per-item counts, reads that never wait for
the workers' writes, and exports too large for one Telegram upload."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import threading
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers import files as sending
from labeling import batches
from labeling.aggregation import AnswerSet, alpha_of_votes, krippendorff_alpha
from labeling.batches import AGREEMENT_LAG, BatchService
from labeling.models import BatchStatus, BatchSummary
from storage.engine import Engine, Tx
from tests.harness import BOSS, Harness, say

answers = st.lists(
    st.tuples(
        st.integers(1, 6), st.integers(1, 5), st.sampled_from(["yes", "no", "Yes ", "maybe"])
    ),
    max_size=40,
    unique_by=lambda a: (a[0], a[1]),
)


@given(answers, st.booleans())
def test_agreement_from_counts_equals_agreement_from_answers(
    rows: list[tuple[int, int, str]], free_text: bool
) -> None:
    options = None if free_text else ("yes", "no", "maybe")
    votes = Counter((item, value) for item, _, value in rows)
    counted = [(item, value, n) for (item, value), n in votes.items()]
    expected = krippendorff_alpha(AnswerSet.build(rows, options))
    got = alpha_of_votes(counted, options)
    assert got == pytest.approx(expected, nan_ok=True)


async def test_a_report_reads_while_a_writer_holds_the_database(engine: Engine) -> None:
    await engine.run(lambda tx: tx.execute("CREATE TABLE t (x INTEGER)"))
    holding, release = threading.Event(), threading.Event()

    def writer(tx: Tx) -> None:  # runs in the engine's thread, which it holds meanwhile
        tx.execute("INSERT INTO t VALUES (1)")
        holding.set()
        release.wait(timeout=30)

    task = asyncio.create_task(engine.run(writer))
    assert await asyncio.to_thread(holding.wait, 30)
    # What is committed, at once: the write in progress is neither waited for nor seen.
    rows = await asyncio.wait_for(engine.read("SELECT COUNT(*) AS n FROM t"), timeout=5)
    release.set()
    await task
    assert rows[0]["n"] == 0
    assert (await engine.read("SELECT COUNT(*) AS n FROM t"))[0]["n"] == 1


async def test_an_export_too_large_for_one_upload_comes_in_parts_that_join(
    office: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sending, "MAX_PLAIN", 200)
    monkeypatch.setattr(sending, "MAX_UPLOAD", 700)
    items = "id,text\n" + "".join(f"i{n},item {n}\n" for n in range(400))
    batch = await office.add_batch(items, options="yes,no", overlap=1, gold_ratio=0)
    boss = office.user(BOSS)
    note = await say(boss, f"/export {batch} labels", "parts")
    count = int(note.split("Too large for one file: ")[1].split(" parts")[0])
    assert count >= 2
    assert f"cat batch-{batch}-labels.csv.gz.part* > batch-{batch}-labels.csv.gz" in note
    await boss.wait_for(lambda u: len([m for m in u.bot_messages if m.document]) == count)
    parts = [m.document for m in boss.bot_messages if m.document]
    names = [part.name for part in parts]
    assert (
        names
        == sorted(names)
        == [f"batch-{batch}-labels.csv.gz.part{n:02d}" for n in range(1, count + 1)]
    )
    assert all(len(part.content) <= 700 for part in parts)
    joined = b"".join(part.content for part in parts)
    expected = io.StringIO()
    await office.services.batches.export(batch, "labels", "csv", expected)
    assert gzip.decompress(joined).decode() == expected.getvalue()
    assert len(list(csv.DictReader(io.StringIO(expected.getvalue())))) == 400


class Votes:
    """Stands in for storage: a batch whose answers a test changes, counting its reads."""

    def __init__(self) -> None:
        self.given = [(1, "yes", 2), (2, "no", 2)]
        self.reads = 0

    def summary(self) -> BatchSummary:
        answers = sum(n for _, _, n in self.given)
        return BatchSummary(
            1, "b", BatchStatus.OPEN, "q?", ("yes", "no"), 2, 0.0, 2, 0, 0, answers, answers,
            4, 2, 0, 0.0,
        )  # fmt: skip

    async def summaries(self, batch_id: int | None = None, **_: object) -> list[BatchSummary]:
        return [self.summary()]

    async def votes(self, batch_id: int) -> list[tuple[int, str, int]]:
        self.reads += 1
        return list(self.given)


async def test_a_big_batchs_agreement_lags_at_most_a_minute_and_refreshes_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batches, "AGREEMENT_AT_ONCE", 3)  # as if the batch were big
    store, now = Votes(), [0.0]
    service = BatchService(store, clock=lambda: now[0])  # type: ignore[arg-type]
    assert await service.agreement(store.summary()) == 1.0
    store.given = [(1, "yes", 2), (1, "no", 1), (2, "no", 2)]  # a disagreement comes in
    now[0] = AGREEMENT_LAG / 2
    assert await service.agreement(store.summary()) == 1.0  # within the lag: no reading
    assert store.reads == 1
    now[0] = AGREEMENT_LAG
    assert await service.agreement(store.summary()) == 1.0  # the last figure, at once...
    await asyncio.sleep(0.1)
    assert store.reads == 2  # ...while the new one is computed behind it
    fresh = alpha_of_votes(store.given, ("yes", "no"))
    assert await service.agreement(store.summary()) == pytest.approx(fresh)
    await service.warm_agreement()  # nothing changed since: nothing read
    assert store.reads == 2
