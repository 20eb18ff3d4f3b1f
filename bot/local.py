"""labelbot running against the sandbox on loopback: for the demo, the tests and benchmarks."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from bot.app import Webhook, build_application, serving
from bot.sandbox import Sandbox, SandboxServer, SandboxUser
from bot.settings import Settings, load_settings
from handlers.context import LabelApplication, Services
from storage import open_engine

SANDBOX_TOKEN = "123456789:SANDBOXtokenSANDBOXtokenSANDBOX_x"


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
        if self._running is not None:
            self.sandbox.release_polls()  # end the long poll now rather than at its timeout
            await self._running.__aexit__(None, None, None)
            self._running = None
            self.app = None

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

    async def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Reads the database through a connection of its own, as an operator would."""
        url = self.overrides.get("database_url")
        db = open_engine(self.database, url)
        await db.open()
        try:
            return [tuple(row) for row in await db.read(sql, params)]
        finally:
            await db.close()
