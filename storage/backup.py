"""Copies the live database with SQLite's online backup API, while the bot keeps writing."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def backup(source: Path, target: Path, *, pages: int = 2048) -> int:
    """Writes a consistent copy of `source` to `target` and returns its size in bytes.

    The copy goes in steps of `pages`, so the bot's writes are held up only briefly; if the
    bot writes meanwhile, SQLite restarts the copy from a consistent state. The copy is
    written beside the target and renamed into place, so a half-written backup never
    replaces a good one.
    """
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such database")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as live:
        copy = sqlite3.connect(partial)
        try:
            live.backup(copy, pages=pages)
            check = copy.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"the copy failed its integrity check: {check}")
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            copy.close()
    os.replace(partial, target)
    return target.stat().st_size
