"""Batch settings, read from the database once per process: a batch's settings never change."""

from __future__ import annotations

from labeling.batch import BatchSettings
from storage.engine import Tx


class SettingsCache:
    def __init__(self) -> None:
        self._known: dict[int, BatchSettings] = {}

    def read(self, tx: Tx, batch_id: int) -> BatchSettings:
        settings = self._known.get(batch_id)
        if settings is None:
            raw = tx.value("SELECT settings FROM batches WHERE id = ?", (batch_id,))
            settings = BatchSettings.model_validate_json(raw)
            self._known[batch_id] = settings
        return settings
