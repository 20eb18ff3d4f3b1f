"""Files sent to a coordinator within Telegram's limits: gzipped when large, in parts when
even that is too large for one upload."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

MAX_UPLOAD = 50 * 1024 * 1024  # bots may send files up to 50 MB
MAX_PLAIN = 1024 * 1024  # larger files are sent gzipped: a phone downloads less
PART = 1024 * 1024  # copy buffer


def fit(path: Path, *, plain: int, limit: int) -> list[Path]:
    """The files to send for `path`, each at most `limit` bytes: the file itself when small,
    else its gzip, else that gzip cut into numbered parts that `cat` joins again. Streams
    from disk, so a big export never sits in memory; run it in a thread."""
    if path.stat().st_size <= plain:
        return [path]
    packed = path.with_name(path.name + ".gz")
    with path.open("rb") as source, gzip.open(packed, "wb", compresslevel=6) as target:
        shutil.copyfileobj(source, target, PART)
    if packed.stat().st_size <= limit:
        return [packed]
    parts: list[Path] = []
    with packed.open("rb") as source:
        while chunk := source.read(limit):
            # Zero-padded, so that a shell's `*.part*` lists them in order.
            part = packed.with_name(f"{packed.name}.part{len(parts) + 1:02d}")
            part.write_bytes(chunk)
            parts.append(part)
    packed.unlink()
    return parts
