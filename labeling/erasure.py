"""Erasure: who may have a worker forgotten, what of their work is kept, and the pseudonym.

A worker's name and language are removed and their Telegram id is replaced, everywhere it is
stored, by a pseudonym: a random negative number, so it tells nothing of the id and can never
be a Telegram user's (user ids are positive). Their work is kept under the pseudonym: answers
(with their times and flags), the pay ledger, their standing in each batch, reports, exams,
notices and the audit log; labels, exports and pay totals stay as they were. If the person
writes to the bot again, they start as a new worker.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from labeling.models import Clock

# Pseudonyms fit in 53 bits, as Telegram's ids do, so a JSON reader keeps them exact.
_PSEUDONYMS = 2**53 - 1
ERASED_NAME = "(erased)"
# How long the confirmation button of /forgetme stays valid.
CONFIRM_SECONDS = 600.0


def pseudonym() -> int:
    """A fresh random pseudonym, drawn from a system random source (not derived from the id)."""
    return -(secrets.randbelow(_PSEUDONYMS) + 1)


def is_pseudonym(worker_id: int) -> bool:
    return worker_id < 0


@dataclass(frozen=True, slots=True)
class Subject:
    """What the rules need to know about the person to be forgotten."""

    worker_id: int
    known: bool
    banned: bool
    coordinator: bool


@dataclass(frozen=True, slots=True)
class Erased:
    """What was kept under the pseudonym (the pseudonym itself is not told to anyone)."""

    answers: int
    payments: int
    batches: int

    def describe(self) -> str:
        return (
            f"{self.answers} answers, {self.payments} ledger entries and the standing in"
            f" {self.batches} batches kept under a random pseudonym"
        )


class ErasureRefused(Exception):
    """Why this person cannot be erased (by this requester), as the user reads it."""


def refusal(subject: Subject, *, own: bool) -> str | None:
    """Why `subject` may not be erased, or None. `own`: the worker asks for themselves (in
    the chat); otherwise the operator asks (the command line)."""
    who = "you" if own else f"worker {subject.worker_id}"
    if is_pseudonym(subject.worker_id) or not subject.known:
        return "Nothing is stored about you." if own else f"there is no {who}"
    if subject.coordinator:
        # The audit log must still say who acted: a coordinator steps down first.
        if own:
            return (
                "You are a coordinator: an owner must demote you first (an owner: take your"
                " id out of COORDINATOR_IDS)."
            )
        return f"{who} is a coordinator: demote them (or take them out of COORDINATOR_IDS) first"
    if own and subject.banned:
        # Starting afresh would lift the ban; the operator can still erase a banned worker.
        return "Your account is banned: ask a coordinator to erase your data."
    return None


class PseudonymTaken(Exception):
    """The pseudonym drawn is in use already (one chance in billions): draw another."""


class ErasureRepository(Protocol):
    async def subject(self, worker_id: int) -> tuple[bool, bool]: ...
    async def ask(self, worker_id: int, code: str, expires_at: float) -> None: ...
    async def asked(self, worker_id: int) -> tuple[str, float] | None: ...
    async def withdraw(self, worker_id: int, code: str | None = None) -> bool: ...
    async def erase(
        self, worker_id: int, pseudonym: int, reason: str, now: float
    ) -> Erased | None: ...


class ErasureService:
    """Forgets workers: at their own request with a confirmation, or the operator's."""

    def __init__(
        self,
        store: ErasureRepository,
        is_coordinator: Callable[[int], Awaitable[bool]],
        *,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.is_coordinator = is_coordinator
        self.clock = clock

    async def _subject(self, worker_id: int) -> Subject:
        known, banned = await self.store.subject(worker_id)
        coordinator = await self.is_coordinator(worker_id)
        return Subject(worker_id, known, banned, coordinator)

    async def request(self, worker_id: int) -> str:
        """Asks the worker to confirm; returns the code their confirmation carries."""
        reason = refusal(await self._subject(worker_id), own=True)
        if reason is not None:
            raise ErasureRefused(reason)
        code = secrets.token_hex(8)
        # Kept in the database: the confirming tap may reach another replica.
        await self.store.ask(worker_id, code, self.clock() + CONFIRM_SECONDS)
        return code

    async def cancel(self, worker_id: int) -> None:
        await self.store.withdraw(worker_id)

    async def confirm(self, worker_id: int, code: str) -> Erased | None:
        """Erases the tapper if `code` is the one their own pending request carries; None
        for anything else (someone else's button, a replayed or forged tap, an old one)."""
        pending = await self.store.asked(worker_id)
        if pending is None or not hmac.compare_digest(pending[0], code):
            return None
        # One use: a replay of the tap, here or on another replica, finds nothing.
        if not await self.store.withdraw(worker_id, code) or pending[1] < self.clock():
            return None
        reason = refusal(await self._subject(worker_id), own=True)  # checked again: a ban
        if reason is not None:
            raise ErasureRefused(reason)
        return await self._erase(worker_id, "at the worker's request")

    async def erase(self, worker_id: int) -> Erased:
        """The operator erases a worker (the command line)."""
        reason = refusal(await self._subject(worker_id), own=False)
        if reason is not None:
            raise ErasureRefused(reason)
        erased = await self._erase(worker_id, "by the operator")
        if erased is None:
            raise ErasureRefused(f"there is no worker {worker_id}")
        return erased

    async def _erase(self, worker_id: int, reason: str) -> Erased | None:
        while True:
            try:
                return await self.store.erase(worker_id, pseudonym(), reason, self.clock())
            except PseudonymTaken:
                continue
