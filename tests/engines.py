"""For the storage tests that run on both engines: an open batch stored through the engine, and
another process's connection to the same database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from labeling.batch import BatchSettings
from labeling.batchfile import parse_batch_file
from labeling.gold import new_rank, new_seed
from storage.db import Database
from storage.engine import Engine, Tx


@asynccontextmanager
async def replica(engine: Engine) -> AsyncIterator[Engine]:
    """The same database as another process (another replica of the bot) opens it."""
    if isinstance(engine, Database):
        async with Database(engine.path) as other:
            yield other
        return
    from storage.postgres import PostgresDatabase

    assert isinstance(engine, PostgresDatabase)
    async with PostgresDatabase(engine.url) as another:
        yield another


async def stored_batch(engine: Engine, content: bytes, settings: BatchSettings) -> int:
    """Parses a CSV batch file and stores it as the batch store leaves an imported and
    published batch; returns its id. Gold items stay out of the pool, and the first
    `training_gold` of them are training questions."""
    items = parse_batch_file(content, "b.csv", settings)
    gold = [position for position, item in enumerate(items, start=1) if item.gold is not None]
    exam = set(gold[: settings.training_gold])

    def change(tx: Tx) -> int:
        batch_id = tx.insert(
            "INSERT INTO batches (name, question, options, overlap, gold_ratio, reward,"
            " instructions, created_at, settings, gold_items, gold_total, gold_seed, status,"
            " published_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, 'open', 0)",
            (
                settings.name,
                settings.question,
                None if settings.options is None else json.dumps(settings.options),
                settings.overlap,
                settings.gold_ratio,
                settings.reward,
                settings.instructions,
                settings.model_dump_json(),
                len(gold) - len(exam),
                len(gold) - len(exam),
                new_seed(),
            ),
        )
        for position, item in enumerate(items, start=1):
            tx.execute(
                "INSERT INTO items (batch_id, position, external_id, text, image, gold,"
                " metadata, exam, target, wanted, gold_rank)"
                " VALUES (?, ?, ?, ?, ?, ?, '{}', ?, ?, ?, ?)",
                (
                    batch_id,
                    position,
                    item.external_id,
                    item.text,
                    item.image,
                    item.gold,
                    int(position in exam),
                    settings.overlap,
                    0 if item.gold is not None else settings.overlap,
                    None if item.gold is None else new_rank(),
                ),
            )
        return batch_id

    return await engine.run(change)
