"""The Orchestrator: every use-case of the swarm, and the one face the interfaces see.

The API (and any other interface) calls only this: every read and every write goes through
it, and it checks every input cap (core/limits.py) before the store is touched. It is put
together from three parts: `Auth` (who is calling), the `Scheduler` (which task a session
gets: core/scheduling.py) and the `Coordinator` (reaper, matcher and leader lease:
core/coordinator.py); the long-poll waiters and the interrupt in force live here. State
lives only in the store, so a restarted orchestrator, or another replica, carries on where
this one stopped.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from .. import usage as usage_rule
from ..config import Settings
from ..errors import (
    Conflict,
    Contended,
    InvalidInput,
    KeyReused,
    NotClaimable,
    NotFound,
    SwarmError,
    TaskTaken,
)
from ..lifecycle import FINAL, HELD
from ..models import (
    JSON,
    Attempt,
    Claimed,
    Clock,
    Counts,
    Event,
    EventListener,
    Heartbeat,
    Idem,
    Interrupt,
    KnowledgeEntry,
    Placed,
    Recorded,
    Session,
    SessionStatus,
    Split,
    Task,
    TaskSpec,
    TaskStatus,
)
from ..store.base import Store, StoreClock
from ..tokens import hash_token, new_token
from . import collab, context, idempotency, learned, limits, planning
from . import usage as spending
from .auth import Auth, Principal
from .brain import Brain
from .coordinator import PAST_DUE, Coordinator
from .emergency import Placement, idle_order, victims
from .leader import LeaderLease
from .scheduling import Policy, Scheduler
from .waiters import Waiter, Waiters

log = logging.getLogger("unified_swarm.orchestrator")
#: sessions (or victims) an emergency tries in turn when a compare-and-set loses its race
EMERGENCY_TRIES = 5
#: running tasks an emergency reads to choose a victim among
RUNNING_READ = 1000
#: events that make a task claimable, and so wake one matching waiter
READY_EVENTS = frozenset({"task.ready", "task.requeued"})
#: events after which a task never runs again: an emergency's interrupt lifts with them
ENDED_EVENTS = frozenset({"task.completed", "task.failed", "task.cancelled"})

T = TypeVar("T")
K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Success:
    """One success of a batch (POST /work/complete with `outcomes`)."""

    task_id: str
    fencing_token: int
    result: JSON = None
    #: what the attempt spent (a usage report: core/usage.py checks it)
    usage: JSON = None


@dataclass(frozen=True, slots=True)
class Directives:
    assignments: list[Task]
    interrupt: Interrupt | None
    drain: bool
    #: leases to checkpoint and release: (task id, seconds of grace left)
    preempt: list[tuple[str, float]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SessionSpec:
    capabilities: list[str]
    id: str | None = None
    name: str | None = None
    max_concurrent_tasks: int | None = None
    heartbeat_interval: float | None = None
    metadata: dict[str, JSON] | None = None


@dataclass(frozen=True, slots=True)
class Health:
    store: str
    replica_id: str
    leader: bool
    #: None while the store answers, else why not
    error: str | None = None


class Orchestrator:
    """Use-cases over a Store. `clock` is injected so tests can move time by hand."""

    def __init__(self, store: Store, settings: Settings, operator_token: str,
                 clock: Clock, policy: Policy | None = None) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.auth = Auth(store, operator_token)
        self._register_secret = idempotency.secret(operator_token)
        #: the learned model and the swarm's picture, kept whichever policy chooses (the
        #: model's numbers are shown on sessions either way)
        self.brain = Brain()
        if settings.scheduler_prior:
            self.brain.prior = learned.load_prior(settings.scheduler_prior)
        store.add_listener(self.brain.apply)  # first: waiters then wake to a current picture
        self.learning = learned.Learning(store, self.brain)
        self.scheduler: Scheduler | learned.LearnedScheduler = (
            learned.LearnedScheduler(store, self.brain)
            if policy is None and settings.scheduler == "learned" else Scheduler(store, policy))
        self.coordinator = Coordinator(store, settings, clock, self.scheduler,
                                       lambda: self.interrupt is not None)
        self.waiters = Waiters()
        #: session id -> its one waiting offer request (GET /work/offer): a newer one
        #: supersedes it (DESIGN: one waiter per session, on this replica)
        self.offer_waiters: dict[str, Waiter] = {}
        self.interrupt: Interrupt | None = None
        if clock is time.time and isinstance(store, StoreClock):
            store.use_store_clock()  # one clock for leases: the shared store's (DESIGN)
        self._stopping = False
        self._running = False
        self._background: set[asyncio.Task[None]] = set()
        store.add_listener(self._on_events)
        store.add_listener(self.coordinator.on_events)

    @property
    def lease(self) -> LeaderLease:
        return self.coordinator.lease

    @property
    def leader(self) -> bool:
        """True while this process runs the coordination loop (always, on SQLite)."""
        return self.lease.leading

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, *, run_loop: bool = True) -> None:
        self.interrupt = await self.store.get_interrupt()
        if self.interrupt is not None and self.interrupt.task_id is not None:
            await self._lift_emergency(self.interrupt.task_id)  # it may have ended meanwhile
        await learned.load(self.store, self.brain)
        if run_loop:
            self._running = True
            await self.coordinator.start()

    async def stop(self) -> None:
        self._stopping = True
        self.waiters.wake_all()
        if self._running:
            await self.coordinator.stop()
        else:
            await self.lease.resign()

    async def tick(self, now: float) -> float | None:
        """One coordination pass at `now` (see Coordinator.tick)."""
        return await self.coordinator.tick(now)

    def add_listener(self, listener: EventListener) -> None:
        """Hear every committed event of the swarm (the event hub, the metrics)."""
        self.store.add_listener(listener)

    async def authenticate(self, token: str | None) -> Principal:
        return await self.auth.authenticate(token)

    def idem(self, caller: Principal, route: str, key: str, path: str, body: bytes) -> Idem:
        """The Idempotency-Key `key` of this caller on `route` (core/idempotency.py)."""
        return idempotency.make(caller.name, route, key, path, body,
                                self.settings.idempotency_ttl)

    async def _once(self, idem: Idem | None, kind: type[K],
                    act: Callable[[], Awaitable[T]]) -> T | K:
        """Run `act` once per Idempotency-Key: the answer kept under the key when there is
        one, else `act`, whose store step keeps its answer. A conflict (AlreadyExists,
        NotClaimable, TaskTaken) may come from a try of the same key that won the race
        (a retry sent while the first try still ran): then that try's answer is ours."""
        if idem is None:
            return await act()
        kept = await self._kept(idem, kind)
        if kept is not None:
            return kept
        try:
            return await act()
        except KeyReused:
            raise
        except Conflict:
            kept = await self._kept(idem, kind)
            if kept is None:
                raise
            return kept

    async def _kept(self, idem: Idem, kind: type[K]) -> K | None:
        kept = await self.store.recall(idem, self.clock())
        if kept is not None and not isinstance(kept, kind):  # another route: never, by scope
            raise KeyReused(f"this Idempotency-Key answered another kind of call "
                            f"({type(kept).__name__})")
        return kept

    # -- sessions ------------------------------------------------------------------------

    async def register(self, spec: SessionSpec,
                       idem: Idem | None = None) -> tuple[Session, str]:
        limits.check_size(spec.metadata, self.settings.max_input_bytes, "metadata")
        sid = spec.id or f"session-{secrets.token_hex(8)}"
        limits.check_id(sid, "session id")
        for cap in spec.capabilities:
            limits.check_name(cap, "capability")
        interval = spec.heartbeat_interval or self.settings.heartbeat_interval
        now = self.clock()
        session = Session(
            id=sid,
            name=spec.name or sid,
            capabilities=list(dict.fromkeys(spec.capabilities)),
            status=SessionStatus.IDLE,
            max_concurrent_tasks=spec.max_concurrent_tasks or self.settings.max_concurrent_tasks,
            heartbeat_interval=interval,
            last_heartbeat=now,
            registered_at=now,
            metadata=spec.metadata or {},
        )
        # a keyed register derives its token, so its retry can answer it again without the
        # store keeping it (core/idempotency.py)
        token = new_token() if idem is None else idempotency.session_token(
            self._register_secret, idem)
        joined = await self._once(idem, Session, lambda: self.store.register_session(
            session, hash_token(token), now, idem))
        return joined, token

    async def heartbeat(self, session_id: str, status: str | None) -> tuple[Heartbeat, Directives]:
        now = self.clock()
        beat = await self.store.heartbeat(session_id, now, status)
        preempt = [(lease.task_id, max(0.0, lease.preempt_at - now)) for lease in beat.held
                   if lease.preempt_at is not None]
        return beat, Directives(beat.assignments, self.interrupt,
                                beat.session.status == SessionStatus.DRAINING, preempt)

    async def leave(self, session_id: str) -> Session:
        return await self.store.leave_session(session_id, self.clock(), "left")

    async def drain(self, session_id: str) -> Session:
        return await self.store.set_draining(session_id, self.clock())

    async def get_session(self, session_id: str) -> Session:
        s = await self.store.get_session(session_id)
        if s is None:
            raise NotFound(f"session {session_id!r} does not exist")
        return learned.described(s, self.brain, self.clock())

    async def list_sessions(self, status: SessionStatus | None = None) -> list[Session]:
        now = self.clock()
        return [learned.described(s, self.brain, now) for s in await self.store.list_sessions()
                if status is None or s.status == status]

    async def set_interrupt(self, reason: str | None, by: str,
                            task_id: str | None = None) -> Interrupt | None:
        value = None if reason is None else Interrupt(reason, self.clock(), by, task_id)
        await self.store.set_interrupt(value, self.clock())
        self.interrupt = value
        return value

    # -- tasks ---------------------------------------------------------------------------

    async def add_tasks(self, specs: Sequence[TaskSpec],
                        idem: Idem | None = None) -> list[Task]:
        for spec in specs:
            limits.check_size(spec.input, self.settings.max_input_bytes,
                              f"input of task {spec.id or spec.type!r}")
        if not specs:
            raise InvalidInput("a batch needs at least one task")
        if len(specs) > self.settings.max_batch:
            raise InvalidInput(f"a batch holds at most {self.settings.max_batch} tasks")
        return await self._once(idem, list, lambda: planning.add_tasks(
            self.store, specs, self.clock, self.settings, idem))

    async def get_task(self, task_id: str) -> tuple[Task, list[Attempt]]:
        """One task with its history and the context its holder gets (notes included)."""
        task = await self.store.get_task(task_id)
        if task is None:
            raise NotFound(f"task {task_id!r} does not exist")
        task.context = await context.build(self.store, task, self.settings.max_context_bytes)
        return task, await self.store.history(task_id)

    async def list_tasks(self, *, status: str | None = None, capability: str | None = None,
                         session: str | None = None, limit: int = 100,
                         cursor: str | None = None) -> tuple[list[Task], str | None]:
        return await self.store.list_tasks(status=status, capability=capability,
                                           session=session, limit=limit, cursor=cursor)

    async def request_work(self, session: Session, wait: float,
                           waiter: Waiter | None = None,
                           idem: Idem | None = None) -> Claimed | None:
        """Claim the best task for the session, waiting up to `wait` seconds for one.
        With `idem`, the claim that takes a task keeps its answer under the key, and a
        retry gets that claim."""
        got = await self.request_batch(session, wait, None, waiter, idem)
        return got[0] if got else None

    async def request_batch(self, session: Session, wait: float, n: int | None,
                            waiter: Waiter | None = None,
                            idem: Idem | None = None) -> list[Claimed]:
        """Claim up to `n` tasks for the session in one store step (None: one, by the
        single-claim path), waiting up to `wait` seconds for the first to be ready. An
        Idempotency-Key guards both: a retry gets the first answer, with no second lease.

        The waiter is parked before the first attempt, so a task made ready while that
        attempt runs still wakes it: no lost wake-up, no polling.
        """
        limits.check_wait(wait)
        if n is not None:
            limits.check_batch_claim(n)
            got = await self._once(idem, list, lambda: self._request(
                session, wait, waiter, n, idem))
        else:
            one = await self._once(idem, Claimed, lambda: self._request_one(
                session, wait, waiter, idem))
            got = [] if one is None else [one]
        # after the key's answer too: a retry gets the context as it is now
        return [await self._handed(c) for c in got]

    async def _request_one(self, session: Session, wait: float, waiter: Waiter | None,
                           idem: Idem | None) -> Claimed | None:
        got = await self._request(session, wait, waiter, None, idem)
        return got[0] if got else None

    async def _request(self, session: Session, wait: float, waiter: Waiter | None,
                       n: int | None, idem: Idem | None) -> list[Claimed]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait, self.settings.max_wait)
        waiter = waiter or Waiter(session.id, frozenset(session.capabilities))
        self.waiters.park(waiter)
        self.brain.waiting.add(session.id)
        try:
            while not (self._stopping or waiter.abandoned):
                got = await self._try_claim(session, waiter, deadline > loop.time(), n, idem)
                if got:
                    return got
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                try:
                    await asyncio.wait_for(waiter.event.wait(), self._patience(session,
                                                                               remaining))
                except TimeoutError:
                    if loop.time() >= deadline:
                        return []
            return []
        finally:
            self.waiters.leave(waiter)
            if not self.waiters.has_session(session.id):
                self.brain.waiting.discard(session.id)
            if waiter.woken_for is not None:  # woken but leaving: hand the wake-up on
                self.waiters.wake(waiter.woken_for)

    async def _try_claim(self, session: Session, waiter: Waiter, may_wait: bool,
                         n: int | None, idem: Idem | None) -> list[Claimed]:
        """One attempt of a long-poll; a wake-up it did not use is passed on."""
        woken_for, waiter.woken_for = waiter.woken_for, None
        offered, waiter.offered = waiter.offered, False
        proposal, waiter.proposal = waiter.proposal, None
        waiter.event.clear()
        if self.interrupt is not None:
            one = await self._claim_emergency(session)
            if one is not None or self.interrupt is not None:
                return [] if one is None else [one]
            # (the interrupt had outlived its task and was lifted: the queue is open again)
        try:
            got = await self._claim_for(session, True if offered else None, proposal, n, idem)
        except Contended:
            if not may_wait:
                raise
            waiter.event.set()  # ask again at once: there is work, others were quicker
            return []
        if got and woken_for is not None and \
                all(c.task.required_capability != woken_for for c in got):
            self.waiters.wake(woken_for)  # pass on what we were woken for
        return got

    async def _claim_for(self, session: Session, offers: bool | None, proposal: str | None,
                         n: int | None, idem: Idem | None) -> list[Claimed]:
        """The scheduler's claim: one task (n None), or a batch in one store step."""
        sched = self.scheduler
        if n is not None:
            # no more than the session has room for: a learned choice it cannot take would
            # only be held from others for nothing
            room = max(1, min(n, session.max_concurrent_tasks - len(session.current_tasks)))
            if isinstance(sched, learned.LearnedScheduler):
                return await sched.claim_many(session, self.clock, room, offers, proposal,
                                              idem)
            return await sched.claim_many(session, self.clock, room, offers, idem)
        if isinstance(sched, learned.LearnedScheduler):
            one = await sched.claim(session, self.clock, offers, proposal, idem)
        else:
            one = await sched.claim(session, self.clock, offers, idem)
        return [] if one is None else [one]

    async def offer_work(self, session: Session, wait: float,
                         waiter: Waiter | None = None) -> Task | None:
        """Offer the best task to the session without claiming it, waiting up to `wait`
        seconds for one: the task becomes `assigned` to it for `task_claim_timeout` (it
        claims it with `claim`, or the reaper puts it back in the queue). An offer already
        standing for the session is answered again, so a retried call gets the same one.

        One waiter per session: a request that waits (`wait > 0`) supersedes the session's
        earlier waiting one, which answers None at once. The choice is the scheduler's, as
        for a claim; the waiter is parked before the first look, as in `request_work`.
        """
        limits.check_wait(wait)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait, self.settings.max_wait)
        waiter = waiter or Waiter(session.id, frozenset(session.capabilities))
        if wait > 0:
            older = self.offer_waiters.get(session.id)
            if older is not None:
                older.abandon()
            self.offer_waiters[session.id] = waiter
        self.waiters.park(waiter)
        self.brain.waiting.add(session.id)
        try:
            await self.store.check_in(session.id, self.clock())  # asking proves it alive
            while not (self._stopping or waiter.abandoned):
                got = await self._try_offer(session, waiter, deadline > loop.time())
                if got is not None:
                    return got
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(waiter.event.wait(), self._patience(session,
                                                                               remaining))
                except TimeoutError:
                    if loop.time() >= deadline:
                        return None
            return None
        finally:
            if self.offer_waiters.get(session.id) is waiter:
                del self.offer_waiters[session.id]
            self.waiters.leave(waiter)
            if not self.waiters.has_session(session.id):
                self.brain.waiting.discard(session.id)
            if waiter.woken_for is not None:
                self.waiters.wake(waiter.woken_for)

    async def _try_offer(self, session: Session, waiter: Waiter,
                         may_wait: bool) -> Task | None:
        """One look of an offer request: the offer standing for the session, else the task
        a one-solve match proposed for it, else the scheduler's choice, offered now."""
        woken_for, waiter.woken_for = waiter.woken_for, None
        proposal, waiter.proposal = waiter.proposal, None
        waiter.offered = False
        waiter.event.clear()
        if self.interrupt is not None:
            return None
        for c in await self.store.offered_to(session.id):
            task = await self.store.get_task(c.id)
            if (task is not None and task.status == TaskStatus.ASSIGNED
                    and task.assigned_to == session.id):
                return task
        until = self.clock() + self.settings.task_claim_timeout
        if proposal is not None:
            try:
                offered = await self.store.offer(session.id, proposal, self.clock(), until)
                if offered is not None:
                    return offered
            except TaskTaken:
                self.brain.lost(proposal)
        try:
            got = await self.scheduler.offer(session, self.clock, until)
        except Contended:
            if not may_wait:
                raise
            waiter.event.set()  # there is work, others were quicker: look again at once
            return None
        if got is not None and woken_for not in (None, got.required_capability):
            self.waiters.wake(woken_for)
        return got

    def _patience(self, session: Session, remaining: float) -> float:
        """How long a parked request sleeps before it looks again without news: until the
        request ends, or sooner when a task waits for a faster session only until then."""
        at = self.scheduler.look_again.get(session.id) if isinstance(
            self.scheduler, learned.LearnedScheduler) else None
        if at is None:
            return remaining
        return min(remaining, max(at - self.clock(), 0.0) + PAST_DUE)

    async def claim(self, session: Session, task_id: str, idem: Idem | None = None) -> Claimed:
        return await self._handed(await self._once(
            idem, Claimed, lambda: self._claim(session, task_id, idem)))

    async def _claim(self, session: Session, task_id: str, idem: Idem | None) -> Claimed:
        if self.interrupt is not None and self.interrupt.task_id != task_id:
            raise NotClaimable(f"the swarm is interrupted: {self.interrupt.reason}")
        return await self.store.claim(session.id, task_id, self.clock(),
                                      self.brain.predict(session.id, task_id), idem)

    async def _handed(self, claimed: Claimed) -> Claimed:
        """A claimed task as its holder gets it: with its context, and told whether it is
        big enough to split (estimated over `collaboration_threshold` hours)."""
        t = claimed.task
        t.context = await context.build(self.store, t, self.settings.max_context_bytes,
                                        claimed.notes)
        t.split_suggested = (t.estimated_hours or 0.0) > self.settings.collaboration_threshold
        return claimed

    async def split(self, session: Session, task_id: str, token: int,
                    subtasks: Sequence[TaskSpec], merge: collab.Merge) -> Split:
        """The holder hands its task to subtasks (core/collab.py); the parent waits for
        them and completes with their merged results."""
        for spec in [*subtasks, *([merge.task] if merge.task else [])]:
            limits.check_size(spec.input, self.settings.max_input_bytes,
                              f"input of subtask {spec.id or spec.type!r}")
        return await collab.split(self.store, self.settings, self.clock, session.id, task_id,
                                  token, subtasks, merge)

    async def progress(self, session: Session, task_id: str, token: int, value: float,
                       message: str | None, usage: JSON = None,
                       rate_limit: JSON = None) -> Recorded:
        """Progress under the lease (renewing it). `usage`: what the attempt spent so far;
        `rate_limit`: its agent waits out an API rate limit now (the session shows
        `rate_limited` until a report without one)."""
        if not 0.0 <= value <= 1.0:
            raise InvalidInput("progress must be within 0..1")
        spent = spending.checked(usage)
        now = self.clock()
        limited = spending.rate_limited(rate_limit, task_id, now)
        return await self.store.progress(session.id, task_id, token, value, message, now,
                                         spent, limited)

    async def complete(self, session: Session, task_id: str, token: int,
                       result: JSON, usage: JSON = None) -> Recorded:
        limits.check_size(result, self.settings.max_input_bytes, "result")
        spent = spending.checked(usage)
        done = await self.store.complete(session.id, task_id, token, result, self.clock(),
                                         spent)
        await self.learning.after(session.id, done.task.required_capability, done, True,
                                  self.clock())
        return done

    async def complete_batch(self, session: Session, outcomes: Sequence[Success],
                             then: int | None = None) -> tuple[list[Recorded | SwarmError],
                                                               list[Claimed]]:
        """Record several outcomes for one session, each on its own (one lost lease does not
        lose the others: each answer is its Recorded or its refusal), then, with `then`,
        claim up to that many next tasks without waiting (a busy worker's one request per
        task). Each outcome is idempotent per (task, fencing token), so a retried batch never
        records twice; its `then` claims again, as a new request would. A call whose every
        outcome was refused claims nothing: its caller lost those leases (paused or cut off
        past them), and the one-outcome form answers with the refusal alone, so a task
        claimed then would be held by a session that never heard of it."""
        limits.check_batch_claim(len(outcomes), "a batch of outcomes")
        if then is not None:
            limits.check_batch_claim(then)
        for o in outcomes:  # malformed input refuses the whole call, before anything is written
            limits.check_id(o.task_id, "task id")
            limits.check_size(o.result, self.settings.max_input_bytes, "result")
            spending.checked(o.usage)
        # concurrently: the store groups them (SQLite: one commit; Redis: one round each,
        # in flight together)
        answers = await asyncio.gather(*(self._complete_one(session, o) for o in outcomes))
        if then is None or self.interrupt is not None or \
                all(isinstance(a, SwarmError) for a in answers):
            return list(answers), []
        ended = {a.task.id for a in answers if isinstance(a, Recorded)}
        free = replace(session, current_tasks=[t for t in session.current_tasks
                                               if t not in ended])
        try:
            claimed = await self._claim_for(free, None, None, then, None)
        except (NotClaimable, Contended):  # e.g. draining, or at capacity: outcomes stand
            claimed = []
        return list(answers), [await self._handed(c) for c in claimed]

    async def _complete_one(self, session: Session, o: Success) -> Recorded | SwarmError:
        try:
            return await self.complete(session, o.task_id, o.fencing_token, o.result, o.usage)
        except SwarmError as exc:
            return exc

    async def fail(self, session: Session, task_id: str, token: int, error: str,
                   retry: bool, usage: JSON = None) -> Recorded:
        spent = spending.checked(usage)
        failed = await self.store.fail(session.id, task_id, token, error, retry, self.clock(),
                                       spent)
        await self.learning.after(session.id, failed.task.required_capability, failed, False,
                                  self.clock())
        return failed

    async def cancel(self, task_id: str, reason: str) -> Task:
        return await self.store.cancel(task_id, self.clock(), reason)

    # -- preemption, release, input, emergency -------------------------------------------

    async def release(self, session: Session, task_id: str, token: int,
                      note: str | None) -> Recorded:
        """The holder lets go (a preemption honoured, or its own choice): not counted
        against max_attempts; its note reaches the next holder in `context.notes`."""
        return await self.store.release(session.id, task_id, token, note, self.clock())

    async def request_input(self, session: Session, task_id: str, token: int,
                            question: str) -> Recorded:
        return await self.store.request_input(session.id, task_id, token, question,
                                              self.clock())

    async def give_input(self, task_id: str, answer: str, by: str) -> Task:
        return await self.store.give_input(task_id, answer, by, self.clock())

    async def emergency(self, spec: TaskSpec, interrupt: bool, preempt: bool,
                        by: str, idem: Idem | None = None) -> tuple[Task, Placement]:
        """Add a task in the emergency class, tell everyone (`swarm.emergency`), stop new
        work elsewhere (`interrupt`, lifted when the task ends), and place it: offered to the
        best idle session able to take it, else (`preempt`) the best-fitting session running
        the least important task is preempted and takes it once it lets go.

        With an Idempotency-Key the whole answer is kept once it is made (`Store.keep`),
        and a retry gets it. The steps before that are guarded by the task's id: the
        client's, or one derived from the key, so a retry that comes while the first try
        still runs, or after it died midway, meets `already_exists` and acts no second
        time."""
        if spec.dependencies:
            raise InvalidInput("an emergency task cannot wait for dependencies")
        limits.check_size(spec.input, self.settings.max_input_bytes, "input of the task")
        if idem is None:
            return await self._emergency(spec, interrupt, preempt, by)
        if spec.id is None:
            spec.id = idempotency.task_id(idem)
        kept = await self._kept(idem, Placed)
        if kept is None:
            try:
                task, placed = await self._emergency(spec, interrupt, preempt, by)
            except Conflict:
                kept = await self._kept(idem, Placed)  # the first try kept it meanwhile
                if kept is None:
                    raise
            else:
                answer = await self.store.keep("emergency", idem, Placed(
                    task, placed.assigned_to, placed.preempted), self.clock())
                assert isinstance(answer, Placed)  # the first writer's, of this route
                kept = answer
        return kept.task, Placement(kept.assigned_to, kept.preempted)

    async def _emergency(self, spec: TaskSpec, interrupt: bool, preempt: bool,
                         by: str) -> tuple[Task, Placement]:
        (task,) = await planning.add_tasks(self.store, [spec], self.clock, self.settings,
                                           emergency=True)
        await self.store.record_event("swarm.emergency", {
            "task_id": task.id, "title": task.title,
            "required_capability": task.required_capability, "interrupt": interrupt,
            "preempt": preempt, "by": by}, self.clock())
        if interrupt:
            await self.set_interrupt(f"emergency: {task.title}", by, task.id)
            # a session waiting for work may have taken and finished the task before the
            # interrupt was set: its end was heard with no interrupt to lift, so look now
            await self._lift_emergency(task.id)
        placed = await self._place(task, preempt)
        return (await self.get_task(task.id))[0], placed

    async def _place(self, task: Task, preempt: bool) -> Placement:
        now = self.clock()
        cap = task.required_capability
        sessions = await self.store.list_sessions()
        taken = await self._taken_by(task.id)
        if taken is not None:  # a session waiting for work took it the moment it was added
            return Placement(assigned_to=taken)
        fit = lambda sid: self.brain.fit(sid, cap, now)  # noqa: E731
        for sid in idle_order(cap, sessions, fit)[:EMERGENCY_TRIES]:
            try:
                if await self.store.offer(sid, task.id, now,
                                          now + self.settings.task_claim_timeout):
                    return Placement(assigned_to=sid)
            except TaskTaken:
                break  # someone took the task itself meanwhile
            except NotClaimable:
                continue  # it took other work meanwhile: the next best
        taken = await self._taken_by(task.id)
        if taken is not None:
            return Placement(assigned_to=taken)
        if not preempt:
            return Placement()
        running, _ = await self.store.list_tasks(status="in_progress", limit=RUNNING_READ)
        by_id = {s.id: s for s in sessions}
        chosen = victims(cap, running, by_id, fit, self.settings.max_preemptions)
        for victim in chosen[:EMERGENCY_TRIES]:
            marked = await self.store.preempt(victim.id, victim.fencing_token,
                                              now + self.settings.preempt_grace, now)
            if marked is not None and marked.assigned_to is not None:
                return Placement(preempted=(marked.id, marked.assigned_to))
        return Placement()

    async def _taken_by(self, task_id: str) -> str | None:
        """The session holding the task (offered or claimed), if any."""
        t = await self.store.get_task(task_id)
        return t.assigned_to if t is not None and t.status in HELD else None

    async def _claim_emergency(self, session: Session) -> Claimed | None:
        """While an emergency's interrupt holds, a session asking for work may take that
        task alone (offered to it, or ready once a preempted holder let go)."""
        task_id = self.interrupt.task_id if self.interrupt is not None else None
        if task_id is None:
            return None
        try:
            return await self.store.claim(session.id, task_id, self.clock(),
                                          self.brain.predict(session.id, task_id))
        except (NotClaimable, NotFound):
            # held by another, or ended: if ended, the lift its end should have brought
            # may have failed (the store was away then); lift it here, or the swarm would
            # take nothing new for ever
            await self._lift_emergency(task_id)
            return None

    async def _lift_emergency(self, task_id: str) -> None:
        """The emergency task ended: lift its interrupt, unless another replaced it."""
        current = await self.store.get_interrupt()
        if current is None or current.task_id != task_id:
            return
        task = await self.store.get_task(task_id)
        if task is None or task.status in FINAL:
            await self.store.set_interrupt(None, self.clock())
            self.interrupt = None
            self.waiters.wake_all()

    def _later(self, job: Coroutine[None, None, None]) -> None:
        """Run a follow-up step off the event listener (which cannot await)."""
        task = asyncio.get_running_loop().create_task(job)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- knowledge -----------------------------------------------------------------------

    async def put_knowledge(self, topic: str, content: JSON, tags: list[str],
                            expected_version: int | None, by: Principal,
                            idem: Idem | None = None) -> KnowledgeEntry:
        limits.check_size(content, self.settings.max_input_bytes, "knowledge content")
        limits.check_topic(topic)
        return await self._once(idem, KnowledgeEntry, lambda: self.store.put_knowledge(
            topic, content, tags, expected_version, by.name, self.clock(), idem))

    async def get_knowledge(self, topic: str, version: int | None) -> KnowledgeEntry:
        entry = await self.store.get_knowledge(topic, version)
        if entry is None:
            what = f"version {version} of " if version is not None else ""
            raise NotFound(f"{what}knowledge topic {topic!r} does not exist")
        return entry

    async def list_knowledge(self, tag: str | None) -> list[KnowledgeEntry]:
        return await self.store.list_knowledge(tag)

    async def delete_knowledge(self, topic: str, expected_version: int | None,
                               by: Principal) -> KnowledgeEntry:
        return await self.store.delete_knowledge(topic, expected_version, by.name, self.clock())

    # -- the swarm -----------------------------------------------------------------------

    async def counts(self) -> Counts:
        return await self.store.counts()

    async def status(self) -> dict[str, JSON]:
        return status_view(await self.store.counts())

    def scheduler_view(self) -> dict[str, JSON]:
        """GET /swarm/scheduler: the policy, the model's prediction error and the decision
        latency (on this replica)."""
        return learned.report(self.scheduler, self.brain, self.settings)

    async def events_after(self, seq: int, limit: int) -> list[Event]:
        return await self.store.events_after(seq, limit)

    async def health(self) -> Health:
        """Liveness: which store, which replica, leading or not, and whether the store
        answers now (`error` says why not)."""
        health = Health(self.store.kind, self.settings.replica_id, self.leader)
        try:
            await self.store.ping()
        except SwarmError as exc:
            return Health(health.store, health.replica_id, health.leader, exc.message)
        return health

    def _on_events(self, events: Sequence[Event]) -> None:
        """Committed events (from any replica): wake waiters, follow the interrupt. Under
        the learned policy, tasks made ready are matched to the parked sessions in one solve
        and each chosen session wakes with its task; under fifo, one matching waiter wakes
        per task."""
        learning = isinstance(self.scheduler, learned.LearnedScheduler)
        ready = False
        for ev in events:
            d = ev.data
            if ev.type in READY_EVENTS or (ev.type == "task.added" and d.get("status") == "ready"):
                ready = True
                if not learning:
                    self.waiters.wake(d.get("required_capability"))
            elif ev.type == "task.assigned":
                self.waiters.wake_session(d["session_id"])
            elif ev.type == "swarm.interrupt":
                self._refresh_interrupt(d)
            elif ev.type in ENDED_EVENTS and self.interrupt is not None \
                    and self.interrupt.task_id == d.get("task_id"):
                self._later(self._lift_emergency(str(d["task_id"])))
        # the Brain finds the unwoken parked sessions through its capability index
        if learning and ready and self.interrupt is None and len(self.waiters):
            self.waiters.propose(self.brain.match(None, self.clock(), self.waiters.has_unwoken))

    def _refresh_interrupt(self, d: dict[str, JSON]) -> None:
        if d.get("active"):
            if (self.interrupt is None or self.interrupt.reason != d.get("reason")
                    or self.interrupt.task_id != d.get("task_id")):  # (titles repeat)
                task = d.get("task_id")
                self.interrupt = Interrupt(str(d.get("reason")), self.clock(), None,
                                           None if task is None else str(task))
        else:
            self.interrupt = None
            self.waiters.wake_all()


def status_view(c: Counts) -> dict[str, JSON]:
    """The seed's `metrics:global`, extended."""
    sessions, tasks = c.sessions, c.tasks
    idle, busy = sessions.get("idle", 0), sessions.get("busy", 0)
    draining = sessions.get("draining", 0)
    active = idle + busy + draining
    return {
        "total_sessions": sum(sessions.values()),
        "active_sessions": active,
        "idle_sessions": idle,
        "busy_sessions": busy,
        "draining_sessions": draining,
        "offline_sessions": sessions.get("offline", 0),
        "tasks_total": sum(tasks.values()),
        "tasks_completed": tasks.get("completed", 0),
        "tasks_pending": tasks.get("pending", 0),
        "tasks_ready": tasks.get("ready", 0),
        "tasks_assigned": tasks.get("assigned", 0),
        "tasks_in_progress": tasks.get("in_progress", 0),
        "tasks_failed": tasks.get("failed", 0),
        "tasks_blocked": tasks.get("blocked", 0),
        "tasks_cancelled": tasks.get("cancelled", 0),
        "avg_task_time": (c.duration_sum / c.completed_total) if c.completed_total else 0.0,
        "utilization": (busy / active) if active else 0.0,
        "last_event_seq": c.last_seq,
        # what agents reported spending (usage.py): the swarm's sums and the costliest types'
        "usage": usage_rule.wire(usage_rule.add(c.usage, {})),
        "usage_by_type": {name: usage_rule.wire(sums) for name, sums in c.usage_by_type.items()},
    }
