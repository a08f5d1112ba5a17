"""Request bodies. Strict types: "5" is not a number and 1 is not a boolean here.

The id and name grammars and the caps are checked by core (one rule for every interface,
answered 400); here they are read from core.limits and written into the OpenAPI document,
so the schema says what is accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

from .. import usage
from ..core import limits
from ..core import usage as rate
from ..core.limits import ID_PATTERN, NAME_PATTERN
from ..lifecycle import MAX_PRIORITY
from ..models import MAX_CLAIM, TaskSpec

Str64 = Annotated[str, Field(min_length=1, max_length=64)]
IdStr = Annotated[str, Field(min_length=1, max_length=128,
                              json_schema_extra={"pattern": ID_PATTERN})]
Name = Annotated[str, Field(min_length=1, max_length=64,
                             json_schema_extra={"pattern": NAME_PATTERN})]
#: a knowledge topic a task names for its context (core.limits.check_topic holds the rule)
Topic = Annotated[str, Field(json_schema_extra={"pattern": limits.TOPIC_PATTERN})]
#: a task or session id in the path (`/work/{task_id}`): an unknown one is a 404
IdPath = Annotated[str, Path(json_schema_extra={"pattern": ID_PATTERN})]


def _integral(value: Any) -> Any:
    """JSON has one number type and JSON Schema counts 3.0 as an integer: so do we (3.5 and
    "3" stay refused)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: goes after the bounds in `Annotated[int, Field(ge, le), Integral]`: placed before them,
#: the OpenAPI document loses the bounds
Integral = BeforeValidator(_integral)
#: the largest integer a JSON number carries exactly everywhere (a double, JavaScript's
#: Number; RFC 7493 I-JSON): a fencing token or version past it would not round-trip
MAX_SAFE_INT = 2**53 - 1
Token = Annotated[int, Field(ge=0, le=MAX_SAFE_INT), Integral]


class Body(BaseModel):
    model_config = ConfigDict(strict=True)


class _TaskHead(Body):
    """What every task body starts with: a merge task's whole body, a task's first fields."""

    type: Annotated[str, Field(min_length=1, max_length=limits.MAX_TYPE)]
    id: IdStr | None = None
    title: Annotated[str, Field(max_length=limits.MAX_TITLE)] | None = None
    input: Any = None
    required_capability: Name | None = None


class TaskIn(_TaskHead):
    priority: Annotated[int, Field(ge=limits.MIN_PRIORITY, le=MAX_PRIORITY), Integral] | None = None
    critical: bool = False
    infinite_scale: bool = False
    roi: Annotated[str, Field(max_length=limits.MAX_ROI)] | None = None
    estimated_hours: Annotated[float, Field(ge=0, le=limits.MAX_ESTIMATED_HOURS)] | None = None
    dependencies: Annotated[list[IdStr], Field(max_length=limits.MAX_DEPENDENCIES)] = []
    max_attempts: Annotated[int, Field(ge=1, le=limits.MAX_ATTEMPTS), Integral] | None = None
    #: knowledge topics handed to the holder in `context.knowledge`
    context_topics: Annotated[list[Topic], Field(max_length=limits.MAX_CONTEXT_TOPICS)] = []

    def spec(self) -> TaskSpec:
        return TaskSpec(
            type=self.type, id=self.id, title=self.title or "", input=self.input,
            required_capability=self.required_capability, priority=self.priority,
            critical=self.critical, infinite_scale=self.infinite_scale, roi=self.roi,
            estimated_hours=self.estimated_hours, dependencies=list(self.dependencies),
            max_attempts=self.max_attempts, context_topics=list(self.context_topics),
        )


class MergeTaskIn(_TaskHead):
    """The merge task of a split: it depends on every subtask and gets their results."""

    def spec(self) -> TaskSpec:
        return TaskSpec(type=self.type, id=self.id, title=self.title or "", input=self.input,
                        required_capability=self.required_capability)


class MergeByTask(Body):
    task: MergeTaskIn


class SplitIn(Body):
    """`POST /work/{id}/split`: the holder's subtasks (they may depend on each other) and
    how their results become the parent's."""

    fencing_token: Token
    subtasks: Annotated[list[TaskIn], Field(min_length=1)]
    merge: Literal["list", "object"] | MergeByTask = "list"


class TaskBatch(Body):
    tasks: Annotated[list[TaskIn], Field(min_length=1)]


def _batch_if(key: str) -> Callable[[Any], str]:
    """The discriminator of a body that is a batch `{key: [...]}` or one item: it picks the
    branch first, so a refusal names only the fields of the shape the client meant."""
    return lambda value: "batch" if isinstance(value, dict) and key in value else "one"


#: POST /work takes `{"tasks": [...]}` or one task
WorkIn = Annotated[
    Annotated[TaskBatch, Tag("batch")] | Annotated[TaskIn, Tag("one")],
    Discriminator(_batch_if("tasks")),
]


class RegisterIn(Body):
    capabilities: Annotated[list[Name], Field(max_length=100)]
    id: IdStr | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    max_concurrent_tasks: Annotated[int, Field(ge=1, le=1000), Integral] | None = None
    heartbeat_interval: Annotated[float, Field(ge=0.1, le=3600)] | None = None
    metadata: dict[str, Any] | None = None


class HeartbeatIn(Body):
    status: Literal["idle", "busy", "draining"] | None = None


class ClaimIn(Body):
    task_id: IdStr


Count = Annotated[int, Field(ge=0, le=usage.MAX_COUNT), Integral]


class UsageIn(Body):
    """What the attempt spent so far (its total: the store keeps the largest figures and
    sums the increase; unified_swarm/usage.py). Every field optional."""

    model_config = ConfigDict(strict=True, extra="forbid")
    cost_usd: Annotated[float, Field(ge=0.0, le=usage.MAX_COST_USD, allow_inf_nan=False)] = 0.0
    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_creation_input_tokens: Count = 0
    cache_read_input_tokens: Count = 0
    num_turns: Count = 0

    def report(self) -> dict[str, float]:
        return {f: float(getattr(self, f)) for f in usage.FIELDS}


class RateLimitIn(Body):
    """The attempt's agent waits out an API rate limit or overload now (Claude Code's
    `system/api_retry`): the session shows `rate_limited` until a report without one."""

    model_config = ConfigDict(strict=True, extra="forbid")
    attempt: Annotated[int, Field(ge=0, le=rate.MAX_RETRY_COUNT), Integral] | None = None
    max_retries: Annotated[int, Field(ge=0, le=rate.MAX_RETRY_COUNT), Integral] | None = None
    retry_in_s: Annotated[float, Field(ge=0.0, le=rate.MAX_RETRY_IN_S)] | None = None
    error_status: Annotated[int, Field(ge=100, le=599), Integral] | None = None
    error: Annotated[str, Field(max_length=rate.MAX_ERROR_CHARS)] | None = None

    def report(self) -> dict[str, object]:
        return self.model_dump(exclude_none=True)


class ProgressIn(Body):
    task_id: IdStr
    fencing_token: Token
    progress: Annotated[float, Field(ge=0.0, le=1.0)]
    message: Annotated[str, Field(max_length=4096)] | None = None
    usage: UsageIn | None = None
    rate_limit: RateLimitIn | None = None


#: how many tasks one call may claim (`max`)
Max = Annotated[int, Field(ge=1, le=MAX_CLAIM), Integral]


class NextIn(Body):
    """A complete may ask for the next task(s) in the same call: `next` (one) or `max`."""

    next: bool = False
    max: Max | None = None

    def then(self) -> int | None:
        return self.max if self.max is not None else (1 if self.next else None)


class OutcomeIn(Body):
    task_id: IdStr
    fencing_token: Token
    result: Any = None
    usage: UsageIn | None = None


class CompleteIn(OutcomeIn, NextIn):
    pass


class CompleteBatch(NextIn):
    outcomes: Annotated[list[OutcomeIn], Field(min_length=1, max_length=MAX_CLAIM)]


#: POST /work/complete takes `{"outcomes": [...]}` or one outcome, like POST /work
CompleteBody = Annotated[
    Annotated[CompleteBatch, Tag("batch")] | Annotated[CompleteIn, Tag("one")],
    Discriminator(_batch_if("outcomes")),
]


class FailIn(Body):
    task_id: IdStr
    fencing_token: Token
    error: Annotated[str, Field(max_length=65536)]
    retry: bool = True
    usage: UsageIn | None = None


class ReleaseIn(Body):
    """`POST /work/release`: the holder lets go; `note` reaches the next holder."""

    task_id: IdStr
    fencing_token: Token
    note: Annotated[str, Field(max_length=65536)] | None = None


class InputRequestIn(Body):
    task_id: IdStr
    fencing_token: Token
    question: Annotated[str, Field(min_length=1, max_length=65536)]


class InputIn(Body):
    answer: Annotated[str, Field(min_length=1, max_length=65536)]


class EmergencyTaskIn(TaskIn):
    """An emergency task: a task object that waits for nothing (it starts at once)."""

    dependencies: Annotated[list[IdStr], Field(max_length=0)] = []


class EmergencyIn(Body):
    """`POST /swarm/emergency`: the task (no dependencies), whether every other session
    stops taking new work until it ends, whether a running task may be preempted for it."""

    task: EmergencyTaskIn
    interrupt: bool = True
    preempt: bool = True


class CancelIn(Body):
    reason: Annotated[str, Field(max_length=1024)] = "cancelled by operator"


class InterruptIn(Body):
    reason: Annotated[str, Field(min_length=1, max_length=1024)]


class KnowledgeIn(Body):
    content: Any
    expected_version: Annotated[int, Field(ge=0, le=MAX_SAFE_INT), Integral] | None = None
    tags: Annotated[list[Str64], Field(max_length=100)] = []
