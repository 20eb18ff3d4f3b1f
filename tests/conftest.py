from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.db import Database
from tests.harness import BOSS, Harness


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database for tests that drive the stores directly."""
    async with Database(tmp_path / "labelbot.db") as database:
        await database.migrate()
        yield database


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with Harness(tmp_path / "labelbot.db") as running:
        yield running


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Harness]:
    """The bot with one coordinator, BOSS."""
    async with Harness(tmp_path / "office.db", coordinator_ids=str(BOSS)) as running:
        yield running
