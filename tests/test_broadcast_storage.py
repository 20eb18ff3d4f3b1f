"""Announcements and notices in the database, on both engines: who a broadcast reaches, each
claim made once whoever else claims at the same moment, and one sender at a time, whose
messages in flight are settled when another replica takes over from it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from telegram.ext import ExtBot

from bot.local import SANDBOX_TOKEN
from bot.notifier import Notifier
from bot.retry import RetryingLimiter
from bot.sandbox import Sandbox, SandboxServer
from labeling.batch import BatchSettings
from storage.broadcasts import BroadcastStore, Delivery
from storage.engine import Engine, Params, Tx
from tests.engines import replica, stored_batch
from tests.harness import settle

OWNER = 90


async def table(engine: Engine, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in await engine.read(sql, params)]


async def workers(engine: Engine, *worker_ids: int) -> None:
    def change(tx: Tx) -> None:
        for worker_id in worker_ids:
            tx.execute(
                "INSERT INTO workers (id, name, created_at, last_seen_at) VALUES (?, 'w', 0, 0)",
                (worker_id,),
            )

    await engine.run(change)


async def broadcast(engine: Engine, text: str = "Hello") -> int:
    return await engine.run(
        lambda tx: tx.insert("INSERT INTO broadcasts (text, created_at) VALUES (?, 0)", (text,))
    )


async def notices(engine: Engine, *worker_ids: int) -> None:
    def change(tx: Tx) -> None:
        for worker_id in worker_ids:
            tx.execute(
                "INSERT INTO notices (worker_id, kind, created_at) VALUES (?, 'let_back', 0)",
                (worker_id,),
            )

    await engine.run(change)


async def test_a_broadcast_reaches_workers_not_owners_nor_coordinators_who_never_labeled(
    engine: Engine,
) -> None:
    await workers(engine, 1, 2, 3, 4, OWNER)
    await engine.run(
        lambda tx: tx.execute(
            "INSERT INTO coordinators (user_id, promoted_by, created_at) VALUES (3, ?, 0)",
            (OWNER,),
        )
    )
    await engine.run(lambda tx: tx.execute("UPDATE workers SET notify = 0 WHERE id = 4"))
    store = BroadcastStore(engine, owners=[OWNER, 7])
    told = await broadcast(engine)
    assert await store.untold(told, 10) == [1, 2]
    assert await store.audience(told) == 2
    # A coordinator who labels counts as a worker; so does an owner.
    batch = await stored_batch(
        engine, b"text\na\n", BatchSettings(name="b", question="q?", options="yes,no")
    )
    await engine.run(
        lambda tx: tx.execute(
            "INSERT INTO worker_batches (worker_id, batch_id, answers) VALUES (3, ?, 1), (?, ?, 1)",
            (batch, OWNER, batch),
        )
    )
    assert await store.untold(told, 10) == [1, 2, 3, OWNER]
    assert await store.claim(told, 1, 1.0)
    assert await store.untold(told, 10) == [2, 3, OWNER]
    assert await store.audience(told) == 4  # those told count, and those still to tell


async def test_a_batch_back_after_a_pause_reaches_only_its_own_workers(engine: Engine) -> None:
    """Worker 1 worked in the batch, 2 was told of its opening, 3 was suspended there, 4 never
    heard of it, 5 was told of another batch."""
    await workers(engine, 1, 2, 3, 4, 5)
    settings = BatchSettings(name="b", question="q?", options="yes,no")
    batch = await stored_batch(engine, b"text\na\n", settings)
    other = await stored_batch(engine, b"text\na\n", settings)

    def history(tx: Tx) -> int:
        tx.execute(
            "INSERT INTO worker_batches (worker_id, batch_id, answers, status)"
            " VALUES (1, :b, 1, 'active'), (3, :b, 1, 'suspended')",
            {"b": batch},
        )
        opened = tx.insert(
            "INSERT INTO broadcasts (batch_id, text, created_at) VALUES (?, 'new', 0)",
            (batch,),
        )
        elsewhere = tx.insert(
            "INSERT INTO broadcasts (batch_id, text, created_at) VALUES (?, 'new', 0)",
            (other,),
        )
        for broadcast_id, worker_id in ((opened, 2), (elsewhere, 5)):
            tx.execute(
                "INSERT INTO deliveries (broadcast_id, worker_id, status, updated_at)"
                " VALUES (?, ?, 'sent', 0)",
                (broadcast_id, worker_id),
            )
        return tx.insert(
            "INSERT INTO broadcasts (batch_id, text, created_at, audience)"
            " VALUES (?, 'back', 0, 'batch')",
            (batch,),
        )

    back = await engine.run(history)
    assert await BroadcastStore(engine).untold(back, 10) == [1, 2]


async def test_outcomes_are_recorded_and_a_send_never_made_is_claimed_again(
    engine: Engine,
) -> None:
    await workers(engine, 1, 2, 3)
    store = BroadcastStore(engine)
    told = await broadcast(engine)
    for worker_id in (1, 2, 3):
        assert await store.claim(told, worker_id, 1.0)
    assert not await store.claim(told, 1, 1.5)
    await store.record(
        told, [Delivery(1, "sent"), Delivery(2, "failed", "blocked", unreachable=True)], 2.0
    )
    await store.release(told, [3])  # Telegram asked to wait: nothing went out
    assert await store.counts(told) == {"sent": 1, "failed": 1}
    assert await table(engine, "SELECT id, reachable FROM workers ORDER BY id") == [
        (1, 1),
        (2, 0),
        (3, 1),
    ]
    assert await store.untold(told, 10) == [3]
    await store.set_progress_message(told, 77)
    await store.finish(told, 3.0)
    assert await store.unfinished() == []
    assert await table(engine, "SELECT progress_message_id, finished_at FROM broadcasts") == [
        (77, 3.0)
    ]


async def test_two_senders_claim_each_worker_once(engine: Engine) -> None:
    """Two replicas' claims on the same workers at the same moment, on two connections: each
    worker is claimed by exactly one of them."""
    await workers(engine, *range(1, 41))
    told = await broadcast(engine)
    async with replica(engine) as other:
        stores = [BroadcastStore(engine), BroadcastStore(other)]
        claims = await asyncio.gather(
            *(store.claim(told, worker_id, 1.0) for worker_id in range(1, 41) for store in stores)
        )
    won = [sum(claims[2 * index : 2 * index + 2]) for index in range(40)]
    assert won == [1] * 40
    assert await table(engine, "SELECT COUNT(*) FROM deliveries WHERE status = 'sending'") == [
        (40,)
    ]


async def test_two_senders_claim_each_notice_once(engine: Engine) -> None:
    await workers(engine, *range(1, 31))
    await notices(engine, *range(1, 31), *range(1, 31))
    async with replica(engine) as other:

        async def drain(store: BroadcastStore) -> list[int]:
            claimed = []
            while batch := await store.claim_notices(1.0, limit=3):
                claimed += [notice.notice_id for notice in batch]
            return claimed

        first, second = await asyncio.gather(
            drain(BroadcastStore(engine)), drain(BroadcastStore(other))
        )
    assert sorted(first + second) == list(range(1, 61))
    assert await table(engine, "SELECT DISTINCT status FROM notices") == [("sending",)]


async def test_a_notice_is_claimed_with_what_its_message_needs(engine: Engine) -> None:
    await workers(engine, 5)
    batch = await stored_batch(
        engine, b"text\na\n", BatchSettings(name="Cats", question="q?", options="yes,no")
    )
    await engine.run(
        lambda tx: tx.execute(
            "INSERT INTO notices (worker_id, batch_id, kind, created_at)"
            " VALUES (5, ?, 'suspended', 0)",
            (batch,),
        )
    )
    await engine.run(
        lambda tx: tx.execute(
            "INSERT INTO notices (coordinator_id, kind, text, created_at)"
            " VALUES (?, 'completed', 'Done', 0)",
            (OWNER,),
        )
    )
    store = BroadcastStore(engine)
    to_worker, to_coordinator = await store.claim_notices(1.0, limit=5)
    assert (to_worker.chat_id, to_worker.kind, to_worker.batch_name, to_worker.to_worker) == (
        5,
        "suspended",
        "Cats",
        True,
    )
    assert (to_coordinator.chat_id, to_coordinator.text, to_coordinator.to_worker) == (
        OWNER,
        "Done",
        False,
    )
    await store.record_notice(to_worker, "failed", 2.0, unreachable=True)
    await store.record_notice(to_coordinator, "sent", 2.0)
    assert await table(engine, "SELECT status FROM notices ORDER BY id") == [("failed",), ("sent",)]
    assert await table(engine, "SELECT reachable FROM workers") == [(0,)]
    assert await store.claim_notices(3.0, limit=5) == []


async def test_a_sender_that_dies_mid_broadcast_is_taken_over_and_no_one_is_told_twice(
    engine: Engine,
) -> None:
    """Sender A, five sends at a time, has told ten workers and has five sends held at
    Telegram when its process dies. On PostgreSQL another replica, B, stands by without
    touching A's claims while A lives, and takes over once A is gone; on SQLite B is the bot
    restarted. A's claims are counted unconfirmed and never sent again (its last outcomes
    were not yet written down); B tells everyone else, once."""
    first, count = 1000, 30
    await workers(engine, *range(first, first + count))
    await broadcast(engine)
    sandbox = Sandbox(SANDBOX_TOKEN)
    users = {w: sandbox.user(w, started=True) for w in range(first, first + count)}
    dead = False
    held = sandbox.hold(
        "sendMessage", when=lambda p: not dead and (p.int("chat_id") or 0) >= first + 10
    )

    async def claims() -> list[tuple[Any, ...]]:
        return await table(
            engine, "SELECT worker_id FROM deliveries WHERE status = 'sending' ORDER BY 1"
        )

    async with (
        SandboxServer(sandbox) as server,
        replica(engine) as dying,
        ExtBot(SANDBOX_TOKEN, base_url=server.base_url, rate_limiter=RetryingLimiter()) as bot,
    ):
        a = Notifier(bot, BroadcastStore(dying), rate=200.0, in_flight=5, check_lead_every=3600)
        sending = asyncio.create_task(a.round())
        await settle(lambda: held.held == 5)
        in_flight = await claims()
        assert in_flight == [(w,) for w in range(first, first + 15)]
        b = Notifier(bot, BroadcastStore(engine), rate=200.0)
        if engine.engine == "postgresql":  # A lives: B stands by and leaves A's claims
            await b.round()
            assert not b.leading and await claims() == in_flight
        await dying.close()  # A's process is gone, with five sends still at Telegram
        dead = True
        await b.round()
        held.release()  # Telegram delivers what reached it; A never hears back
        sending.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await sending
    outcomes = dict(await table(engine, "SELECT worker_id, status FROM deliveries"))
    assert {w for w, status in outcomes.items() if status == "unknown"} == {w for (w,) in in_flight}
    assert {w for w, status in outcomes.items() if status == "sent"} == set(
        range(first + 15, first + count)
    )
    for worker_id, user in users.items():
        if worker_id < first + 10 or outcomes[worker_id] == "sent":
            assert len(user.bot_messages) == 1, worker_id
        assert len(user.bot_messages) <= 1, worker_id
    assert await table(engine, "SELECT finished_at IS NOT NULL FROM broadcasts") == [(1,)]
