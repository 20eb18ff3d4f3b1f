"""The worker registry: who writes to the bot, whether announcements reach them, their live
card and their totals."""

from __future__ import annotations

from labeling.models import WorkerProfile, WorkerStats
from storage.engine import Engine, Tx


class WorkerStore:
    def __init__(self, db: Engine) -> None:
        self.db = db

    async def upsert_worker(
        self, profile: WorkerProfile, now: float, *, notify: bool = False
    ) -> None:
        """Registers the worker or refreshes their name and language; a worker who writes to
        the bot is reachable again. `notify` turns announcements back on; without it a
        worker's choice to pause them stands."""
        notify_sql = "CASE WHEN :notify = 1 THEN 1 ELSE workers.notify END"
        await self.db.run(
            lambda tx: tx.execute(
                "INSERT INTO workers (id, name, language, created_at, last_seen_at)"
                " VALUES (:id, :name, :language, :now, :now)"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                f" language = excluded.language, notify = {notify_sql}, reachable = 1"
                # Only a real change writes: a redelivered /start leaves the row as it was.
                " WHERE workers.name IS DISTINCT FROM excluded.name"
                " OR workers.language IS DISTINCT FROM excluded.language"
                f" OR workers.notify IS DISTINCT FROM {notify_sql} OR workers.reachable != 1",
                {
                    "id": profile.telegram_id,
                    "name": profile.name,
                    "language": profile.language,
                    "now": now,
                    "notify": int(notify),
                },
            )
        )

    async def set_notify(self, worker_id: int, enabled: bool) -> bool:
        """Returns False when the worker is unknown."""
        changed = await self.db.run(
            lambda tx: tx.execute(
                "UPDATE workers SET notify = ? WHERE id = ?", (int(enabled), worker_id)
            )
        )
        return changed == 1

    async def mark_unreachable(self, worker_id: int) -> None:
        await self.db.run(
            lambda tx: tx.execute("UPDATE workers SET reachable = 0 WHERE id = ?", (worker_id,))
        )

    async def swap_card(self, worker_id: int, message_id: int) -> int | None:
        """Stores the message id of the worker's live card and returns the one it replaces;
        writes only when it changes."""

        def change(tx: Tx) -> int | None:
            row = tx.row("SELECT card_message_id AS card FROM workers WHERE id = ?", (worker_id,))
            if row is None or row["card"] == message_id:
                return None
            tx.execute(
                "UPDATE workers SET card_message_id = ? WHERE id = ?", (message_id, worker_id)
            )
            return None if row["card"] is None else int(row["card"])

        return await self.db.run(change)

    async def worker_stats(self, worker_id: int, day_start: float) -> WorkerStats:
        rows = await self.db.read(
            """
            SELECT
              (SELECT COUNT(*) FROM answers WHERE worker_id = :w) AS answers,
              (SELECT COUNT(*) FROM answers WHERE worker_id = :w AND created_at >= :day)
                AS today,
              (SELECT COUNT(*) FROM assignments WHERE worker_id = :w AND status = 'skipped')
                AS skipped,
              (SELECT COUNT(DISTINCT batch_id) FROM answers WHERE worker_id = :w) AS batches,
              (SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE worker_id = :w) AS earned,
              (SELECT COALESCE(SUM(duration_ms), 0) FROM answers WHERE worker_id = :w)
                AS worked_ms,
              EXISTS (SELECT 1 FROM assignments WHERE worker_id = :w AND status = 'open')
                AS holding
            """,
            {"w": worker_id, "day": day_start},
        )
        row = rows[0]
        return WorkerStats(
            row["answers"],
            row["today"],
            row["skipped"],
            row["batches"],
            float(row["earned"]),
            bool(row["holding"]),
            seconds_worked=row["worked_ms"] / 1000,
        )
