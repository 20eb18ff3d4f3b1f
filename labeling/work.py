"""The worker's side of labeling: tasks handed out, answers taken, progress counted."""

from __future__ import annotations

import time
from functools import partial

from labeling import loop
from labeling.models import (
    Clock,
    Closed,
    ExamQuestion,
    ExamResult,
    Outcome,
    Problem,
    Submission,
    Task,
    WorkerProfile,
    WorkerStats,
)
from labeling.ports import ExamRepository, TaskRepository, WorkerRepository

Shown = Task | ExamQuestion | ExamResult | Closed | None


class WorkService:
    def __init__(
        self,
        workers: WorkerRepository,
        tasks: TaskRepository,
        exams: ExamRepository,
        *,
        assignment_ttl: float,
        clock: Clock = time.time,
    ) -> None:
        self.workers = workers
        self.tasks = tasks
        self.exams = exams
        self.ttl = assignment_ttl
        self.clock = clock

    async def register(self, profile: WorkerProfile) -> None:
        """Registers a worker who asks for work; leaves their announcements as they set them."""
        await self.workers.upsert_worker(profile, self.clock())

    async def start(self, profile: WorkerProfile) -> None:
        """Registers a worker who sent /start, the one way to turn announcements back on
        after /stop."""
        await self.workers.upsert_worker(profile, self.clock(), notify=True)

    async def mark_unreachable(self, worker_id: int) -> None:
        await self.workers.mark_unreachable(worker_id)

    async def pause_notifications(self, worker_id: int) -> bool:
        return await self.workers.set_notify(worker_id, False)

    async def next_task(self, worker_id: int) -> Shown:
        """The worker's open or next task; else the next question of an exam that stands
        between them and a batch (or why they must wait to retry one); else a batch that
        closed to them, or None."""
        issued = await self.tasks.run(
            partial(loop.current_or_next, worker_id=worker_id, now=self.clock(), ttl=self.ttl)
        )
        if issued.task is not None:
            return issued.task
        question = await self.exams.next_question(worker_id, self.clock())
        if question is None and issued.closed is not None:
            return Closed(issued.closed)
        return question

    async def answer_exam(self, submission: Submission, item_id: int) -> ExamResult:
        return await self.exams.answer(submission, item_id, self.clock())

    async def dispute(self, attempt_id: int, worker_id: int, item_id: int) -> bool:
        """Records that the worker thinks a training question's answer is wrong; False when
        the question is not one they missed."""
        return await self.exams.dispute(attempt_id, worker_id, item_id, self.clock())

    async def open_task(self, worker_id: int) -> Task | None:
        return await self.tasks.open_task(worker_id, self.clock())

    async def answer(self, submission: Submission) -> Outcome:
        return await self.tasks.run(
            partial(loop.submit, submission=submission, now=self.clock(), ttl=self.ttl)
        )

    async def skip(self, assignment_id: int, worker_id: int) -> Outcome:
        now = self.clock()
        return await self.tasks.run(
            lambda unit: loop.skip(unit, assignment_id, worker_id, now, self.ttl)
        )

    async def report(self, assignment_id: int, worker_id: int, problem: Problem) -> Outcome:
        """Gives the task back like a skip, with the worker's report of what is wrong with it.
        A report never counts against the worker who made it."""
        now = self.clock()
        return await self.tasks.run(
            lambda unit: loop.report(unit, assignment_id, worker_id, problem, now, self.ttl)
        )

    async def unshowable(self, worker_id: int, task: Task) -> Shown:
        """Takes out an item whose card Telegram refuses (an image it cannot fetch, a file
        gone since the import): the item is broken, handed out no more until a coordinator
        restores it, and the worker's task on it is released as if it had never been handed
        out. No answer, no pay, and not the worker's fault: no skip and no gold given back
        (gold owed stays owed, as after a skip). Returns what the worker gets instead."""
        now = self.clock()
        await self.tasks.run(lambda unit: loop.withdraw_unshowable(unit, task.assignment_id, now))
        return await self.next_task(worker_id)

    async def expire_stale(self) -> int:
        return await self.tasks.expire(self.clock())

    async def refresh_medians(self) -> None:
        await self.tasks.refresh_medians()

    async def reinstate(self, worker_id: int, batch_id: int, *, by: int | None = None) -> bool:
        """Lets a suspended worker back into a batch with a fresh record, and tells them; the
        same for the chat (`by`, the coordinator) and the command line. False when they were
        not suspended there; BatchNotFound for a batch that does not exist."""
        return await self.tasks.reinstate(worker_id, batch_id, self.clock(), by=by)

    async def remember_image(self, item_id: int, file_id: str) -> None:
        await self.tasks.remember_image(item_id, file_id)

    async def card_shown(self, worker_id: int, card: int, live: int | None = None) -> int | None:
        """Makes `card` the worker's one live card, the only one whose buttons act; returns the
        card it retires (whose buttons must go), if any. `live` is the live card as read with the
        worker's tap (Outcome.card): a card shown where the worker tapped their live card stays
        live, and that costs no read and no write, so an answer stays one transaction."""
        if card == live:
            return None
        retired = await self.workers.swap_card(worker_id, card)
        return None if retired == card else retired

    async def stats(self, worker_id: int) -> WorkerStats:
        now = self.clock()
        return await self.workers.worker_stats(worker_id, day_start=now - now % 86400)
