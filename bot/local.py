"""labelbot running against the sandbox on loopback: for the demo, the tests and benchmarks."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from bot.app import Webhook, build_application, serving
from bot.sandbox import Sandbox, SandboxServer, SandboxUser
from bot.settings import Settings, load_settings
from handlers.context import LabelApplication, Services
from storage import open_engine
from storage.engine import Engine

SANDBOX_TOKEN = "123456789:SANDBOXtokenSANDBOXtokenSANDBOX_x"
# A stop takes a few seconds at most (bot.notifier.STOP_GRACE, bot.app.BACKGROUND_STOP_SECONDS).
STOP_SECONDS = 15


class LocalBot:
    """The sandbox, its HTTP server, and the real PTB application polling it."""

    def __init__(self, database: Path, *, token: str = SANDBOX_TOKEN, **settings: Any) -> None:
        self.database = database
        self.token = token
        self.sandbox = Sandbox(token)
        self.server = SandboxServer(self.sandbox)
        self.overrides = settings
        self.app: LabelApplication | None = None
        self._running: AbstractAsyncContextManager[LabelApplication] | None = None

    @property
    def settings(self) -> Settings:
        return load_settings(
            telegram_bot_token=self.token,
            telegram_base_url=self.server.base_url,
            telegram_base_file_url=self.server.base_file_url,
            database_path=self.database,
            **self.overrides,
        )

    async def start_bot(
        self,
        *,
        notify_every: float = 0.5,
        upkeep_every: float = 1.0,
        webhook: Webhook | None = None,
    ) -> LabelApplication:
        self.app = build_application(
            self.settings, notify_every=notify_every, upkeep_every=upkeep_every
        )
        self._running = serving(self.app, timeout=1, webhook=webhook)
        await self._running.__aenter__()
        return self.app

    async def stop_bot(self) -> None:
        if self._running is None:
            return
        running, self._running, self.app = self._running, None, None
        self.sandbox.release_polls()  # end the long poll now rather than at its timeout
        stopping = asyncio.ensure_future(running.__aexit__(None, None, None))
        # A stop that hangs is a bug (each wait in it is bounded; see bot.app.stop_background)
        # and must not hang the tests or the demo: it fails, saying what it waits for. Not
        # cancelled: a stop that hangs may be one that ignores cancellation, and waiting for
        # its cancellation would hang here too (as asyncio.wait_for did).
        done, _ = await asyncio.wait([stopping], timeout=STOP_SECONDS)
        if not done:
            where = io.StringIO()
            stopping.print_stack(file=where)
            raise RuntimeError(f"the bot did not stop within {STOP_SECONDS} s:\n{where.getvalue()}")
        stopping.result()

    async def __aenter__(self) -> LocalBot:
        await self.server.start()
        await self.start_bot()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_bot()
        await self.server.stop()

    @property
    def services(self) -> Services:
        assert self.app is not None, "the bot is not running"
        return self.app.bot_data.services

    def user(self, user_id: int, name: str | None = None) -> SandboxUser:
        return self.sandbox.user(user_id, name)

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[Engine]:
        """The bot's database, opened beside the running bot as an operator would."""
        db = open_engine(self.database, self.overrides.get("database_url"))
        await db.open()
        try:
            yield db
        finally:
            await db.close()

    async def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Reads the database through a connection of its own, as an operator would."""
        async with self.opened() as db:
            return [tuple(row) for row in await db.read(sql, params)]

    async def columns(self, table: str) -> list[str]:
        """The names of a table's columns, in order (the table must hold a row)."""
        async with self.opened() as db:
            return (await db.read(f"SELECT * FROM {table} LIMIT 1"))[0].keys()
