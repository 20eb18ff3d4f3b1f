"""End-to-end helpers: a LocalBot with shortcuts for tests."""

from __future__ import annotations

from typing import Any

from bot.local import LocalBot
from labeling.batch import BatchSettings
from storage.db import Database


class Harness(LocalBot):
    async def add_batch(
        self,
        content: str | bytes,
        filename: str = "batch.csv",
        *,
        publish: bool = True,
        **settings: Any,
    ) -> int:
        settings.setdefault("name", "Reviews")
        settings.setdefault("question", "Is this review positive?")
        raw = content.encode() if isinstance(content, str) else content
        batches = self.services.batches
        imported = await batches.import_file(raw, filename, BatchSettings(**settings))
        if publish:
            await batches.publish(imported.batch_id)
        return imported.batch_id

    async def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Reads the database through a second connection, as an operator would."""
        async with Database(self.database) as db:
            return [tuple(row) for row in await db.fetchall(sql, params)]
