"""Persistence: SQLite (one file, the default) or PostgreSQL (several replicas), numbered
migrations per engine, and the repositories over them."""

from __future__ import annotations

from pathlib import Path

from storage.db import Database
from storage.engine import Engine


def open_engine(path: Path, url: str | None = None, *, synchronous: str = "NORMAL") -> Engine:
    """The configured engine, not yet open: PostgreSQL at `url` when one is given, else the
    SQLite file at `path`."""
    if url:
        from storage.postgres import PostgresDatabase

        return PostgresDatabase(url)
    return Database(path, synchronous=synchronous)
