from __future__ import annotations

from tests.harness import Harness


async def test_worker_labels_one_item(harness: Harness) -> None:
    await harness.add_batch("text\nGreat phone\n", options="yes,no", overlap=1)
    worker = harness.user(1001, "Ann")
    worker.send("/start")
    await worker.wait_for(lambda u: u.last is not None and "Welcome" in u.last.shown)
    worker.send("/next")
    await worker.wait_for(lambda u: u.last is not None and "Great phone" in u.last.shown)
    worker.press("yes")
    await worker.wait_for(lambda u: "Nothing left" in u.last.shown)
    rows = await harness.query("SELECT worker_id, value FROM answers")
    assert rows == [(1001, "yes")]
