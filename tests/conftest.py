from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web

from storage.db import Database
from storage.engine import Engine
from tests.harness import BOSS, Harness

# Every end-to-end test runs on both engines.
ENGINES = ["sqlite", "postgresql"]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database for tests that drive the stores directly."""
    async with Database(tmp_path / "labelbot.db") as database:
        await database.migrate()
        yield database


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    """A migrated database on each engine: storage that passes on both needs no copy of a
    rule. PostgreSQL gets a schema of its own (tests/pg.py says when it is skipped)."""
    if request.param == "sqlite":
        async with Database(tmp_path / "labelbot.db") as database:
            await database.migrate()
            yield database
        return
    from storage.postgres import PostgresDatabase
    from tests.pg import schema_url

    with schema_url() as url:
        async with PostgresDatabase(url) as database:
            await database.migrate()
            yield database


@contextmanager
def database_url(engine: str) -> Iterator[dict[str, str]]:
    """The settings that put a bot on `engine`: none for SQLite, a PostgreSQL schema of its
    own otherwise (tests/pg.py says when that is skipped)."""
    if engine == "sqlite":
        yield {}
        return
    from tests.pg import schema_url

    with schema_url() as url:
        yield {"database_url": url}


@pytest.fixture(params=ENGINES)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """The bot on each engine, driven through the sandbox as its users would."""
    with database_url(request.param) as settings:
        async with Harness(tmp_path / "labelbot.db", **settings) as running:
            yield running


@pytest.fixture(params=ENGINES)
async def office(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """The bot with one coordinator, BOSS, on each engine."""
    with database_url(request.param) as settings:
        async with Harness(
            tmp_path / "office.db", coordinator_ids=str(BOSS), **settings
        ) as running:
            yield running


# A JPEG's first bytes are enough: the sandbox, like Telegram, judges by the content type.
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


@pytest.fixture
async def images() -> AsyncIterator[str]:
    """A local web server for image URLs (the sandbox fetches them as Telegram would):
    /<name>.jpg is an image, /page.html a web page, anything else 404. Yields its base URL."""

    async def serve(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name.endswith(".jpg"):
            return web.Response(body=JPEG, content_type="image/jpeg")
        if name.endswith(".html"):
            return web.Response(text="<html>not an image</html>", content_type="text/html")
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
