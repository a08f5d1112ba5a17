"""The JSON shapes the server answers with, as TypedDicts (see the `wire()` methods in
unified_swarm.models and "The wire contract" in DESIGN.md).

Times are ISO 8601 UTC strings, durations seconds. These are plain dicts at run time, so a
field the server adds later reaches the caller untouched. `SplitInto`, last, is what an
executor returns to split its task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

JSON = Any
SessionState = Literal["idle", "busy", "draining", "offline"]
TaskState = Literal["pending", "ready", "assigned", "in_progress", "completed", "failed",
                    "cancelled", "blocked", "input_required", "waiting"]
OutcomeName = Literal["completed", "failed", "expired", "released", "split"]


class Usage(TypedDict, total=False):
    """What an attempt spent so far (its total; every field optional): sent with progress,
    complete and fail, kept on the attempt and summed per session, task type and swarm. A
    sum read back also has `attempts` (how many attempts reported)."""

    cost_usd: float
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    num_turns: int
    attempts: int


class RateLimit(TypedDict, total=False):
    """A progress report's `rate_limit`: the agent waits out an API rate limit or overload
    now (every field optional). The session shows `rate_limited` until a report without one."""

    attempt: int
    max_retries: int
    retry_in_s: float
    error_status: int
    error: str


class Session(TypedDict):
    id: str
    name: str
    capabilities: list[str]
    status: SessionState
    current_tasks: list[str]
    max_concurrent_tasks: int
    heartbeat_interval: float
    last_heartbeat: str | None
    registered_at: str | None
    performance_score: float
    capability_scores: dict[str, float]
    tasks_completed: int
    tasks_failed: int
    metadata: dict[str, JSON]
    #: what the learned model says (servers from phase 2 on)
    detected_capabilities: NotRequired[list[str]]
    stats: NotRequired[dict[str, CapabilityStats]]
    quarantined_until: NotRequired[str | None]
    #: what its attempts reported spending (None: nothing yet)
    usage: NotRequired[Usage | None]
    #: while its agent waits out an API rate limit: {"task_id", "at", "retry_at", ...}
    rate_limited: NotRequired[dict[str, JSON] | None]


class CapabilityStats(TypedDict):
    attempts: int
    successes: int
    failures: int
    success_rate: float
    duration_p50: float | None
    speed: float | None


class Progress(TypedDict):
    value: float
    message: str | None


class Task(TypedDict):
    id: str
    type: str
    title: str
    input: JSON
    required_capability: str
    priority: int
    critical: bool
    infinite_scale: bool
    roi: str | None
    estimated_hours: float | None
    dependencies: list[str]
    status: TaskState
    assigned_to: str | None
    attempts: int
    max_attempts: int
    lease_expires_at: str | None
    fencing_token: int
    progress: Progress
    result: JSON
    error: str | None
    parent_id: str | None
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    updated_at: str | None
    context_topics: NotRequired[list[str]]
    #: split levels above it (0: added by a client)
    depth: NotRequired[int]
    #: on a claim and GET /work/{id}: what the holder is handed
    context: NotRequired[Context]
    #: on a claim: estimated over the server's collaboration_threshold, worth splitting
    split_suggested: NotRequired[bool]
    #: the end of the grace a preemption gave the current attempt
    preempt_at: NotRequired[str | None]
    #: how many of its attempts were preempted (past the server's max_preemptions, never
    #: again)
    preemptions: NotRequired[int]


class Context(TypedDict):
    """What a claimed task carries: its dependencies' results, the knowledge topics it
    names, the handoff notes of earlier attempts; `truncated` when entries were cut to the
    server's cap (each cut entry is `{"truncated": true, "bytes": N}`)."""

    dependencies: dict[str, JSON]
    knowledge: dict[str, JSON]
    notes: list[JSON]
    truncated: NotRequired[dict[str, JSON]]


class Split(TypedDict):
    """A split's answer: the parent, now waiting, and its subtasks (a merge task last)."""

    task: Task
    subtasks: list[Task]
    duplicate: bool


class Lease(TypedDict):
    task_id: str
    session_id: str
    fencing_token: int
    #: None while the task waits for the operator's answer (input_required)
    expires_at: str | None
    status: NotRequired[TaskState]
    #: on a heartbeat: the task's handoff notes (an operator's answer among them)
    notes: NotRequired[list[JSON]]


class Attempt(TypedDict):
    attempt: int
    session_id: str
    fencing_token: int
    capability: str
    started_at: str | None
    ended_at: str | None
    duration: float | None
    outcome: OutcomeName | None
    error: str | None
    #: the lease's deadline when the attempt ended (None while it runs)
    lease_expires_at: str | None
    #: what the attempt reported spending
    usage: NotRequired[Usage | None]


class KnowledgeEntry(TypedDict):
    topic: str
    version: int
    content: JSON
    updated_by: str | None
    updated_at: str | None
    tags: list[str]
    deleted: bool


class Event(TypedDict):
    seq: int
    type: str
    at: str | None
    data: dict[str, JSON]


class Interrupt(TypedDict):
    reason: str
    at: str | None
    by: str | None
    #: the emergency task it serves: that task alone is handed out meanwhile
    task_id: NotRequired[str | None]


class Status(TypedDict):
    """`GET /swarm/status`: the seed's `metrics:global`, extended."""

    total_sessions: int
    active_sessions: int
    idle_sessions: int
    busy_sessions: int
    draining_sessions: NotRequired[int]
    offline_sessions: NotRequired[int]
    tasks_total: NotRequired[int]
    tasks_completed: int
    tasks_pending: int
    tasks_ready: int
    tasks_assigned: NotRequired[int]
    tasks_in_progress: int
    tasks_failed: int
    tasks_blocked: NotRequired[int]
    tasks_cancelled: NotRequired[int]
    avg_task_time: float
    utilization: float
    last_event_seq: NotRequired[int]
    #: what every attempt reported spending, and per task type (the costliest first)
    usage: NotRequired[Usage]
    usage_by_type: NotRequired[dict[str, Usage]]


class Health(TypedDict):
    status: str
    store: str
    replica_id: str
    leader: bool
    error: NotRequired[str]


# -- composite answers ---------------------------------------------------------------------


class Registered(TypedDict):
    """`POST /session/register`: the session and its own secret (shown only here)."""

    session: Session
    token: str


class Preempt(TypedDict):
    """Checkpoint and `release` this lease within `grace_s` seconds, or lose it."""

    task_id: str
    grace_s: float


class Directives(TypedDict):
    assignments: list[Task]
    interrupt: Interrupt | None
    drain: bool
    preempt: NotRequired[list[Preempt]]


class HeartbeatReply(TypedDict):
    session: Session
    held: list[Lease]
    directives: Directives


class Claimed(TypedDict):
    """A task claimed for the calling session, and the lease it now holds."""

    task: Task
    lease: Lease


class Offer(TypedDict):
    """A task offered to (assigned to) a session until `expires_at`; claim it to work on it."""

    task_id: str
    session_id: str
    expires_at: str | None


class Offered(TypedDict):
    """`GET /work/offer`: the task offered to the calling session, not claimed yet."""

    task: Task
    offer: Offer


class Recorded(TypedDict):
    """An outcome call's answer; `duplicate` is true when it repeated a recorded one.
    `claimed`: the next task(s), when a complete asked for them (`claim_next`)."""

    task: Task
    duplicate: bool
    claimed: NotRequired[list[Claimed]]


class OutcomeIn(TypedDict):
    """One success of a batch (`complete_many`)."""

    task_id: str
    fencing_token: int
    result: NotRequired[JSON]
    usage: NotRequired[Usage]


class OutcomeResult(TypedDict, total=False):
    """One answer of a batch: `task` and `duplicate` when recorded, else `error`
    (`{"code", "message"}`, as an error response carries)."""

    task: Task
    duplicate: bool
    error: dict[str, str]


class CompletedBatch(TypedDict):
    """`complete_many`'s answer: one result per outcome, in order, then what was claimed."""

    results: list[OutcomeResult]
    claimed: list[Claimed]


class Preempted(TypedDict):
    task_id: str
    session_id: str


class Emergency(TypedDict):
    """`POST /swarm/emergency`: the task, the idle session it was offered to, or the task
    preempted for it."""

    task: Task
    assigned_to: str | None
    preempted: Preempted | None


class TaskDetail(TypedDict):
    task: Task
    history: list[Attempt]


class TaskPage(TypedDict):
    tasks: list[Task]
    next_cursor: str | None


# -- what the caller sends -----------------------------------------------------------------


class TaskIn(TypedDict):
    """One task for `add_tasks`; only `type` is required (`required_capability` defaults
    to it, `priority` to the seed's rule)."""

    type: str
    id: NotRequired[str]
    title: NotRequired[str]
    input: NotRequired[JSON]
    required_capability: NotRequired[str]
    priority: NotRequired[int]
    critical: NotRequired[bool]
    infinite_scale: NotRequired[bool]
    roi: NotRequired[str]
    estimated_hours: NotRequired[float]
    dependencies: NotRequired[list[str]]
    max_attempts: NotRequired[int]
    context_topics: NotRequired[list[str]]


@dataclass(frozen=True, slots=True)
class SplitInto:
    """What an executor returns to split its task instead of completing it: the worker
    sends `POST /work/{id}/split` with these subtasks (task objects; they may depend on
    each other) and `merge` ("list", "object" or {"task": {"type": ...}}). The task then
    completes with the merged results of its subtasks."""

    subtasks: list[dict[str, Any]]
    merge: str | dict[str, Any] = "list"
