"""Response shapes, for the OpenAPI document only.

Handlers render their replies with orjson (`JSONResp`), so FastAPI neither validates nor
serialises through these models: they cost nothing per request. They exist so that
`/openapi.json` says what the server answers, every status code and every field, and the
schema-driven fuzz suite (tests/fuzz) checks each live response against them. Required
fields are the wire contract; extra fields are allowed, so adding one is not a break.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..lifecycle import EMERGENCY_PRIORITY
from ..models import Outcome, SessionStatus, TaskStatus

Time = datetime  # ISO 8601 UTC on the wire ("...Z")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    """Every error: `{"error": {"code", "message"}}`."""

    error: ErrorDetail


class CapabilityStats(BaseModel):
    """What the learned model says of a session on one capability."""

    attempts: int
    successes: int
    failures: int
    success_rate: float
    duration_p50: float | None
    #: against the pool on this capability: 2.0 is twice as fast as a typical session
    speed: float | None


class UsageOut(BaseModel):
    """What an attempt reported spending (a sum adds `attempts`: how many reported)."""

    cost_usd: float
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    num_turns: int
    attempts: int | None = None


class RateLimitedOut(BaseModel):
    """The session's agent waits out an API rate limit (until its next normal report)."""

    task_id: str
    at: Time
    attempt: int | None = None
    max_retries: int | None = None
    retry_in_s: float | None = None
    error_status: int | None = None
    error: str | None = None
    retry_at: Time | None = None


class SessionOut(BaseModel):
    id: str
    name: str
    capabilities: list[str]
    status: SessionStatus
    current_tasks: list[str]
    max_concurrent_tasks: int
    heartbeat_interval: float
    last_heartbeat: Time
    registered_at: Time
    performance_score: float
    capability_scores: dict[str, float]
    tasks_completed: int
    tasks_failed: int
    metadata: dict[str, Any]
    detected_capabilities: list[str] = []
    stats: dict[str, CapabilityStats] = {}
    quarantined_until: Time | None = None
    #: what its attempts reported spending (None: nothing yet)
    usage: UsageOut | None = None
    rate_limited: RateLimitedOut | None = None


class ProgressOut(BaseModel):
    value: float
    message: str | None


class TruncatedOut(BaseModel):
    """The context was cut to `limit_bytes`: each path in `cut` ("dependencies/ID",
    "knowledge/TOPIC", "notes/N") holds `{"truncated": true, "bytes": N}` instead."""

    limit_bytes: int
    cut: list[str]


class ContextOut(BaseModel):
    """What a claimed task carries: its dependencies' results, the knowledge topics it
    names in `context_topics`, the handoff notes of earlier attempts."""

    dependencies: dict[str, Any]
    knowledge: dict[str, Any]
    notes: list[Any]
    truncated: TruncatedOut | None = None


class TaskOut(BaseModel):
    id: str
    type: str
    title: str
    input: Any
    required_capability: str
    #: 1..10, or EMERGENCY_PRIORITY (11) for an emergency (POST /swarm/emergency)
    priority: int = Field(ge=1, le=EMERGENCY_PRIORITY)
    critical: bool
    infinite_scale: bool
    roi: str | None
    estimated_hours: float | None
    dependencies: list[str]
    status: TaskStatus
    assigned_to: str | None
    attempts: int
    max_attempts: int
    lease_expires_at: Time | None
    fencing_token: int
    progress: ProgressOut
    result: Any
    error: str | None
    parent_id: str | None
    context_topics: list[str] = []
    #: split levels above it (0: added by a client)
    depth: int = 0
    created_at: Time
    started_at: Time | None
    completed_at: Time | None
    updated_at: Time | None
    #: on a claim and GET /work/{id}: what its holder is handed
    context: ContextOut | None = None
    #: on a claim: estimated over `collaboration_threshold` hours, worth splitting
    split_suggested: bool | None = None
    #: the end of the grace a preemption gave the current attempt
    preempt_at: Time | None = None
    #: how many of its attempts were preempted (past `max_preemptions`, never again)
    preemptions: int = 0


class LeaseOut(BaseModel):
    task_id: str
    session_id: str
    fencing_token: int
    #: null while the task waits for the operator's answer (its clock stopped)
    expires_at: Time | None
    status: TaskStatus = TaskStatus.IN_PROGRESS
    #: on a heartbeat: the task's handoff notes (an operator's answer among them)
    notes: list[Any] | None = None


class AttemptOut(BaseModel):
    attempt: int
    session_id: str
    fencing_token: int
    capability: str
    started_at: Time
    ended_at: Time | None
    duration: float | None
    outcome: Outcome | None
    error: str | None
    lease_expires_at: Time | None
    #: the duration the learned scheduler expected when it chose this attempt
    predicted_duration: float | None = None
    usage: UsageOut | None = None


class EntryOut(BaseModel):
    topic: str
    version: int
    content: Any
    updated_by: str | None
    updated_at: Time
    tags: list[str]
    deleted: bool


class InterruptOut(BaseModel):
    reason: str
    at: Time
    by: str | None
    #: the emergency task this interrupt serves (it lifts when the task ends)
    task_id: str | None = None


class PreemptOut(BaseModel):
    task_id: str
    #: seconds left to checkpoint and `POST /work/release` before the lease is revoked
    grace_s: float


# -- replies -------------------------------------------------------------------------------


class Registered(BaseModel):
    session: SessionOut
    token: str


class DirectivesOut(BaseModel):
    assignments: list[TaskOut]
    interrupt: InterruptOut | None
    drain: bool
    preempt: list[PreemptOut] = []


class HeartbeatOut(BaseModel):
    session: SessionOut
    held: list[LeaseOut]
    directives: DirectivesOut


class SessionReply(BaseModel):
    session: SessionOut


class SessionsReply(BaseModel):
    sessions: list[SessionOut]


class TasksReply(BaseModel):
    tasks: list[TaskOut]


class TaskPage(BaseModel):
    tasks: list[TaskOut]
    next_cursor: str | None


class ClaimedReply(BaseModel):
    task: TaskOut
    lease: LeaseOut


class SplitReply(BaseModel):
    """The parent, now waiting, and its subtasks in the holder's order (a merge task last)."""

    task: TaskOut
    subtasks: list[TaskOut]
    duplicate: bool = False


class OfferOut(BaseModel):
    task_id: str
    session_id: str
    #: when the offer lapses and the task goes back to the queue (`task_claim_timeout`)
    expires_at: Time


class OfferedReply(BaseModel):
    task: TaskOut
    offer: OfferOut


class RecordedReply(BaseModel):
    task: TaskOut
    duplicate: bool
    #: present when the complete asked for the next task(s) (`next`, `max`)
    claimed: list[ClaimedReply] | None = None


class ClaimedBatchReply(BaseModel):
    """GET /work/request with `max`: up to max tasks, each with its lease."""

    claimed: list[ClaimedReply]


class OutcomeReply(BaseModel):
    """One outcome of a batch: what was recorded, or why it was refused."""

    task: TaskOut | None = None
    duplicate: bool | None = None
    error: ErrorDetail | None = None


class CompleteBatchReply(BaseModel):
    results: list[OutcomeReply]
    claimed: list[ClaimedReply]


class TaskReply(BaseModel):
    task: TaskOut


class TaskDetail(BaseModel):
    task: TaskOut
    history: list[AttemptOut]


class EntriesReply(BaseModel):
    entries: list[EntryOut]


class EntryReply(BaseModel):
    entry: EntryOut


class PreemptedOut(BaseModel):
    task_id: str
    session_id: str


class EmergencyReply(BaseModel):
    task: TaskOut
    #: the session it was offered to at once, if one was idle
    assigned_to: str | None
    #: the task preempted for it, if none was idle
    preempted: PreemptedOut | None


class InterruptReply(BaseModel):
    interrupt: InterruptOut | None


class StatusReply(BaseModel):
    total_sessions: int
    active_sessions: int
    idle_sessions: int
    busy_sessions: int
    tasks_completed: int
    tasks_pending: int
    tasks_ready: int
    tasks_in_progress: int
    tasks_failed: int
    avg_task_time: float
    utilization: float
    #: what every attempt reported spending, and the same per task type (the costliest
    #: first, at most 50)
    usage: UsageOut | None = None
    usage_by_type: dict[str, UsageOut] = {}


class LatencyOut(BaseModel):
    p50: float | None
    p99: float | None


class PredictionOut(BaseModel):
    metric: str
    recent: float | None
    older: float | None
    predictions: int
    windows: list[float]


class SchedulerReply(BaseModel):
    """The policy, the model's prediction error over recent and older completions, and
    the decision latency, on the replica that answers."""

    policy: Literal["learned", "fifo"]
    prior: dict[str, Any] | None
    tasks_tracked: int
    ready_tracked: int
    sessions_tracked: int
    holds: int
    decisions: int
    decision_latency_ms: LatencyOut
    prediction_error: PredictionOut


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    store: str
    replica_id: str
    leader: bool


# -- error responses -----------------------------------------------------------------------

_WHY = {
    400: "Bad input (ids, graph checks, limits) or a Host not allowed",
    401: "Missing or unknown token",
    403: "The token's role may not make this call",
    404: "No such session, task or topic",
    409: "Conflict: already exists, not claimable, lease lost, stale version",
    413: "Body or payload over its byte limit",
    422: "Malformed JSON or wrong types",
    429: "Rate limited: see Retry-After",
    431: "Request headers over 32 KiB",
    503: "The store is unreachable: see Retry-After",
}
#: what any route may answer: the Guard (400 Host, 413, 429, 431), auth (401), the store (503)
COMMON = (400, 401, 413, 422, 429, 431, 503)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, all with the one error shape."""
    return {s: {"model": ErrorOut, "description": _WHY[s]} for s in statuses}
