"""Reports, suspect gold and the coordinator's review: item states, regrading gold answers and
recomputing every worker's record in one transaction."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import aiosqlite

from labeling.batch import BatchSettings
from labeling.gold import peer_checks, peer_step
from labeling.models import BatchNotFound
from labeling.quality import Suspension, is_correct, suspension
from labeling.review import (
    GoldAnswer,
    ItemNotFound,
    ItemReport,
    Review,
    ReviewError,
    Sweep,
    restanding,
    suspect_gold,
)
from storage.db import Database, Record, records, run_on
from storage.engine import Tx
from storage.standing import reinstate, suspend, trust_of


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


async def regrade(conn: aiosqlite.Connection, item_id: int) -> None:
    """Marks each answer on a gold item right or wrong against its gold answer now; answers on
    suspect gold, or on an item that is not gold, are graded nothing."""
    rows = await records(conn, "SELECT gold, state FROM items WHERE id = ?", (item_id,))
    gold, counts = rows[0]["gold"], rows[0]["state"] != "suspect"
    answers = await records(conn, "SELECT id, value FROM answers WHERE item_id = ?", (item_id,))
    await conn.executemany(
        "UPDATE answers SET correct = ? WHERE id = ?",
        [
            (None if gold is None or not counts else int(is_correct(a["value"], gold)), a["id"])
            for a in answers
        ],
    )


async def recompute_trust(conn: aiosqlite.Connection, batch_id: int, now: float) -> Review:
    """Rebuilds every worker's gold record in the batch from their graded answers (since they
    were last reinstated by a coordinator), then applies what the new records say; each worker
    whose standing changes is sent a notice."""
    await conn.execute(
        "UPDATE worker_batches SET"
        " gold_answers = (SELECT COUNT(a.correct) FROM answers a"
        "  WHERE a.worker_id = worker_batches.worker_id AND a.batch_id = worker_batches.batch_id"
        "  AND a.created_at >= worker_batches.trust_since),"
        " gold_correct = (SELECT COALESCE(SUM(a.correct), 0) FROM answers a"
        "  WHERE a.worker_id = worker_batches.worker_id AND a.batch_id = worker_batches.batch_id"
        "  AND a.created_at >= worker_batches.trust_since)"
        " WHERE batch_id = ?",
        (batch_id,),
    )
    settings_rows = await records(conn, "SELECT settings FROM batches WHERE id = ?", (batch_id,))
    settings = BatchSettings.model_validate_json(settings_rows[0]["settings"])
    options = settings.option_count
    reinstated = suspended = 0
    for row in await records(
        conn,
        "SELECT * FROM worker_batches WHERE batch_id = ? AND status IN ('active', 'suspended')",
        (batch_id,),
    ):
        change = restanding(row["status"], row["cause"], trust_of(row), settings, options)
        worker_id = row["worker_id"]
        if change == "reinstate":
            await run_on(
                conn,
                partial(reinstate, worker_id=worker_id, batch_id=batch_id, cause="gold", now=now),
            )
            reinstated += 1
        elif change == "suspend":
            verdict = Suspension("gold", "gold record recomputed after a review")
            await run_on(
                conn,
                partial(suspend, worker_id=worker_id, batch_id=batch_id, verdict=verdict, now=now),
            )
            suspended += 1
        else:
            continue
        await notify(conn, worker_id, batch_id, change, now)
    return Review(reinstated, suspended)


async def notify(
    conn: aiosqlite.Connection, worker_id: int, batch_id: int, change: str, now: float
) -> None:
    """Queues a message telling a worker their standing changed outside their own taps."""
    kind = "reinstated" if change == "reinstate" else "suspended"
    await conn.execute(
        "INSERT INTO notices (worker_id, batch_id, kind, created_at) VALUES (?, ?, ?, ?)",
        (worker_id, batch_id, kind, now),
    )


async def compare_answers(
    conn: aiosqlite.Connection, batch_id: int, settings: BatchSettings, now: float
) -> int:
    """Checks each worker against the others on the batch's newly finished items, and
    suspends those whose record now says so; returns how many were suspended."""
    if settings.options is None:
        return 0  # typed answers differ in wording without being wrong: no fair comparison
    options = len(settings.options)
    items = await records(
        conn,
        "SELECT id FROM items INDEXED BY items_to_compare WHERE batch_id = ?"
        " AND compared = 0 AND gold IS NULL AND answers >= target LIMIT 2000",
        (batch_id,),
    )
    if not items:
        return 0
    ids = [item["id"] for item in items]
    marks = ",".join("?" * len(ids))
    answers = await records(
        conn,
        "SELECT a.item_id, a.worker_id, a.value FROM answers a"
        " LEFT JOIN worker_batches wb ON wb.worker_id = a.worker_id AND wb.batch_id = a.batch_id"
        f" WHERE a.item_id IN ({marks}) AND COALESCE(wb.status, 'active') = 'active'"
        " ORDER BY a.item_id, a.id",
        ids,
    )
    by_item: dict[int, list[tuple[int, str]]] = {}
    for answer in answers:
        by_item.setdefault(answer["item_id"], []).append((answer["worker_id"], answer["value"]))
    checks: dict[int, list[bool]] = {}
    for item_answers in by_item.values():
        for worker_id, agreed in peer_checks(item_answers):
            checks.setdefault(worker_id, []).append(agreed)
    await conn.executemany("UPDATE items SET compared = 1 WHERE id = ?", [(i,) for i in ids])
    suspended = 0
    for worker_id, outcomes in checks.items():
        rows = await records(
            conn,
            "SELECT * FROM worker_batches WHERE worker_id = ? AND batch_id = ?",
            (worker_id, batch_id),
        )
        trust = trust_of(rows[0])
        peers = trust.peers
        for agreed in outcomes:
            peers = peer_step(peers, agreed, settings, options)
        await conn.execute(
            "UPDATE worker_batches SET peer_below = ?, peer_guessing = ?, peer_checks = ?,"
            " peer_agreed = ? WHERE worker_id = ? AND batch_id = ?",
            (peers.below, peers.guessing, peers.checks, peers.agreed, worker_id, batch_id),
        )
        verdict = suspension(replace(trust, peers=peers), settings, options)
        if rows[0]["status"] == "active" and verdict is not None:
            await run_on(
                conn,
                partial(suspend, worker_id=worker_id, batch_id=batch_id, verdict=verdict, now=now),
            )
            await notify(conn, worker_id, batch_id, "suspend", now)
            suspended += 1
    return suspended


class ReviewStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def problems(self, batch_id: int) -> list[ItemReport]:
        """Items with reports, broken items and suspect gold, most reported first."""
        if await self.db.fetchval("SELECT 1 FROM batches WHERE id = ?", (batch_id,)) is None:
            raise BatchNotFound(batch_id)
        async with self.db.atomic() as conn:
            rows = await records(
                conn,
                "SELECT i.id, i.external_id, i.text, i.state, i.gold FROM items i"
                " WHERE i.batch_id = :b AND (i.state != 'ok'"
                "  OR EXISTS (SELECT 1 FROM reports r WHERE r.item_id = i.id))",
                {"b": batch_id},
            )
            counts = await records(
                conn,
                "SELECT item_id, reason, COUNT(*) AS workers FROM reports WHERE batch_id = ?"
                " GROUP BY item_id, reason",
                (batch_id,),
            )
            gold_ids = [row["id"] for row in rows if row["gold"] is not None]
            marks = ",".join("?" * len(gold_ids))
            values = await records(
                conn, f"SELECT item_id, value FROM answers WHERE item_id IN ({marks})", gold_ids
            )
        golds = {row["id"]: row["gold"] for row in rows}
        graded: dict[int, list[bool]] = {}
        for answer in values:  # graded against the gold answer now, whether it counts or not
            right = is_correct(answer["value"], golds[answer["item_id"]])
            graded.setdefault(answer["item_id"], []).append(right)
        by_item: dict[int, dict[str, int]] = {}
        for count in counts:
            by_item.setdefault(count["item_id"], {})[count["reason"]] = count["workers"]
        found = [
            ItemReport(
                row["id"],
                row["external_id"],
                row["text"],
                row["state"],
                row["gold"],
                by_item.get(row["id"], {}),
                len(graded.get(row["id"], [])),
                graded.get(row["id"], []).count(False),
            )
            for row in rows
        ]
        return sorted(found, key=lambda r: (r.state == "ok", -sum(r.reports.values()), r.item_id))

    async def find_item(self, batch_id: int, key: str) -> int:
        """An item by the coordinator's own id for it, or by labelbot's number written `#N`
        (a bare number is always the coordinator's id: a typo never acts on another item)."""
        number = key[1:] if key.startswith("#") else None
        value = await self.db.fetchval(
            "SELECT id FROM items WHERE batch_id = :b AND CASE WHEN :n IS NULL"
            " THEN external_id = :k ELSE CAST(id AS TEXT) = :n END",
            {"b": batch_id, "k": key, "n": number},
        )
        if value is None:
            if await self.db.fetchval("SELECT 1 FROM batches WHERE id = ?", (batch_id,)) is None:
                raise BatchNotFound(batch_id)
            raise ItemNotFound(key)
        return int(value)

    async def correct_gold(self, batch_id: int, item_id: int, answer: str, now: float) -> Review:
        """Sets a gold item's known answer (one of the batch's options) and lets it count."""
        async with self.db.atomic() as conn:
            item = await self._item(conn, item_id)
            if item["gold"] is None:
                raise ReviewError("that item is not gold")
            settings = BatchSettings.model_validate_json(item["settings"])
            if settings.options is not None:
                option = settings.canonical_option(answer)
                if option is None:
                    raise ReviewError(f"the answer must be one of: {', '.join(settings.options)}")
                answer = option
            await conn.execute("UPDATE items SET gold = ? WHERE id = ?", (answer, item_id))
            await run_on(conn, lambda tx: set_item_state(tx, item_id, "ok", now))
            await regrade(conn, item_id)
            return await recompute_trust(conn, batch_id, now)

    async def drop_gold(self, batch_id: int, item_id: int, now: float) -> Review:
        """Turns a gold item into an ordinary one: its answers so far count towards its label
        and no one's record."""
        async with self.db.atomic() as conn:
            item = await self._item(conn, item_id)
            if item["gold"] is None or item["exam"]:
                raise ReviewError("that item is not hidden gold")
            await conn.execute(
                "UPDATE items SET gold = NULL, answers = (SELECT COUNT(*) FROM answers a"
                "  LEFT JOIN worker_batches wb ON wb.worker_id = a.worker_id"
                "  AND wb.batch_id = a.batch_id WHERE a.item_id = items.id"
                "  AND COALESCE(wb.status, 'active') != 'suspended')"
                " WHERE id = ?",
                (item_id,),
            )
            await conn.execute(
                "UPDATE items SET wanted = MAX(target - answers - (SELECT COUNT(*)"
                "  FROM assignments x WHERE x.item_id = items.id AND x.status = 'open'), 0)"
                " WHERE id = ?",
                (item_id,),
            )
            # Its assignments were handed out as gold; from now on they fill the item like any
            # (an open one answered, a suspended worker's counted in or out).
            await conn.execute("UPDATE assignments SET kind = 'task' WHERE item_id = ?", (item_id,))
            await conn.execute(
                "UPDATE batches SET gold_total = gold_total - 1 WHERE id = ?", (batch_id,)
            )
            await run_on(conn, lambda tx: set_item_state(tx, item_id, "ok", now))
            await regrade(conn, item_id)
            return await recompute_trust(conn, batch_id, now)

    async def restore(self, batch_id: int, item_id: int, now: float) -> Review:
        """Puts a broken item, or suspect gold judged right after all, back into circulation."""
        async with self.db.atomic() as conn:
            item = await self._item(conn, item_id)
            if item["state"] == "ok":
                raise ReviewError("that item is in circulation already")
            await run_on(conn, lambda tx: set_item_state(tx, item_id, "ok", now))
            if item["gold"] is None:
                return Review(recomputed=False)
            await regrade(conn, item_id)
            return await recompute_trust(conn, batch_id, now)

    async def sweep(self, now: float) -> Sweep:
        """In every open batch: compares the answers on newly finished items, suspending
        workers whose record now says so, and flags suspect gold, recomputing the records it
        counted in. One transaction per batch and step."""
        flagged = suspended = 0
        for row in await self.db.fetchall("SELECT id, settings FROM batches WHERE status = 'open'"):
            batch_id, settings = row[0], BatchSettings.model_validate_json(row[1])
            async with self.db.atomic() as conn:
                suspended += await compare_answers(conn, batch_id, settings, now)
            async with self.db.atomic() as conn:
                flagged += await self._flag_suspects(conn, batch_id, now)
        return Sweep(flagged, suspended)

    @staticmethod
    async def _flag_suspects(conn: aiosqlite.Connection, batch_id: int, now: float) -> int:
        rows = await records(
            conn,
            "SELECT a.item_id, a.correct, wb.gold_answers, wb.gold_correct"
            " FROM answers a JOIN items i ON i.id = a.item_id"
            " JOIN worker_batches wb ON wb.worker_id = a.worker_id"
            "  AND wb.batch_id = a.batch_id"
            " WHERE a.batch_id = ? AND a.correct IS NOT NULL AND i.state = 'ok'"
            " AND a.created_at > COALESCE(i.reviewed_at, -1) AND a.created_at >= wb.trust_since",
            (batch_id,),
        )
        suspects = suspect_gold(
            GoldAnswer(r["item_id"], bool(r["correct"]), r["gold_answers"], r["gold_correct"])
            for r in rows
        )
        for item_id in suspects:
            await run_on(conn, partial(set_item_state, item_id=item_id, state="suspect"))
            await regrade(conn, item_id)
        if suspects:
            await recompute_trust(conn, batch_id, now)
        return len(suspects)

    @staticmethod
    async def _item(conn: aiosqlite.Connection, item_id: int) -> Record:
        rows = await records(
            conn,
            "SELECT i.gold, i.state, i.exam, b.settings FROM items i"
            " JOIN batches b ON b.id = i.batch_id WHERE i.id = ?",
            (item_id,),
        )
        return rows[0]
