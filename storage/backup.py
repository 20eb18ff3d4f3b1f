"""Copies the live SQLite database in one consistent read, while the bot keeps writing.
PostgreSQL has its own tool for that, pg_dump, which `labelbot backup` points to."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path


def backup(source: Path, target: Path) -> int:
    """Writes a consistent copy of `source` to `target` and returns its size in bytes.

    `VACUUM INTO` reads the database in one read transaction: in WAL mode the bot's writes go
    on meanwhile and the copy is the database as it was when the backup began. (SQLite's
    stepped backup restarts from the first page whenever another connection writes between
    two steps, so under a busy bot it never finished.) The copy is written under a temporary
    name beside the target, readable by its owner only, checked, and only then renamed to
    the target, so a half-written or damaged backup never has the final name.
    """
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such database")
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(handle)  # mkstemp made it empty and mode 0600; VACUUM INTO fills an empty file
    partial = Path(name)
    try:
        with contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as live:
            live.execute("VACUUM INTO ?", (str(partial),))
        with contextlib.closing(sqlite3.connect(partial)) as copy:
            check = copy.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"the copy failed its integrity check: {check}")
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target.stat().st_size
