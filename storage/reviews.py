"""Reports, suspect gold and the coordinator's review: the reads and writes behind the rules of
labeling/regrade.py, each review and each step of the sweep run as one transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from labeling import regrade
from labeling.batch import BatchSettings
from labeling.gold import Peers
from labeling.models import BatchNotFound
from labeling.quality import Suspension
from labeling.regrade import ReviewedItem, Standing
from labeling.review import Change, GoldAnswer, ItemNotFound, ProblemItem, Review, Sweep
from storage.engine import Engine, Row, Tx
from storage.standing import reinstate, suspend, trust_of

T = TypeVar("T")


def set_item_state(tx: Tx, item_id: int, state: str, reviewed: float | None = None) -> None:
    """Changes an item's state (`reviewed`: the time a coordinator did) and keeps its batch's
    count of gold that counts."""
    tx.execute(
        "UPDATE items SET state = ?, reviewed_at = COALESCE(?, reviewed_at) WHERE id = ?",
        (state, reviewed, item_id),
    )
    tx.execute(
        "UPDATE batches SET gold_items = (SELECT COUNT(*) FROM items i"
        "  WHERE i.batch_id = batches.id AND i.gold IS NOT NULL AND i.exam = 0"
        "  AND i.state = 'ok')"
        " WHERE id = (SELECT batch_id FROM items WHERE id = ?)",
        (item_id,),
    )


def _standing(row: Row) -> Standing:
    return Standing(row["worker_id"], row["status"], row["cause"], trust_of(row))


class SqlReviewUnit:
    """The reads and writes of a review (labeling.regrade.ReviewUnit) inside one transaction.
    On PostgreSQL what a rule reads to decide is locked until the transaction ends, so that
    two replicas' sweeps, or a sweep and a worker's answer, never decide on the same row at
    once (SQLite has one writer: nothing to lock)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self._postgres = tx.engine == "postgresql"
        self._lock = " FOR UPDATE" if self._postgres else ""

    # -- reads ----------------------------------------------------------------------------

    def item(self, item_id: int) -> ReviewedItem:
        lock = " FOR UPDATE OF i" if self._postgres else ""
        row = self.tx.row(
            "SELECT i.batch_id, i.gold, i.state, i.exam, b.settings FROM items i"
            f" JOIN batches b ON b.id = i.batch_id WHERE i.id = ?{lock}",
            (item_id,),
        )
        assert row is not None
        return ReviewedItem(
            item_id,
            row["batch_id"],
            row["gold"],
            row["state"],
            bool(row["exam"]),
            BatchSettings.model_validate_json(row["settings"]),
        )

    def settings(self, batch_id: int) -> BatchSettings:
        raw = self.tx.value("SELECT settings FROM batches WHERE id = ?", (batch_id,))
        return BatchSettings.model_validate_json(raw)

    def standings(self, batch_id: int) -> list[Standing]:
        rows = self.tx.rows(
            "SELECT * FROM worker_batches WHERE batch_id = ? AND status IN ('active', 'suspended')"
            f" ORDER BY worker_id{self._lock}",
            (batch_id,),
        )
        return [_standing(row) for row in rows]

    def standing(self, worker_id: int, batch_id: int) -> Standing:
        row = self.tx.row(
            f"SELECT * FROM worker_batches WHERE worker_id = ? AND batch_id = ?{self._lock}",
            (worker_id, batch_id),
        )
        assert row is not None
        return _standing(row)

    def answer_values(self, item_id: int) -> list[str]:
        rows = self.tx.rows("SELECT DISTINCT value FROM answers WHERE item_id = ?", (item_id,))
        return [row["value"] for row in rows]

    def gold_answers(self, batch_id: int) -> list[GoldAnswer]:
        rows = self.tx.rows(
            "SELECT a.item_id, a.correct, wb.gold_answers, wb.gold_correct"
            " FROM answers a JOIN items i ON i.id = a.item_id"
            " JOIN worker_batches wb ON wb.worker_id = a.worker_id"
            "  AND wb.batch_id = a.batch_id"
            " WHERE a.batch_id = ? AND a.correct IS NOT NULL AND i.state = 'ok'"
            " AND a.created_at > COALESCE(i.reviewed_at, -1) AND a.created_at >= wb.trust_since",
            (batch_id,),
        )
        return [
            GoldAnswer(r["item_id"], bool(r["correct"]), r["gold_answers"], r["gold_correct"])
            for r in rows
        ]

    def finished_items(self, batch_id: int, limit: int) -> list[int]:
        skip = " FOR UPDATE SKIP LOCKED" if self._postgres else ""
        rows = self.tx.rows(
            "SELECT id FROM items INDEXED BY items_to_compare WHERE batch_id = ?"
            f" AND compared = 0 AND gold IS NULL AND answers >= target LIMIT ?{skip}",
            (batch_id, limit),
        )
        return [row["id"] for row in rows]

    def votes(self, item_ids: Sequence[int]) -> list[tuple[int, int, str]]:
        marks = ",".join("?" * len(item_ids))
        rows = self.tx.rows(
            "SELECT a.item_id, a.worker_id, a.value FROM answers a"
            " LEFT JOIN worker_batches wb ON wb.worker_id = a.worker_id"
            "  AND wb.batch_id = a.batch_id"
            f" WHERE a.item_id IN ({marks}) AND COALESCE(wb.status, 'active') = 'active'"
            " ORDER BY a.item_id, a.id",
            list(item_ids),
        )
        return [(row["item_id"], row["worker_id"], row["value"]) for row in rows]

    # -- writes ---------------------------------------------------------------------------

    def set_gold(self, item_id: int, answer: str) -> None:
        self.tx.execute("UPDATE items SET gold = ? WHERE id = ?", (answer, item_id))

    def make_ordinary(self, item_id: int) -> None:
        tx = self.tx
        tx.execute(
            "UPDATE items SET gold = NULL, answers = (SELECT COUNT(*) FROM answers a"
            "  LEFT JOIN worker_batches wb ON wb.worker_id = a.worker_id"
            "  AND wb.batch_id = a.batch_id WHERE a.item_id = items.id"
            "  AND COALESCE(wb.status, 'active') != 'suspended')"
            " WHERE id = ?",
            (item_id,),
        )
        held = tx.value(
            "SELECT COUNT(*) FROM assignments WHERE item_id = ? AND status = 'open'", (item_id,)
        )
        tx.execute(
            "UPDATE items SET wanted = CASE WHEN target - answers - :held > 0"
            " THEN target - answers - :held ELSE 0 END WHERE id = :item",
            {"held": held, "item": item_id},
        )
        # Its assignments were handed out as gold; from now on they fill the item like any
        # (an open one answered, a suspended worker's counted in or out).
        tx.execute("UPDATE assignments SET kind = 'task' WHERE item_id = ?", (item_id,))
        tx.execute(
            "UPDATE batches SET gold_total = gold_total - 1"
            " WHERE id = (SELECT batch_id FROM items WHERE id = ?)",
            (item_id,),
        )

    def set_item_state(self, item_id: int, state: str, reviewed: float | None = None) -> None:
        set_item_state(self.tx, item_id, state, reviewed)

    def grade(self, item_id: int, value: str, correct: bool | None) -> None:
        self.tx.execute(
            "UPDATE answers SET correct = ? WHERE item_id = ? AND value = ?",
            (None if correct is None else int(correct), item_id, value),
        )

    def rebuild_records(self, batch_id: int) -> None:
        self.tx.execute(
            "UPDATE worker_batches SET"
            " gold_answers = (SELECT COUNT(a.correct) FROM answers a"
            "  WHERE a.worker_id = worker_batches.worker_id"
            "  AND a.batch_id = worker_batches.batch_id"
            "  AND a.created_at >= worker_batches.trust_since),"
            " gold_correct = (SELECT COALESCE(SUM(a.correct), 0) FROM answers a"
            "  WHERE a.worker_id = worker_batches.worker_id"
            "  AND a.batch_id = worker_batches.batch_id"
            "  AND a.created_at >= worker_batches.trust_since)"
            " WHERE batch_id = ?",
            (batch_id,),
        )

    def reinstate(self, worker_id: int, batch_id: int, now: float) -> None:
        reinstate(self.tx, worker_id, batch_id, "gold", now)

    def suspend(self, worker_id: int, batch_id: int, verdict: Suspension, now: float) -> None:
        suspend(self.tx, worker_id, batch_id, verdict, now)

    def notify(self, worker_id: int, batch_id: int, change: Change, now: float) -> None:
        kind = "reinstated" if change == "reinstate" else "suspended"
        self.tx.execute(
            "INSERT INTO notices (worker_id, batch_id, kind, created_at) VALUES (?, ?, ?, ?)",
            (worker_id, batch_id, kind, now),
        )

    def mark_compared(self, item_ids: Sequence[int]) -> None:
        for item_id in item_ids:
            self.tx.execute("UPDATE items SET compared = 1 WHERE id = ?", (item_id,))

    def save_peers(self, worker_id: int, batch_id: int, peers: Peers) -> None:
        self.tx.execute(
            "UPDATE worker_batches SET peer_below = ?, peer_guessing = ?, peer_checks = ?,"
            " peer_agreed = ? WHERE worker_id = ? AND batch_id = ?",
            (peers.below, peers.guessing, peers.checks, peers.agreed, worker_id, batch_id),
        )


class ReviewStore:
    """Runs the review's rules, each in one transaction, and reads what the coordinator sees."""

    def __init__(self, db: Engine) -> None:
        self.db = db

    async def _run(self, change: Callable[[SqlReviewUnit], T]) -> T:
        return await self.db.run(lambda tx: change(SqlReviewUnit(tx)))

    async def problems(self, batch_id: int) -> list[ProblemItem]:
        """Items with reports, broken items and suspect gold, with the answers on gold."""

        def read(tx: Tx) -> list[ProblemItem]:
            if tx.row("SELECT 1 FROM batches WHERE id = ?", (batch_id,)) is None:
                raise BatchNotFound(batch_id)
            items = tx.rows(
                "SELECT i.id, i.external_id, i.text, i.state, i.gold FROM items i"
                " WHERE i.batch_id = :b AND (i.state != 'ok'"
                "  OR EXISTS (SELECT 1 FROM reports r WHERE r.item_id = i.id))"
                " ORDER BY i.id",
                {"b": batch_id},
            )
            reports: dict[int, dict[str, int]] = {}
            for count in tx.rows(
                "SELECT item_id, reason, COUNT(*) AS workers FROM reports WHERE batch_id = ?"
                " GROUP BY item_id, reason",
                (batch_id,),
            ):
                reports.setdefault(count["item_id"], {})[count["reason"]] = count["workers"]
            gold_ids = [row["id"] for row in items if row["gold"] is not None]
            answers: dict[int, list[str]] = {}
            if gold_ids:
                marks = ",".join("?" * len(gold_ids))
                for answer in tx.rows(
                    f"SELECT item_id, value FROM answers WHERE item_id IN ({marks}) ORDER BY id",
                    gold_ids,
                ):
                    answers.setdefault(answer["item_id"], []).append(answer["value"])
            return [
                ProblemItem(
                    row["id"],
                    row["external_id"],
                    row["text"],
                    row["state"],
                    row["gold"],
                    reports.get(row["id"], {}),
                    answers.get(row["id"], []),
                )
                for row in items
            ]

        return await self.db.run(read)

    async def find_item(self, batch_id: int, key: str) -> int:
        """An item by the coordinator's own id for it, or by labelbot's number written `#N`
        (a bare number is always the coordinator's id: a typo never acts on another item)."""
        if key.startswith("#"):
            sql, wanted = "CAST(id AS TEXT) = ?", key[1:]
        else:
            sql, wanted = "external_id = ?", key
        rows = await self.db.read(
            f"SELECT id FROM items WHERE batch_id = ? AND {sql}", (batch_id, wanted)
        )
        if not rows:
            if not await self.db.read("SELECT 1 FROM batches WHERE id = ?", (batch_id,)):
                raise BatchNotFound(batch_id)
            raise ItemNotFound(key)
        return int(rows[0]["id"])

    async def correct_gold(self, batch_id: int, item_id: int, answer: str, now: float) -> Review:
        """Sets a gold item's known answer and lets it count (labeling.regrade)."""
        return await self._run(lambda unit: regrade.correct_gold(unit, item_id, answer, now))

    async def drop_gold(self, batch_id: int, item_id: int, now: float) -> Review:
        """Turns a gold item into an ordinary one (labeling.regrade)."""
        return await self._run(lambda unit: regrade.drop_gold(unit, item_id, now))

    async def restore(self, batch_id: int, item_id: int, now: float) -> Review:
        """Puts an item back into circulation (labeling.regrade)."""
        return await self._run(lambda unit: regrade.restore(unit, item_id, now))

    async def sweep(self, now: float) -> Sweep:
        """In every open batch: compares the answers on newly finished items, suspending
        workers whose record now says so, and flags suspect gold, recomputing the records it
        counted in. One transaction per batch and step."""
        flagged = suspended = 0
        for batch in await self.db.read("SELECT id, settings FROM batches WHERE status = 'open'"):
            batch_id = batch["id"]
            settings = BatchSettings.model_validate_json(batch["settings"])
            suspended += await self._run(
                partial(regrade.compare_answers, batch_id=batch_id, settings=settings, now=now)
            )
            flagged += await self._run(partial(regrade.flag_suspects, batch_id=batch_id, now=now))
        return Sweep(flagged, suspended)
