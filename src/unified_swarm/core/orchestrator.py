"""The Orchestrator: every use-case of the swarm, over one Store.

It owns what the store does not: who is calling (tokens), the long-poll waiters, the
interrupt in force, and the coordination loop (reaper and matcher). State lives only in the
store, so a restarted orchestrator, or another replica, carries on where this one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..config import Settings
from ..errors import (
    Forbidden,
    InvalidInput,
    NotClaimable,
    NotFound,
    SwarmError,
    Unauthorized,
)
from ..models import (
    JSON,
    Attempt,
    Event,
    Interrupt,
    KnowledgeEntry,
    Session,
    SessionStatus,
    Task,
)
from ..store.base import Claimed, Counts, Heartbeat, Recorded, Store, StoreClock
from . import rules
from .leader import LeaderLease
from .rules import TaskSpec
from .waiters import Waiter, Waiters

log = logging.getLogger("unified_swarm.orchestrator")
Clock = Callable[[], float]
#: events that make a task claimable, and so wake one matching waiter
READY_EVENTS = frozenset({"task.ready", "task.requeued"})


def new_token() -> str:
    """256 bits from the OS CSPRNG, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens are stored and compared only as SHA-256 digests."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    role: Literal["operator", "session"]
    session: Session | None = None

    @property
    def session_id(self) -> str | None:
        return None if self.session is None else self.session.id

    @property
    def name(self) -> str:
        return "operator" if self.session is None else self.session.id


@dataclass(frozen=True, slots=True)
class Directives:
    assignments: list[Task]
    interrupt: Interrupt | None
    drain: bool


@dataclass(frozen=True, slots=True)
class SessionSpec:
    capabilities: list[str]
    id: str | None = None
    name: str | None = None
    max_concurrent_tasks: int | None = None
    heartbeat_interval: float | None = None
    metadata: dict[str, JSON] | None = None


class Orchestrator:
    """Use-cases over a Store. `clock` is injected so tests can move time by hand."""

    def __init__(self, store: Store, settings: Settings, operator_token: str,
                 clock: Clock) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self._operator_hash = hash_token(operator_token)
        self.waiters = Waiters()
        self.interrupt: Interrupt | None = None
        #: replicas sharing a store elect the one that runs the coordination loop
        self.lease = LeaderLease(store, settings.replica_id)
        if clock is time.time and isinstance(store, StoreClock):
            store.use_store_clock()  # one clock for leases: the shared store's (DESIGN)
        self._poke = asyncio.Event()
        self._target: float | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        store.add_listener(self._on_events)

    @property
    def leader(self) -> bool:
        """True while this process runs the coordination loop (always, on SQLite)."""
        return self.lease.leading

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, *, run_loop: bool = True) -> None:
        self.interrupt = await self.store.get_interrupt()
        if run_loop:
            await self.lease.keep()
            self._loop_task = asyncio.create_task(self._coordinate(), name="swarm-coordinator")

    async def stop(self) -> None:
        self._stopping = True
        self.waiters.wake_all()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await self.lease.resign()

    # -- who is calling ------------------------------------------------------------------

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("missing bearer token")
        digest = hash_token(token)
        if hmac.compare_digest(digest, self._operator_hash):
            return Principal("operator")
        session = await self.store.session_by_token(digest)
        if session is None:
            raise Unauthorized("unknown or revoked token")
        return Principal("session", session)

    # -- sessions ------------------------------------------------------------------------

    async def register(self, spec: SessionSpec) -> tuple[Session, str]:
        sid = spec.id or f"session-{secrets.token_hex(8)}"
        if not rules.ID_RE.match(sid):
            raise InvalidInput(f"session id {sid!r} must match {rules.ID_RE.pattern}")
        for cap in spec.capabilities:
            if not rules.NAME_RE.match(cap):
                raise InvalidInput(f"capability {cap!r} must match {rules.NAME_RE.pattern}")
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
        token = new_token()
        joined = await self.store.register_session(session, hash_token(token), now)
        return joined, token

    async def heartbeat(self, session_id: str, status: str | None) -> tuple[Heartbeat, Directives]:
        beat = await self.store.heartbeat(session_id, self.clock(), status)
        return beat, Directives(beat.assignments, self.interrupt,
                                beat.session.status == SessionStatus.DRAINING)

    async def leave(self, session_id: str) -> Session:
        return await self.store.leave_session(session_id, self.clock(), "left")

    async def drain(self, session_id: str) -> Session:
        return await self.store.set_draining(session_id, self.clock())

    async def get_session(self, session_id: str) -> Session:
        s = await self.store.get_session(session_id)
        if s is None:
            raise NotFound(f"session {session_id!r} does not exist")
        return s

    async def set_interrupt(self, reason: str | None, by: str) -> Interrupt | None:
        value = None if reason is None else Interrupt(reason, self.clock(), by)
        await self.store.set_interrupt(value, self.clock())
        self.interrupt = value
        return value

    # -- tasks ---------------------------------------------------------------------------

    async def add_tasks(self, specs: Sequence[TaskSpec]) -> list[Task]:
        if not specs:
            raise InvalidInput("a batch needs at least one task")
        if len(specs) > self.settings.max_batch:
            raise InvalidInput(f"a batch holds at most {self.settings.max_batch} tasks")
        return await self.store.add_tasks(specs, self.clock())

    async def get_task(self, task_id: str) -> tuple[Task, list[Attempt]]:
        task = await self.store.get_task(task_id)
        if task is None:
            raise NotFound(f"task {task_id!r} does not exist")
        return task, await self.store.history(task_id)

    async def request_work(self, session: Session, wait: float,
                           waiter: Waiter | None = None) -> Claimed | None:
        """Claim the best task for the session, waiting up to `wait` seconds for one.

        The waiter is parked before the first attempt, so a task made ready while that
        attempt runs still wakes it: no lost wake-up, no polling.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        waiter = waiter or Waiter(session.id, frozenset(session.capabilities))
        self.waiters.park(waiter)
        try:
            while not (self._stopping or waiter.abandoned):
                woken_for, waiter.woken_for = waiter.woken_for, None
                waiter.event.clear()
                if self.interrupt is None:
                    got = await self.store.claim_next(session.id, self.clock())
                    if got is not None:
                        if woken_for is not None and woken_for != got.task.required_capability:
                            self.waiters.wake(woken_for)  # pass on what we were woken for
                        return got
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(waiter.event.wait(), remaining)
                except TimeoutError:
                    return None
            return None
        finally:
            self.waiters.leave(waiter)
            if waiter.woken_for is not None:  # woken but leaving: hand the wake-up on
                self.waiters.wake(waiter.woken_for)

    async def claim(self, session: Session, task_id: str) -> Claimed:
        if self.interrupt is not None:
            raise NotClaimable(f"the swarm is interrupted: {self.interrupt.reason}")
        return await self.store.claim(session.id, task_id, self.clock())

    async def progress(self, session: Session, task_id: str, token: int, value: float,
                       message: str | None) -> Recorded:
        if not 0.0 <= value <= 1.0:
            raise InvalidInput("progress must be within 0..1")
        return await self.store.progress(session.id, task_id, token, value, message,
                                         self.clock())

    async def complete(self, session: Session, task_id: str, token: int,
                       result: JSON) -> Recorded:
        return await self.store.complete(session.id, task_id, token, result, self.clock())

    async def fail(self, session: Session, task_id: str, token: int, error: str,
                   retry: bool) -> Recorded:
        return await self.store.fail(session.id, task_id, token, error, retry, self.clock())

    async def cancel(self, task_id: str, reason: str) -> Task:
        return await self.store.cancel(task_id, self.clock(), reason)

    # -- knowledge -----------------------------------------------------------------------

    async def put_knowledge(self, topic: str, content: JSON, tags: list[str],
                            expected_version: int | None, by: Principal) -> KnowledgeEntry:
        _check_topic(topic)
        return await self.store.put_knowledge(topic, content, tags, expected_version, by.name,
                                              self.clock())

    async def get_knowledge(self, topic: str, version: int | None) -> KnowledgeEntry:
        entry = await self.store.get_knowledge(topic, version)
        if entry is None:
            what = f"version {version} of " if version is not None else ""
            raise NotFound(f"{what}knowledge topic {topic!r} does not exist")
        return entry

    async def delete_knowledge(self, topic: str, expected_version: int | None,
                               by: Principal) -> KnowledgeEntry:
        return await self.store.delete_knowledge(topic, expected_version, by.name, self.clock())

    # -- metrics -------------------------------------------------------------------------

    async def status(self) -> dict[str, JSON]:
        return status_view(await self.store.counts())

    # -- the coordination loop -----------------------------------------------------------

    def _on_events(self, events: Sequence[Event]) -> None:
        """Committed events (from any replica): wake waiters, pull the reaper earlier."""
        for ev in events:
            d = ev.data
            if ev.type in READY_EVENTS or (ev.type == "task.added" and d.get("status") == "ready"):
                self.waiters.wake(d.get("required_capability"))
            elif ev.type == "task.assigned":
                self.waiters.wake_session(d["session_id"])
                self._deadline_at(d["deadline"])
            elif ev.type == "task.claimed":
                self._deadline_at(d["expires_at"])
            elif ev.type == "session.joined":
                self._deadline_at(ev.at + self.settings.lease_ttl(d["heartbeat_interval"]))
            elif ev.type == "swarm.interrupt":
                self._refresh_interrupt(d)

    def _refresh_interrupt(self, d: dict[str, JSON]) -> None:
        if d.get("active"):
            if self.interrupt is None or self.interrupt.reason != d.get("reason"):
                self.interrupt = Interrupt(str(d.get("reason")), self.clock())
        else:
            self.interrupt = None
            self.waiters.wake_all()

    def _deadline_at(self, deadline: float) -> None:
        if self._target is None or deadline < self._target:
            self._target = deadline
            self._poke.set()

    async def tick(self, now: float) -> float | None:
        """One pass of the coordination loop at `now`: reap everything due, then offer work
        to sessions idle past `idle_threshold`. Returns the next deadline. Tests call this
        directly with a hand-moved clock (the loop's deterministic drain mode)."""
        while True:
            reaped = await self.store.reap(now, self.settings.reap_batch)
            if reaped:
                log.info("reaped: %d requeued, %d failed, %d sessions offline",
                         len(reaped.requeued), len(reaped.failed), len(reaped.offline))
            if not reaped.more:
                break
        await self._match(now)
        return await self.store.next_deadline()

    async def _match(self, now: float) -> None:
        """Push work to sessions that sat idle past idle_threshold without asking for it
        (a session that long-polls takes ready work itself and is never idle that long)."""
        if self.interrupt is not None:
            return
        # long-idle sessions first: there rarely are any, and counting tasks scans them all
        idle = await self.store.idle_sessions(now, self.settings.idle_threshold)
        if not idle or not (await self.store.counts()).tasks.get("ready"):
            return
        for s in idle:
            try:
                offered = await self.store.assign_next(
                    s.id, now, now + self.settings.task_claim_timeout)
            except NotClaimable:
                continue
            if offered is not None:
                log.info("offered %s to idle session %s", offered.id, s.id)

    async def _coordinate(self) -> None:
        """Sleep until the next deadline (or a poke), then tick. Never a fixed poll."""
        match_period = max(self.settings.idle_threshold / 4, 0.05)
        while not self._stopping:
            self._poke.clear()
            delay = match_period
            if await self.lease.keep():
                try:
                    nxt = await self.tick(self.clock())
                    self._target = nxt
                    if nxt is not None:
                        # a hair past the deadline, so the lease is due when we look
                        delay = min(max(nxt - self.clock(), 0.0) + 0.005, match_period)
                except SwarmError as exc:
                    log.warning("coordination pass failed, retrying in 1 s: %s", exc)
                    delay = 1.0
            if self.lease.renew_every is not None:  # come round in time to renew the lease
                delay = min(delay, self.lease.renew_every)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), delay)


#: A topic is a name people read: no controls (C0, DEL, C1) and none of the invisible or
#: bidi format characters that make one name look like another (soft hyphen, zero-width
#: and joiners, LRM/RLM, embeddings, overrides and isolates, line/paragraph separators,
#: BOM); its "/"-separated segments as in ids (`rules.SEGMENTS`). Written with escapes
#: both Python and JSON Schema (ECMA) regexes read alike.
TOPIC_PATTERN = ("^" + rules.SEGMENTS + r"[^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e"
                 r"\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]{1,256}$")
TOPIC_RE = re.compile(TOPIC_PATTERN.removesuffix("$") + r"\Z")


def _check_topic(topic: str) -> None:
    if not TOPIC_RE.match(topic):
        raise InvalidInput("a knowledge topic is 1..256 printable characters (no controls, "
                           "no invisible or bidi format characters), and no empty, '.' or "
                           "'..' segment between its '/'")


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
    }


def require_holder(principal: Principal) -> Session:
    """Task outcome calls take a session token: the token alone says which session calls."""
    if principal.session is None:
        raise Forbidden("this call takes a session token (from POST /session/register)")
    return principal.session
