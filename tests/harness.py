"""A running labelbot on the sandbox, for end-to-end tests, the demo and benchmarks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.app import build_application, polling
from bot.sandbox import Sandbox, SandboxServer, SandboxUser
from bot.settings import Settings, load_settings
from handlers.context import LabelApplication, Services
from labeling.batch import BatchSettings
from storage.db import Database

TOKEN = "123456789:SANDBOXtokenSANDBOXtokenSANDBOX_x"


class Harness:
    """The sandbox, the real PTB application polling it over HTTP, and the database file."""

    def __init__(self, database: Path, **settings: Any) -> None:
        self.database = database
        self.sandbox = Sandbox(TOKEN)
        self.server = SandboxServer(self.sandbox)
        self.overrides = settings
        self.app: LabelApplication | None = None

    @property
    def settings(self) -> Settings:
        return load_settings(
            telegram_bot_token=TOKEN,
            telegram_base_url=self.server.base_url,
            telegram_base_file_url=self.server.base_file_url,
            database_path=self.database,
            **self.overrides,
        )

    async def start_bot(self) -> LabelApplication:
        self.app = build_application(self.settings, notify_every=0.2)
        self._running = polling(self.app, timeout=1)
        await self._running.__aenter__()
        return self.app

    async def stop_bot(self) -> None:
        if self.app is not None:
            await self._running.__aexit__(None, None, None)
            self.app = None

    async def __aenter__(self) -> Harness:
        await self.server.start()
        await self.start_bot()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_bot()
        await self.server.stop()

    @property
    def services(self) -> Services:
        assert self.app is not None
        return self.app.bot_data.services

    def user(self, user_id: int, name: str | None = None) -> SandboxUser:
        return self.sandbox.user(user_id, name)

    async def add_batch(self, content: str | bytes, filename: str = "batch.csv",
                        publish: bool = True, **settings: Any) -> int:
        settings.setdefault("name", "Reviews")
        settings.setdefault("question", "Is this review positive?")
        raw = content.encode() if isinstance(content, str) else content
        imported = await self.services.batches.import_file(raw, filename, BatchSettings(**settings))
        if publish:
            await self.services.batches.publish(imported.batch_id)
        return imported.batch_id

    async def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Reads the database through a second connection, as an operator would."""
        async with Database(self.database) as db:
            return [tuple(row) for row in await db.fetchall(sql, params)]


async def settle(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Waits until a condition on shared state holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition did not hold in time")
        await asyncio.sleep(0.01)
