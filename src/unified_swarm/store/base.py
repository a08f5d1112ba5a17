"""The Store protocol: the atomic primitives the orchestrator is built on.

Policy lives above this seam (who gets which task and when, long-polling, the coordination
loop); each backend provides only these primitives. Every method that changes state is ONE
atomic step (one SQL transaction begun with BEGIN IMMEDIATE, or one Redis script) that also
appends the events for the change, so the event log and the state never disagree. Listeners
added with `add_listener` hear those events only after the step is durable.

Rules shared by every method below:

- `now` is seconds since the epoch, passed in; a backend never reads the clock for rules
  (the Redis backend may substitute the server's TIME for lease deadlines, see its module).
- A lease is valid while `status == in_progress`, `assigned_to` is the caller,
  `fencing_token` matches and `lease_expires_at > now`. Late calls are refused even before
  the reaper has run.
- Outcome calls are idempotent per (task, fencing token): repeating the same complete or fail
  answers `Recorded(duplicate=True)`; a different outcome for a recorded attempt raises
  `OutcomeMismatch`. A session that never held the task gets `Forbidden`; one whose lease is
  gone gets `LeaseLost`.
- Errors raised inside a step leave the store exactly as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..core.rules import TaskSpec
from ..models import JSON, Attempt, Event, Interrupt, KnowledgeEntry, Lease, Session, Task

#: an event type a caller may record (`record_event`): dotted lower-case words
EVENT_TYPE_RE = re.compile(r"^[a-z]+(\.[a-z_]+)+\Z")
#: Called with the events of one committed step, in sequence order, on the event loop.
EventListener = Callable[[Sequence[Event]], None]


@dataclass(slots=True)
class Claimed:
    task: Task
    lease: Lease


@dataclass(slots=True)
class Recorded:
    """What an outcome call (progress, complete, fail) left behind."""

    task: Task
    duplicate: bool = False


@dataclass(slots=True)
class Heartbeat:
    session: Session
    held: list[Lease]
    assignments: list[Task]


@dataclass(slots=True)
class Reaped:
    """What one reaper pass moved on; `more` when it stopped at its batch limit."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    more: bool = False

    def __bool__(self) -> bool:
        return bool(self.requeued or self.failed or self.offline)


@dataclass(slots=True)
class Counts:
    """Numbers for /swarm/status and /metrics, read in one consistent snapshot."""

    sessions: dict[str, int]
    tasks: dict[str, int]
    completed_total: int
    duration_sum: float
    last_seq: int


@runtime_checkable
class Store(Protocol):
    """The storage seam. See the module docstring for the rules every method keeps."""

    #: "sqlite" or "redis", reported by /healthz
    kind: str

    async def open(self) -> None:
        """Connect, create or migrate the schema, check durability settings."""

    async def close(self) -> None:
        """Finish in-flight steps and release connections."""

    def add_listener(self, listener: EventListener) -> None:
        """Hear every committed event (of every process sharing the store, where it can)."""

    # -- sessions ----------------------------------------------------------------------

    async def register_session(self, session: Session, token_hash: str, now: float) -> Session:
        """Atomically create the session, or resume it when it exists and is offline.

        A resumed session keeps its history and scores and gets the new token hash.
        Raises AlreadyExists when the id is online. Emits `session.joined`.
        """

    async def session_by_token(self, token_hash: str) -> Session | None:
        """The session whose token hashes to `token_hash`, if any (read only)."""

    async def get_session(self, session_id: str) -> Session | None:
        """One session with its current tasks (read only)."""

    async def list_sessions(self) -> list[Session]:
        """Every session ever registered, offline ones included (read only)."""

    async def heartbeat(self, session_id: str, now: float, status: str | None) -> Heartbeat:
        """Atomically mark the session alive and renew every valid lease it holds.

        Leases run to `now + lease_factor * heartbeat_interval`; an expired lease is not
        revived. An offline session comes back online (`session.joined`, resumed). `status`
        "draining" starts a drain; "idle"/"busy" are the session's own report.
        """

    async def leave_session(self, session_id: str, now: float, reason: str) -> Session:
        """Atomically take the session offline and put what it held back in the queue.

        `reason` "left" (it asked; its token is revoked, attempts end `released`) or
        "offline" (it went silent; attempts end `expired`). Emits `session.left` or
        `session.offline` and one event per task moved.
        """

    async def set_draining(self, session_id: str, now: float) -> Session:
        """Atomically mark the session draining: it keeps its leases, claims nothing new."""

    # -- tasks -------------------------------------------------------------------------

    async def add_tasks(self, specs: Sequence[TaskSpec], now: float) -> list[Task]:
        """Atomically add a batch (all or nothing), checked by `rules.plan_batch`.

        Raises AlreadyExists, UnknownDependency, DependencyCycle. Emits `task.added` each.
        """

    async def get_task(self, task_id: str) -> Task | None:
        """One task (read only)."""

    async def list_tasks(
        self,
        *,
        status: str | None = None,
        capability: str | None = None,
        session: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[Task], str | None]:
        """Tasks in insertion order after `cursor`, filtered; returns the next cursor."""

    async def history(self, task_id: str) -> list[Attempt]:
        """Every attempt of a task, oldest first (read only)."""

    async def claim_next(self, session_id: str, now: float) -> Claimed | None:
        """Atomically claim the best task for the session, or None when nothing matches.

        First a task offered to this session (`assigned` to it), else the ready task with
        the session's capability (any, when it has none) of highest priority, then oldest.
        The claim bumps the fencing token and attempts, starts a lease and an attempt row.
        Asking for work proves the session alive (like a heartbeat): a session that had gone
        silent comes back online (`session.joined`, resumed); one that left stays out.
        Raises NotClaimable when the session left, is draining or at max concurrency.
        Emits `task.claimed`.
        """

    async def claim(self, session_id: str, task_id: str, now: float) -> Claimed:
        """Atomically claim one named task: ready, or assigned to this session.

        Raises NotFound, or NotClaimable (held elsewhere, not ready, capability missing,
        session at capacity). Emits `task.claimed`.
        """

    async def assign_next(self, session_id: str, now: float, deadline: float) -> Task | None:
        """Atomically offer the best ready task for the session (as `claim_next` would pick
        it) to that session until `deadline` (`task.assigned`); None when nothing matches.
        Raises NotClaimable like `claim_next`."""

    async def progress(
        self, session_id: str, task_id: str, token: int, value: float, message: str | None,
        now: float,
    ) -> Recorded:
        """Record progress under a valid lease and renew that lease (`task.progress`)."""

    async def complete(
        self, session_id: str, task_id: str, token: int, result: JSON, now: float
    ) -> Recorded:
        """Record success under a valid lease; dependents whose dependencies are all
        complete become ready (`task.completed`, then `task.ready` each)."""

    async def fail(
        self, session_id: str, task_id: str, token: int, error: str, retry: bool, now: float
    ) -> Recorded:
        """Record a failed attempt under a valid lease; the task goes back to ready while
        attempts remain and `retry` is true (`task.requeued`), else to failed
        (`task.failed`, dependents `task.blocked`)."""

    async def cancel(self, task_id: str, now: float, reason: str) -> Task:
        """Atomically cancel a task that is not final; dependents become blocked.

        Raises NotFound, or NotClaimable when the task is already final.
        """

    async def reap(self, now: float, limit: int) -> Reaped:
        """Atomically move on up to `limit` items that are due at `now`.

        Silent sessions go offline (as `leave_session(reason="offline")`), expired leases end
        `expired` and go back to ready (or failed past max_attempts), offers past their
        claim deadline go back to ready.
        """

    async def next_deadline(self) -> float | None:
        """The earliest lease, offer or session-silence deadline, or None (read only)."""

    async def idle_sessions(self, now: float, idle_for: float) -> list[Session]:
        """Online, non-draining sessions holding nothing whose last task ended (or which
        joined) at least `idle_for` seconds ago, longest idle first (read only)."""

    # -- knowledge ---------------------------------------------------------------------

    async def put_knowledge(
        self, topic: str, content: JSON, tags: list[str], expected_version: int | None,
        updated_by: str | None, now: float,
    ) -> KnowledgeEntry:
        """Atomically append the next version of a topic (1 for a new one).

        When `expected_version` is given it must equal the current version (0: the topic
        must not exist yet), else StaleVersion. Emits `knowledge.updated`.
        """

    async def get_knowledge(self, topic: str, version: int | None = None) -> KnowledgeEntry | None:
        """The latest version (None when deleted or absent), or exactly `version`."""

    async def list_knowledge(self, tag: str | None = None) -> list[KnowledgeEntry]:
        """The latest version of every live topic, by topic name (read only)."""

    async def delete_knowledge(
        self, topic: str, expected_version: int | None, updated_by: str | None, now: float
    ) -> KnowledgeEntry:
        """Atomically append a tombstone version; history stays readable. NotFound when
        absent, StaleVersion when `expected_version` is stale."""

    # -- the swarm ---------------------------------------------------------------------

    async def set_interrupt(self, interrupt: Interrupt | None, now: float) -> None:
        """Atomically set (or lift, with None) the swarm-wide interrupt (`swarm.interrupt`)."""

    async def get_interrupt(self) -> Interrupt | None:
        """The interrupt in force, if any (read only)."""

    async def counts(self) -> Counts:
        """Sessions and tasks by status, completion totals, the last event seq."""

    async def events_after(self, seq: int, limit: int) -> list[Event]:
        """Events with sequence number > seq, oldest first, at most `limit` (read only)."""

    async def ping(self) -> None:
        """Raise Unavailable unless the store answers now."""

    # -- autoscaling -------------------------------------------------------------------

    async def ready_counts(self, capabilities: Sequence[str]) -> dict[str, int]:
        """How many ready tasks need each of `capabilities` (read only, from the index of
        ready tasks: no scan of the other tasks). `counts()` has the total."""

    async def record_event(self, type_: str, data: dict[str, JSON], now: float) -> Event:
        """Atomically append one event for a decision taken above the store (a pool's
        size: `pool.scaled`); returns it with its seq. InvalidInput unless `type_` matches
        EVENT_TYPE_RE."""

    async def set_pool_pin(self, pool: str, desired: int | None, now: float) -> None:
        """Atomically pin a pool's size (None lifts the pin), for whichever replica leads
        (`pool.pinned`)."""

    async def pool_pins(self) -> dict[str, int]:
        """Every pool's pinned size (read only)."""


@runtime_checkable
class Leadership(Protocol):
    """Optional: a store that several orchestrator replicas share elects one of them to run
    the coordination loop (reaper and matcher). A store without it (SQLite: one process)
    makes its one orchestrator the leader. Safety never depends on leadership (every step
    is atomic); it keeps replicas from doing the same coordination work twice.
    """

    async def try_lead(self, holder: str, ttl: float) -> int | None:
        """Atomically take or renew the leader lease for `ttl` seconds, judged by the store's
        own clock. Returns the holder's leader token: the same while it renews in time, a
        higher one whenever the lease changed hands or lapsed (tokens only ever grow); None
        while another holder's lease runs. While a holder believes it leads, the store
        refuses its coordinator writes (`reap`, `assign_next`) with Conflict once another
        holder has taken the lease: a paused leader cannot act on a stale view.
        """

    async def resign(self, holder: str) -> None:
        """Atomically give the lease up, if `holder` has it (a clean shutdown)."""


@runtime_checkable
class StoreClock(Protocol):
    """Optional: a store shared by hosts can judge every `now` by its own clock."""

    def use_store_clock(self) -> None:
        """From now on, judge time (leases, deadlines, timestamps) by the store's clock
        instead of the `now` each call passes: replicas whose clocks disagree then agree,
        and timestamps follow the order in which steps commit. `next_deadline` (a wake-up
        hint) is then told on the caller's clock, so a skewed replica sleeps the right
        time. The orchestrator asks for this when it runs on the real clock; tests that
        move time by hand do not."""
