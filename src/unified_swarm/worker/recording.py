"""The outcome path of `Worker` (runtime.py): record each finished attempt with its fencing
token, and never drop a result silently.

An outcome call answered 5xx, garbled, or not at all is sent again with the same payload
(complete and fail are idempotent per fencing token) until the lease ends, as the worker's
lease book knows it, or the record budget runs out. An outcome still unanswered then is
*parked*: while a heartbeat still lists its lease it is sent again (leases.py never calls
it a stray), and once none does, it is lost: logged as an error naming the task and the
token, counted in `Stats.unrecorded`, and the worker exits `WorkerExit.UNRECORDED`. Only an
outcome still failing after the whole budget, with its lease held, is given back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ..client import AsyncClient
from ..client.types import JSON, Claimed, Usage
from ..errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    SwarmError,
    Unauthorized,
)
from .config import WorkerConfig
from .executors.base import SplitInto, TaskFailed
from .executors.python import describe_exception
from .leases import Key, LeaseBook, Review
from .records import (
    Completed,
    Failed,
    Mode,
    Outcome,
    Parked,
    Released,
    Run,
    Splitting,
    Stats,
    WorkerExit,
    transient,
    verb,
)


class OutcomePath:
    """The `Worker` methods that record outcomes (a mixin: the state is the worker's)."""

    config: WorkerConfig
    log: logging.LoggerAdapter[logging.Logger]
    stats: Stats
    book: LeaseBook
    mode: Mode
    exit_code: WorkerExit
    _session: AsyncClient | None
    _parked: dict[Key, Parked]
    _resending: set[asyncio.Task[None]]
    #: the worker's: how many tasks a complete may claim next, and starting those claimed
    _next_wanted: Callable[[], int]
    _took: Callable[[list[Claimed]], None]

    async def _record(self, run: Run, outcome: Outcome, first_try: float) -> bool:
        """Complete or fail the attempt with its fencing token; True once that is settled
        (recorded, or refused for good). A 5xx, a garbled answer or no answer is retried
        with the same payload (the call is idempotent per token) until the lease ends or
        the record budget runs out; False then: the outcome is parked (see `_on_beat`)."""
        budget = 5.0 if self.mode is Mode.ABORTING else self.config.record_budget
        pause = 0.1
        while True:
            try:
                await self._send_outcome(run, outcome)
                return True
            except (PayloadTooLarge, InvalidInput) as exc:
                if run.usage is not None:  # a figure the server would not take: keep the
                    run.usage = None       # outcome, drop the figures, send it again
                    self.log.warning("usage of %s refused (%s); sent without it",
                                     run.task["id"], exc.message)
                    continue
                if isinstance(outcome, Failed | Released):
                    self.log.error("%s of %s refused: %s", verb(outcome), run.task["id"],
                                   exc.message)
                    return True
                what = "split" if isinstance(outcome, Splitting) else "result"
                outcome = Failed(f"the {what} was refused: {exc.message}", False)
            except SwarmError as exc:
                if not transient(exc):
                    return self._refused(run, outcome, exc)
                # the lease ends a TTL after its last renewal; one more heartbeat interval
                # lets a beat confirm it is gone (or renew it: then keep trying)
                now = time.monotonic()
                until = min(first_try + budget,
                            self.book.lease_end(run.key) + self.config.heartbeat_interval)
                if run.lease_lost or now + pause > until:
                    self.log.warning("%s of %s (token %d) not recorded before its lease seems "
                                     "over (%s: %s); sending it again while the server still "
                                     "lists the lease", verb(outcome), run.task["id"],
                                     run.token, exc.code, exc.message)
                    return False
                self.log.warning("%s of %s (token %d) not recorded yet (%s: %s); retrying "
                                 "in %.1f s", verb(outcome), run.task["id"], run.token,
                                 exc.code, exc.message, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, max(0.1, self.config.heartbeat_interval / 2))

    async def _send_outcome(self, run: Run, outcome: Outcome) -> None:
        assert self._session is not None
        task_id, seconds = run.task["id"], time.monotonic() - run.started
        if isinstance(outcome, Completed):
            await self._complete(task_id, run.token, outcome.result, run.usage)
            self.stats.completed += 1
            self.log.info("completed %s in %.2f s", task_id, seconds)
        elif isinstance(outcome, Splitting):
            done = await self._session.split(task_id, run.token, outcome.subtasks,
                                             merge=outcome.merge)
            self.stats.split += 1
            self.log.info("split %s into %d subtask(s) after %.2f s", task_id,
                          len(done["subtasks"]), seconds)
        elif isinstance(outcome, Released):
            await self._session.release(task_id, run.token, outcome.note)
            self.stats.released += 1
            self.log.warning("preempted: gave back %s (token %d) after %.2f s with note %r",
                             task_id, run.token, seconds, outcome.note)
        else:
            rec = await self._session.fail(task_id, run.token, outcome.error,
                                           retry=outcome.retry, usage=run.usage)
            self._count_failure(run, outcome, seconds, rec["task"]["status"])

    async def _complete(self, task_id: str, token: int, result: JSON,
                        usage: Usage | None = None) -> None:
        """Complete, and claim the next task in the same call while this worker takes work
        (one request per task); what it claims is in the lease book like any claim."""
        assert self._session is not None
        then = self._next_wanted()
        if not then:
            await self._session.complete(task_id, token, result, usage=usage)
            return
        call = self.book.call_started(time.monotonic())
        claimed: list[Claimed] = []
        try:
            rec = await self._session.complete(task_id, token, result, claim_next=then,
                                               usage=usage)
            claimed = rec.get("claimed", [])  # a server before batches claims nothing
        finally:
            self.book.calls_ended(call, [(c["task"]["id"], c["lease"]["fencing_token"])
                                         for c in claimed], time.monotonic())
        self._took(claimed)

    def _refused(self, run: Run, outcome: Outcome, exc: SwarmError) -> bool:
        """A final answer other than success: the outcome is settled, unrecorded."""
        task_id, call = run.task["id"], verb(outcome)
        if isinstance(exc, Conflict | Forbidden):
            self.stats.refused += 1
            self.log.warning("%s of %s refused by the server (%d %s: %s): the lease was "
                             "lost, so this result is dropped and not retried", call,
                             task_id, exc.status, exc.code, exc.message)
        elif isinstance(exc, Unauthorized | NotFound):
            self.log.error("%s of %s refused: this session is gone (%s)", call, task_id,
                           exc.message)
        else:
            self.log.error("%s of %s failed: %s: %s", call, task_id, exc.code, exc.message)
        return True

    def _unrecorded(self, run: Run, outcome: Outcome, why: str) -> None:
        """The outcome is lost for good: say so loudly, count it, and exit non-zero."""
        self.stats.unrecorded += 1
        if self.exit_code is WorkerExit.OK:
            self.exit_code = WorkerExit.UNRECORDED
        self.log.error("the %s of %s (token %d) could not be recorded: %s", verb(outcome),
                       run.task["id"], run.token, why)

    async def _resend(self, parked: Parked) -> None:
        """A heartbeat still lists a parked attempt's lease: send its outcome again."""
        run, key = parked.run, parked.run.key
        budget = 5.0 if self.mode is Mode.ABORTING else self.config.record_budget
        if time.monotonic() - parked.first_try > budget:
            self._parked.pop(key, None)
            self.book.abandon(key)  # the next heartbeat gives the lease back
            self._unrecorded(run, parked.outcome, f"still failing after {budget:.0f} s; the "
                             "lease is given back")
            return
        parked.sending = True
        try:
            settled = await self._record(run, parked.outcome, parked.first_try)
        finally:
            parked.sending = False
        if settled:
            self._parked.pop(key, None)
            self.log.info("the outcome of %s (token %d) is settled after all", key[0], key[1])
        self.book.concluded(key, time.monotonic(), settled=settled)

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._resending.add(task)
        task.add_done_callback(self._resending.discard)

    def _count_failure(self, run: Run, outcome: Failed, seconds: float, status: str) -> None:
        now = "back in the queue" if status == "ready" else f"now {status}"
        if outcome.released:
            self.stats.released += 1
            self.log.warning("gave back %s (token %d) after %.2f s; %s", run.task["id"],
                             run.token, seconds, now)
        else:
            self.stats.failed += 1
            first = outcome.error.strip().splitlines()[0] if outcome.error.strip() else ""
            self.log.warning("attempt %d of %s failed after %.2f s (%s): %s",
                             run.task["attempts"], run.task["id"], seconds, now, first[:300])

    def _review_outcomes(self, review: Review) -> None:
        """What a heartbeat says of parked outcomes: lost for good, or to send again."""
        for key in review.gone:
            parked = self._parked.pop(key, None)
            if parked is not None:
                self._unrecorded(parked.run, parked.outcome, "its lease ended first")
        for key in review.unsettled:
            parked = self._parked.get(key)
            if parked is not None and not parked.sending:
                self._background(self._resend(parked))

    async def _settle_parked(self) -> None:
        """At exit: wait for outcomes being sent again; what is still parked is lost."""
        if self._resending:
            await asyncio.wait(list(self._resending))
        for parked in self._parked.values():
            self._unrecorded(parked.run, parked.outcome, "the worker stopped before the "
                             "server answered")
        self._parked.clear()


def outcome_of(run: Run, done: asyncio.Task[JSON], worker: str) -> Outcome:
    """What a finished attempt comes to, from how its executor's task ended: given back
    (cancelled: a preemption releases it, a stop fails it for a retry), failed, split, or
    completed."""
    if done.cancelled() and run.preempted:
        return Released(_note_of(run.last_progress))
    if done.cancelled():
        return Failed(f"given back by {worker}: the worker was stopped before "
                      "the task finished", retry=True, released=True)
    exc = done.exception()
    if isinstance(exc, TaskFailed):
        return Failed(exc.message, exc.retry)
    if exc is not None:
        return Failed(describe_exception(exc))
    result = done.result()
    if isinstance(result, SplitInto):
        return Splitting(result.subtasks, result.merge)
    return Completed(result)


def _note_of(progress: tuple[float, str | None] | None) -> str | None:
    """A preempted attempt's handoff note: its last progress line, as the next holder reads
    it (None when it reported none)."""
    if progress is None:
        return None
    value, message = progress
    return f"{value:.0%}" + (f": {message}" if message else "")
