"""Records and state enums of the swarm. No I/O.

Times are float seconds since the epoch inside the process and ISO 8601 UTC strings on the
wire (`iso`). Every record has a `wire()` method giving the JSON shape of DESIGN.md. The
rules over these records (which status may follow which) live in `lifecycle.py`; the
results the Store seam answers with are at the end of this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from . import usage as usage_rule
from .stats import ANY, PairStats

JSON = Any
#: where rules get the time: seconds since the epoch, read just before the step it dates
Clock = Callable[[], float]
#: the longest long-poll the protocol allows (DESIGN: `GET /work/request?wait=S`, default 0,
#: max 60): the server refuses more (core), may cut it shorter (`Settings.max_wait`), and
#: the SDK refuses more before sending. Here, below both, so both read the one number.
MAX_WAIT = 60.0
#: tasks one request may claim (`max`) and outcomes one call may record: the cap of
#: max_concurrent_tasks; read by core and the SDK alike
MAX_CLAIM = 1000
#: task types whose usage sums `Store.counts` reads (the costliest first): /swarm/status
#: stays small however many types there are
USAGE_TYPES = 50


def iso(ts: float | None) -> str | None:
    """Seconds since the epoch -> ISO 8601 UTC with milliseconds, or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SessionStatus(StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    DRAINING = "draining"
    OFFLINE = "offline"


class TaskStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"
    #: a split parent: no lease, no session; it ends when its subtasks do
    WAITING = "waiting"
    #: the holder asked the operator a question (POST /work/input-request): still held, its
    #: lease clock stopped until the answer
    INPUT_REQUIRED = "input_required"


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    RELEASED = "released"
    #: the holder split the task into subtasks (POST /work/{id}/split)
    SPLIT = "split"


@dataclass(slots=True)
class Session:
    id: str
    name: str
    capabilities: list[str]
    status: SessionStatus
    max_concurrent_tasks: int
    heartbeat_interval: float
    last_heartbeat: float
    registered_at: float
    metadata: dict[str, JSON] = field(default_factory=dict)
    performance_score: float = 0.5
    capability_scores: dict[str, float] = field(default_factory=dict)
    tasks_completed: int = 0
    tasks_failed: int = 0
    current_tasks: list[str] = field(default_factory=list)
    #: what the learned model says the session has shown it can do (kept by the store)
    detected_capabilities: list[str] = field(default_factory=list)
    #: filled by the orchestrator from the learned model on reads: per capability, attempts,
    #: success rate, median duration and speed against the pool
    stats: dict[str, JSON] = field(default_factory=dict)
    #: the session's circuit breaker is open until then (None: closed)
    quarantined_until: float | None = None
    #: what its attempts reported spending (usage.SUM_FIELDS); None: nothing reported
    usage: dict[str, float] | None = None
    #: while its agent waits out an API rate limit or overload (a progress report said so,
    #: and nothing normal came since): what it said; None otherwise
    rate_limited: dict[str, JSON] | None = None

    def wire(self) -> dict[str, JSON]:
        return {
            "id": self.id,
            "name": self.name,
            "capabilities": self.capabilities,
            "status": self.status.value,
            "current_tasks": self.current_tasks,
            "max_concurrent_tasks": self.max_concurrent_tasks,
            "heartbeat_interval": self.heartbeat_interval,
            "last_heartbeat": iso(self.last_heartbeat),
            "registered_at": iso(self.registered_at),
            "performance_score": round(self.performance_score, 4),
            "capability_scores": {k: round(v, 4) for k, v in self.capability_scores.items()},
            "tasks_completed": self.tasks_completed,
            "tasks_failed": self.tasks_failed,
            "metadata": self.metadata,
            "detected_capabilities": self.detected_capabilities,
            "stats": self.stats,
            "quarantined_until": iso(self.quarantined_until),
            "usage": usage_rule.wire(self.usage),
            "rate_limited": self.rate_limited,
        }


@dataclass(slots=True)
class Task:
    id: str
    type: str
    required_capability: str
    priority: int
    status: TaskStatus
    created_at: float
    title: str = ""
    input: JSON = None
    priority_given: bool = False
    critical: bool = False
    infinite_scale: bool = False
    roi: str | None = None
    estimated_hours: float | None = None
    dependencies: list[str] = field(default_factory=list)
    assigned_to: str | None = None
    attempts: int = 0
    max_attempts: int = 3
    lease_expires_at: float | None = None
    fencing_token: int = 0
    progress: float = 0.0
    progress_message: str | None = None
    result: JSON = None
    error: str | None = None
    parent_id: str | None = None
    started_at: float | None = None
    completed_at: float | None = None
    updated_at: float | None = None
    #: insertion order, the tie-breaker after priority ("then age")
    seq: int = 0
    #: the end of the grace a preemption gave the current attempt (None: not preempted):
    #: its lease runs no further, and past it the lease is revoked
    preempt_at: float | None = None
    #: how many attempts of it were chosen as a preemption victim: past
    #: `Settings.max_preemptions` it is never chosen again (no emergency starves it)
    preemptions: int = 0
    #: knowledge topics handed to its holder in `context.knowledge`
    context_topics: list[str] = field(default_factory=list)
    #: split levels above it: 0 for a task added by a client, parent's + 1 for a subtask
    depth: int = 0
    #: what its holder is handed on a claim (core/context.py); None where not built
    context: dict[str, JSON] | None = None
    #: told on a claim: its estimated_hours exceed `collaboration_threshold`
    split_suggested: bool | None = None

    def wire(self) -> dict[str, JSON]:
        return {
            "id": self.id,
            "type": self.type,
            "title": self.title,
            "input": self.input,
            "required_capability": self.required_capability,
            "priority": self.priority,
            "critical": self.critical,
            "infinite_scale": self.infinite_scale,
            "roi": self.roi,
            "estimated_hours": self.estimated_hours,
            "dependencies": self.dependencies,
            "status": self.status.value,
            "assigned_to": self.assigned_to,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "lease_expires_at": iso(self.lease_expires_at),
            "fencing_token": self.fencing_token,
            "progress": {"value": self.progress, "message": self.progress_message},
            "result": self.result,
            "error": self.error,
            "parent_id": self.parent_id,
            "context_topics": self.context_topics,
            "depth": self.depth,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
            "updated_at": iso(self.updated_at),
            "preempt_at": iso(self.preempt_at),
            "preemptions": self.preemptions,
            **({} if self.context is None else {"context": self.context}),
            **({} if self.split_suggested is None else {"split_suggested": self.split_suggested}),
        }




def note(kind: str, text: str, at: float, session_id: str | None = None,
         **extra: JSON) -> dict[str, JSON]:
    """A handoff note kept with a task (`Store.add_note`) and handed to its next holder in
    `context.notes`: `kind` says who left it ("release", "answer", ...), `text` what it says.
    Stored as this very JSON, so every store and every reader sees the same shape."""
    return {"kind": kind, "text": text, "at": iso(at), "session_id": session_id, **extra}


def added_data(t: Task) -> dict[str, JSON]:
    """The data of a `task.added` event, the same from every store."""
    return {"task_id": t.id, "status": t.status.value, "type": t.type,
            "required_capability": t.required_capability, "priority": t.priority,
            "dependencies": t.dependencies, "title": t.title,
            "estimated_hours": t.estimated_hours, "parent_id": t.parent_id}

@dataclass(slots=True, frozen=True)
class Candidate:
    """A ready (or offered) task as a scheduler weighs it (`Store.ready_candidates`): what a
    choice may need to know of it, not its payload. Claiming it answers the whole Task."""

    id: str
    type: str
    required_capability: str
    priority: int
    seq: int
    fencing_token: int
    attempts: int
    max_attempts: int
    created_at: float
    critical: bool = False
    estimated_hours: float | None = None
    parent_id: str | None = None


#: the fields a store reads for a Candidate, in its order
CANDIDATE_FIELDS = tuple(Candidate.__dataclass_fields__)


@dataclass(slots=True, frozen=True)
class Lease:
    task_id: str
    session_id: str
    fencing_token: int
    #: None while the task waits for the operator's answer (its clock stopped)
    expires_at: float | None
    #: in_progress, or input_required (held, clock stopped)
    status: TaskStatus = TaskStatus.IN_PROGRESS
    #: the end of the grace a preemption gave (None: not preempted)
    preempt_at: float | None = None
    #: the task's handoff notes, as the heartbeat shows them to the holder (None: not read)
    notes: list[JSON] | None = None

    def wire(self) -> dict[str, JSON]:
        out = {
            "task_id": self.task_id,
            "session_id": self.session_id,
            "fencing_token": self.fencing_token,
            "expires_at": iso(self.expires_at),
        }
        if self.status != TaskStatus.IN_PROGRESS:  # the pinned shape, unless it waits
            out["status"] = self.status.value
        if self.notes is not None:
            out["notes"] = self.notes
        return out


@dataclass(slots=True)
class Attempt:
    task_id: str
    attempt: int
    session_id: str
    fencing_token: int
    capability: str
    started_at: float
    ended_at: float | None = None
    outcome: Outcome | None = None
    error: str | None = None
    #: the lease's deadline when the attempt ended (so "requeued within 1 s" is checkable)
    lease_expires_at: float | None = None
    #: the duration the scheduler expected when it chose this attempt (learned policy)
    predicted: float | None = None
    #: what the attempt reported spending (usage.FIELDS, the largest figures reported)
    usage: dict[str, float] | None = None

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    def wire(self) -> dict[str, JSON]:
        return {
            "attempt": self.attempt,
            "session_id": self.session_id,
            "fencing_token": self.fencing_token,
            "capability": self.capability,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "duration": self.duration,
            "outcome": self.outcome.value if self.outcome else None,
            "error": self.error,
            "lease_expires_at": iso(self.lease_expires_at),
            "predicted_duration": self.predicted,
            "usage": usage_rule.wire(self.usage),
        }


@dataclass(slots=True, frozen=True)
class KnowledgeEntry:
    topic: str
    version: int
    content: JSON
    updated_by: str | None
    updated_at: float
    tags: list[str] = field(default_factory=list)
    deleted: bool = False

    def wire(self) -> dict[str, JSON]:
        return {
            "topic": self.topic,
            "version": self.version,
            "content": self.content,
            "updated_by": self.updated_by,
            "updated_at": iso(self.updated_at),
            "tags": self.tags,
            "deleted": self.deleted,
        }


@dataclass(slots=True, frozen=True)
class Event:
    seq: int
    type: str
    at: float
    data: dict[str, JSON]

    def wire(self) -> dict[str, JSON]:
        return {"seq": self.seq, "type": self.type, "at": iso(self.at), "data": self.data}


@dataclass(slots=True, frozen=True)
class Interrupt:
    reason: str
    at: float
    by: str | None = None
    #: the emergency task this interrupt serves (POST /swarm/emergency): it alone may be
    #: taken while the interrupt holds, and the interrupt lifts when it ends
    task_id: str | None = None

    def wire(self) -> dict[str, JSON]:
        return {"reason": self.reason, "at": iso(self.at), "by": self.by,
                "task_id": self.task_id}


@dataclass(slots=True)
class TaskSpec:
    """A task as a client describes it, before it is planned into a `Task`."""

    type: str
    id: str | None = None
    title: str = ""
    input: JSON = None
    required_capability: str | None = None
    priority: int | None = None
    critical: bool = False
    infinite_scale: bool = False
    roi: str | None = None
    estimated_hours: float | None = None
    dependencies: list[str] = field(default_factory=list)
    max_attempts: int | None = None
    parent_id: str | None = None
    context_topics: list[str] = field(default_factory=list)
    depth: int = 0


# -- what the Store seam answers (store/base.py) ------------------------------------------

#: Called with the events of one committed step, in sequence order, on the event loop.
EventListener = Callable[[Sequence["Event"]], None]



@dataclass(slots=True)
class Claimed:
    """A task claimed under a new lease."""

    task: Task
    lease: Lease
    #: the task's handoff notes, read in the claim's own step (so handing a claimed task its
    #: context costs no extra round trip when it names no dependency and no topic)
    notes: list[JSON] | None = None


@dataclass(slots=True)
class Split:
    """A split recorded (`Store.split`): the parent, now waiting, and its subtasks in the
    order the holder gave them (a merge task last)."""

    task: Task
    subtasks: list[Task]
    duplicate: bool = False


@dataclass(slots=True)
class Recorded:
    """What an outcome call (progress, complete, fail) left behind."""

    task: Task
    duplicate: bool = False
    #: the session's statistics the outcome moved: its capability and `stats.ANY`
    stats: dict[str, PairStats] | None = None


@dataclass(frozen=True, slots=True)
class Quarantine:
    """One open circuit breaker (half-open once `until` has passed): a session, or a session
    on one capability, ejected from scheduling (core/breaker.py decides; the store keeps)."""

    session_id: str
    #: the capability, or `stats.ANY` for the whole session
    capability: str
    until: float
    #: ejections in a row without a successful probe between them (the period doubles)
    ejections: int

    def open(self, now: float) -> bool:
        """Ejected now (not yet half-open)."""
        return now < self.until

    def wire(self) -> dict[str, JSON]:
        return {"session_id": self.session_id,
                "capability": None if self.capability == ANY else self.capability,
                "until": iso(self.until), "ejections": self.ejections}


@dataclass(slots=True)
class Heartbeat:
    """A heartbeat's answer: the session, the leases it holds, the offers made to it."""

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
    #: what every attempt reported spending (usage.SUM_FIELDS); empty: nothing yet
    usage: dict[str, float] = field(default_factory=dict)
    #: the same per task type, the costliest first (at most USAGE_TYPES of them)
    usage_by_type: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Idem:
    """An `Idempotency-Key` as a store keeps it (core/idempotency.py makes one).

    `id` names the caller's key in its scope (the credential's identity and the route), so
    two callers never share one; `fingerprint` is the digest of the request, so the key
    reused for another request is refused, not answered; `ttl` is how long the answer
    is kept (seconds)."""

    id: str
    fingerprint: str
    ttl: float


@dataclass
class Placed:
    """An emergency's answer as its Idempotency-Key keeps it: the task as the first try
    answered it, the session it was offered to, the task it preempted (id, holder)."""

    task: Task
    assigned_to: str | None = None
    preempted: tuple[str, str] | None = None


#: what a keyed step answers, and a retry with the same key gets again
Replay = Session | list[Task] | Claimed | list[Claimed] | KnowledgeEntry | Placed
