"""Announcements to workers and the record of who has been told; notices to single people.

One replica at a time sends them (the one that leads the job "notifier", Engine.leads); every
claim is safe against a second sender all the same, by a key or a conditional update.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from storage.admin import counts_as_worker, owners_parameter
from storage.engine import Engine, Tx

NOTIFIER = "notifier"  # the job of the replica that sends

# The workers broadcast :b has still to tell. Every broadcast reaches active workers who want
# announcements and have not blocked the bot (coordinators only once they label); one whose
# audience is 'batch' (a batch back after a pause) only those who worked in its batch or were
# told of it, and are not shut out of it.
UNTOLD = f"""
    FROM workers w JOIN broadcasts bc ON bc.id = :b
    WHERE w.status = 'active' AND w.notify = 1 AND w.reachable = 1 AND {counts_as_worker("w")}
    AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.broadcast_id = :b AND d.worker_id = w.id)
    AND (bc.audience = 'all' OR (
        NOT EXISTS (SELECT 1 FROM worker_batches wb WHERE wb.worker_id = w.id
                    AND wb.batch_id = bc.batch_id AND wb.status != 'active')
        AND (EXISTS (SELECT 1 FROM worker_batches wb WHERE wb.worker_id = w.id
                     AND wb.batch_id = bc.batch_id)
             OR EXISTS (SELECT 1 FROM broadcasts o JOIN deliveries d ON d.broadcast_id = o.id
                        WHERE o.batch_id = bc.batch_id AND o.id != bc.id AND d.worker_id = w.id
                        AND d.status IN ('sent', 'unknown')))))
"""


@dataclass(frozen=True, slots=True)
class Broadcast:
    broadcast_id: int
    batch_id: int | None
    text: str
    created_by: int | None
    paid: bool
    progress_message_id: int | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one send: 'sent', or 'failed' with the reason."""

    worker_id: int
    status: str
    error: str | None = None
    unreachable: bool = False  # the worker blocked the bot


@dataclass(frozen=True, slots=True)
class Notice:
    """A message to one worker about their standing in a batch, or to a coordinator about
    their batch (`to_worker` False, with its `text` composed when it was queued)."""

    notice_id: int
    chat_id: int
    kind: str
    batch_name: str
    text: str | None = None
    to_worker: bool = True


class BroadcastStore:
    def __init__(self, db: Engine, *, owners: Iterable[int] = ()) -> None:
        self.db = db
        self.owners = owners_parameter(owners)

    async def leads(self) -> bool:
        """Whether this replica is the one that sends now."""
        return await self.db.leads(NOTIFIER)

    async def settle_interrupted(self, now: float) -> int:
        """When this replica starts to send: messages that were in flight when the last
        sender stopped (this process before a restart, or a replica that died) may or may not
        have arrived. They are marked 'unknown' and never sent again: telling a worker twice
        is worse than one missed announcement. Only the sender claims, so none is a live
        peer's."""

        def change(tx: Tx) -> int:
            deliveries = tx.execute(
                "UPDATE deliveries SET status = 'unknown', updated_at = ? WHERE status = 'sending'",
                (now,),
            )
            notices = tx.execute(
                "UPDATE notices SET status = 'unknown', updated_at = ? WHERE status = 'sending'",
                (now,),
            )
            return deliveries + notices

        return await self.db.run(change)

    async def unfinished(self) -> list[Broadcast]:
        rows = await self.db.read(
            "SELECT id, batch_id, text, created_by, paid, progress_message_id FROM broadcasts"
            " WHERE finished_at IS NULL ORDER BY id"
        )
        return [
            Broadcast(
                row["id"],
                row["batch_id"],
                row["text"],
                row["created_by"],
                bool(row["paid"]),
                row["progress_message_id"],
            )
            for row in rows
        ]

    async def audience(self, broadcast_id: int) -> int:
        """Workers this broadcast reaches: those told already and those still to tell."""
        rows = await self.db.read(
            "SELECT (SELECT COUNT(*) FROM deliveries WHERE broadcast_id = :b)"
            f" + (SELECT COUNT(*) {UNTOLD}) AS reached",
            {"b": broadcast_id, "owners": self.owners},
        )
        return int(rows[0]["reached"])

    async def untold(self, broadcast_id: int, limit: int) -> list[int]:
        """Workers this broadcast has not yet been sent to (nor is being sent to)."""
        rows = await self.db.read(
            f"SELECT w.id {UNTOLD} ORDER BY w.id LIMIT :limit",
            {"b": broadcast_id, "limit": limit, "owners": self.owners},
        )
        return [row["id"] for row in rows]

    async def claim(self, broadcast_id: int, worker_id: int, now: float) -> bool:
        """Marks a worker as being told, just before the message goes out; False when another
        run has them already.

        The mark is written before anything is sent, so after a crash mid-send a worker may
        miss one announcement but is never told twice; and it is written for one send at a
        time, so a crash leaves in doubt only the sends actually under way. The key makes it
        one claim whoever else claims at the same moment: on PostgreSQL the second insert
        waits for the first and then does nothing.
        """
        claimed = await self.db.run(
            lambda tx: tx.execute(
                "INSERT INTO deliveries (broadcast_id, worker_id, status, updated_at)"
                " VALUES (?, ?, 'sending', ?) ON CONFLICT (broadcast_id, worker_id) DO NOTHING",
                (broadcast_id, worker_id, now),
            )
        )
        return claimed == 1

    async def record(self, broadcast_id: int, deliveries: Sequence[Delivery], now: float) -> None:
        """Writes the outcomes of many sends in one transaction."""
        if not deliveries:
            return

        def change(tx: Tx) -> None:
            for delivery in deliveries:
                tx.execute(
                    "UPDATE deliveries SET status = ?, error = ?, updated_at = ?"
                    " WHERE broadcast_id = ? AND worker_id = ? AND status = 'sending'",
                    (delivery.status, delivery.error, now, broadcast_id, delivery.worker_id),
                )
                if delivery.unreachable:
                    tx.execute(
                        "UPDATE workers SET reachable = 0 WHERE id = ?", (delivery.worker_id,)
                    )

        await self.db.run(change)

    async def release(self, broadcast_id: int, workers: Sequence[int]) -> None:
        """Forgets claims on workers who were never sent anything, so they are claimed again."""

        def change(tx: Tx) -> None:
            for worker_id in workers:
                tx.execute(
                    "DELETE FROM deliveries WHERE broadcast_id = ? AND worker_id = ?"
                    " AND status = 'sending'",
                    (broadcast_id, worker_id),
                )

        await self.db.run(change)

    async def set_progress_message(self, broadcast_id: int, message_id: int) -> None:
        await self.db.run(
            lambda tx: tx.execute(
                "UPDATE broadcasts SET progress_message_id = ? WHERE id = ?",
                (message_id, broadcast_id),
            )
        )

    async def finish(self, broadcast_id: int, now: float) -> None:
        await self.db.run(
            lambda tx: tx.execute(
                "UPDATE broadcasts SET finished_at = ? WHERE id = ?", (now, broadcast_id)
            )
        )

    async def counts(self, broadcast_id: int) -> dict[str, int]:
        rows = await self.db.read(
            "SELECT status, COUNT(*) AS sends FROM deliveries WHERE broadcast_id = ?"
            " GROUP BY status",
            (broadcast_id,),
        )
        return {row["status"]: row["sends"] for row in rows}

    async def claim_notices(self, now: float, limit: int) -> list[Notice]:
        """Queued notices, marked as being sent before anything is sent (as with claim).
        Each is claimed by a conditional update, so a notice another sender claimed first is
        left to it; on PostgreSQL the read skips notices a peer has locked."""

        def change(tx: Tx) -> list[Notice]:
            skip = " FOR UPDATE OF n SKIP LOCKED" if tx.engine == "postgresql" else ""
            rows = tx.rows(
                "SELECT n.id, COALESCE(n.worker_id, n.coordinator_id) AS chat, n.kind, n.text,"
                " n.worker_id IS NOT NULL AS to_worker, COALESCE(b.name, '') AS name"
                " FROM notices n LEFT JOIN batches b ON b.id = n.batch_id"
                f" WHERE n.status = 'queued' ORDER BY n.id LIMIT ?{skip}",
                (limit,),
            )
            claimed = []
            for row in rows:
                marked = tx.execute(
                    "UPDATE notices SET status = 'sending', updated_at = ?"
                    " WHERE id = ? AND status = 'queued'",
                    (now, row["id"]),
                )
                if marked == 1:
                    chat, to_worker = row["chat"], bool(row["to_worker"])
                    notice = Notice(
                        row["id"], chat, row["kind"], row["name"], row["text"], to_worker
                    )
                    claimed.append(notice)
            return claimed

        return await self.db.run(change)

    async def record_notice(
        self, notice: Notice, status: str, now: float, *, unreachable: bool = False
    ) -> None:
        def change(tx: Tx) -> None:
            tx.execute(
                "UPDATE notices SET status = ?, updated_at = ? WHERE id = ? AND status = 'sending'",
                (status, now, notice.notice_id),
            )
            if unreachable and notice.to_worker:  # they blocked the bot: nothing more for them
                tx.execute("UPDATE workers SET reachable = 0 WHERE id = ?", (notice.chat_id,))

        await self.db.run(change)
