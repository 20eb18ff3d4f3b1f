"""Two replicas of the bot on one PostgreSQL database behind one webhook, Telegram (the
sandbox) spreading its posts over them and posting some twice; one replica is killed with
SIGKILL mid-run. Nothing a worker was told is saved may be lost, nothing counted twice."""

from __future__ import annotations

from bench.load import run_load
from tests.pg import schema_url


async def test_two_replicas_one_killed_lose_nothing_and_count_nothing_twice() -> None:
    with schema_url() as url:
        report = await run_load(
            workers=20, seconds=8.0, kill_at=3.0, replicas=2, database_url=url, duplicates=0.1
        )
    assert report.kills == 1 and report.faults > 0
    assert len(report.confirmed) > 50, "the surviving replica carried on"
    assert report.lost == 0
    assert report.doubled == dict.fromkeys(report.doubled, 0), report.doubled
    assert report.stored >= len(report.confirmed)
