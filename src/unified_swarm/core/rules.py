"""Pure coordination rules: priorities, the task state machine, DAG checks, leases, learning.

Every function takes `now` (seconds since the epoch) when it needs time and reads no clock,
so tests drive hours of protocol time without sleeping. Both stores call these inside their
atomic step, so the rules are written once.
"""

from __future__ import annotations

import heapq
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..config import CATALOGUE, Settings
from ..errors import (
    AlreadyExists,
    DependencyCycle,
    InvalidInput,
    SwarmError,
    UnknownCapability,
    UnknownDependency,
)
from ..models import JSON, Task, TaskStatus

S = TaskStatus

#: The only transitions a task can make (DESIGN.md). `ready -> in_progress` is the atomic
#: assign-and-claim of GET /work/request and POST /work/claim; `assigned -> ready` is an offer
#: that was not claimed in time; `in_progress -> ready` is an expired or released lease.
TRANSITIONS: frozenset[tuple[TaskStatus, TaskStatus]] = frozenset(
    {
        (S.PENDING, S.READY),
        (S.PENDING, S.BLOCKED),
        (S.PENDING, S.CANCELLED),
        (S.READY, S.ASSIGNED),
        (S.READY, S.IN_PROGRESS),
        (S.READY, S.CANCELLED),
        (S.ASSIGNED, S.IN_PROGRESS),
        (S.ASSIGNED, S.READY),
        (S.ASSIGNED, S.CANCELLED),
        (S.IN_PROGRESS, S.COMPLETED),
        (S.IN_PROGRESS, S.FAILED),
        (S.IN_PROGRESS, S.READY),
        (S.IN_PROGRESS, S.CANCELLED),
    }
)

#: Ids and topics may hold "/", but each "/"-separated segment must be a real name: none
#: empty, "." or "..", which URL normalisation rewrites (GET /work/a/../b reaches /work/b),
#: so everything stays addressable and nothing looks like a path traversal.
SEGMENTS = r"(?!/)(?!.*//)(?!.*/$)(?!(?:.*[/\\])?\.\.?(?:[/\\]|$))"
#: the grammar of ids and names, as JSON Schema (ECMA) patterns for the API's schema...
ID_PATTERN = "^" + SEGMENTS + r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
#: ...and as Python regexes, ending in `\Z`: `$` also matches before a final "\n"
ID_RE = re.compile(ID_PATTERN.removesuffix("$") + r"\Z")
NAME_RE = re.compile(NAME_PATTERN.removesuffix("$") + r"\Z")
BASE_PRIORITY = 5
MAX_PRIORITY = 10
SCORE_ALPHA = 0.2


class IllegalTransition(SwarmError):
    """A store tried a transition DESIGN.md does not have: a bug, never a client error."""

    code = "illegal_transition"


def check_transition(old: TaskStatus, new: TaskStatus) -> None:
    if (old, new) not in TRANSITIONS:
        raise IllegalTransition(f"task cannot go from {old} to {new}")


@dataclass(slots=True)
class TaskSpec:
    """A task as a client describes it, before the store gives it a status."""

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


def compute_priority(spec: TaskSpec | Task, deps_met: bool) -> int:
    """The seed's rule: 5; +3 critical, +2 infinite_scale, +1 roi "high", +1 dependencies met.

    A task without dependencies has its dependencies met, so a plain task gets 6. Capped at 10.
    """
    p = BASE_PRIORITY
    p += 3 if spec.critical else 0
    p += 2 if spec.infinite_scale else 0
    p += 1 if (spec.roi or "").lower() == "high" else 0
    p += 1 if deps_met else 0
    return min(p, MAX_PRIORITY)


def status_from_deps(dep_statuses: Iterable[TaskStatus]) -> TaskStatus:
    """pending while a dependency is open, blocked once one can never complete, else ready."""
    statuses = list(dep_statuses)
    if any(s in (S.FAILED, S.CANCELLED, S.BLOCKED) for s in statuses):
        return S.BLOCKED
    if all(s == S.COMPLETED for s in statuses):
        return S.READY
    return S.PENDING


def new_task_id() -> str:
    return f"task-{uuid.uuid4().hex}"


def validate_spec(spec: TaskSpec, settings: Settings) -> None:
    """Field checks that need no store: ids, capability, priority range, attempts."""
    if spec.id is not None and not ID_RE.match(spec.id):
        raise InvalidInput(f"task id {spec.id!r} must match {ID_RE.pattern}")
    if not spec.type or len(spec.type) > 64:
        raise InvalidInput("task type must be 1..64 characters")
    cap = spec.required_capability or spec.type
    if not NAME_RE.match(cap):
        raise InvalidInput(f"capability {cap!r} must match {NAME_RE.pattern}")
    if settings.strict_capabilities and cap not in CATALOGUE:
        raise UnknownCapability(f"capability {cap!r} is not in the catalogue: {sorted(CATALOGUE)}")
    if spec.priority is not None and not 1 <= spec.priority <= MAX_PRIORITY:
        raise InvalidInput(f"priority must be within 1..10, got {spec.priority}")
    if spec.max_attempts is not None and not 1 <= spec.max_attempts <= 100:
        raise InvalidInput("max_attempts must be within 1..100")
    if spec.estimated_hours is not None and not 0 <= spec.estimated_hours <= 1e6:
        raise InvalidInput("estimated_hours must be within 0..1000000")
    if len(spec.dependencies) > 1000:
        raise InvalidInput("a task can have at most 1000 dependencies")
    if spec.id is not None and spec.id in spec.dependencies:
        raise DependencyCycle(f"task {spec.id!r} depends on itself")


def plan_batch(
    specs: Sequence[TaskSpec],
    lookup: Callable[[list[str]], Mapping[str, TaskStatus]],
    now: float,
    settings: Settings,
) -> list[Task]:
    """Turn a batch into tasks with their first status, all or nothing.

    `lookup(ids)` answers the status of each id that already exists in the store (read inside
    the store's atomic step). A new task may depend on tasks of the same batch or on stored
    ones; existing tasks cannot depend on new ones, so a cycle can only lie inside the batch.
    Raises AlreadyExists, UnknownDependency or DependencyCycle and builds nothing then.
    Tasks come back in dependency order (a task after everything it depends on).
    """
    ids = [s.id or new_task_id() for s in specs]
    for spec, tid in zip(specs, ids, strict=True):
        spec.id = tid
        validate_spec(spec, settings)
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise AlreadyExists(f"task id {dup!r} appears twice in the batch")
    in_batch = set(ids)
    external = sorted({d for s in specs for d in s.dependencies} - in_batch)
    stored = dict(lookup(sorted(in_batch | set(external))))
    taken = sorted(in_batch & stored.keys())
    if taken:
        raise AlreadyExists(f"task id {taken[0]!r} already exists")
    missing = [d for d in external if d not in stored]
    if missing:
        raise UnknownDependency(f"unknown dependency {missing[0]!r}")
    order = _topological(specs)
    statuses: dict[str, TaskStatus] = dict(stored)
    tasks: list[Task] = []
    for spec in order:
        assert spec.id is not None
        status = status_from_deps(statuses[d] for d in dict.fromkeys(spec.dependencies))
        statuses[spec.id] = status
        tasks.append(_build(spec, status, now, settings))
    return tasks


def _topological(specs: Sequence[TaskSpec]) -> list[TaskSpec]:
    """Kahn's algorithm over the in-batch edges, keeping the client's order where it can.

    Anything never released sits on a cycle.
    """
    position = {s.id: n for n, s in enumerate(specs)}
    indegree = [0] * len(specs)
    children: list[list[int]] = [[] for _ in specs]
    for n, s in enumerate(specs):
        for d in dict.fromkeys(s.dependencies):
            if d in position:
                indegree[n] += 1
                children[position[d]].append(n)
    heap = [n for n, deg in enumerate(indegree) if deg == 0]
    heapq.heapify(heap)
    out: list[TaskSpec] = []
    while heap:
        n = heapq.heappop(heap)
        out.append(specs[n])
        for child in children[n]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(heap, child)
    if len(out) != len(specs):
        stuck = sorted(str(specs[n].id) for n, deg in enumerate(indegree) if deg > 0)
        raise DependencyCycle(f"dependency cycle among {stuck[:10]}")
    return out


def _build(spec: TaskSpec, status: TaskStatus, now: float, settings: Settings) -> Task:
    assert spec.id is not None
    deps_met = status == S.READY
    given = spec.priority is not None
    return Task(
        id=spec.id,
        type=spec.type,
        title=spec.title or spec.id,
        input=spec.input,
        required_capability=spec.required_capability or spec.type,
        priority=spec.priority if spec.priority is not None else compute_priority(spec, deps_met),
        priority_given=given,
        critical=spec.critical,
        infinite_scale=spec.infinite_scale,
        roi=spec.roi,
        estimated_hours=spec.estimated_hours,
        dependencies=list(dict.fromkeys(spec.dependencies)),
        status=status,
        max_attempts=spec.max_attempts or settings.default_max_attempts,
        parent_id=spec.parent_id,
        created_at=now,
        updated_at=now,
    )


def on_ready(task: Task) -> None:
    """pending -> ready once every dependency completed; the computed priority gains its +1."""
    check_transition(task.status, S.READY)
    task.status = S.READY
    if not task.priority_given:
        task.priority = compute_priority(task, deps_met=True)


def sort_key(task: Task) -> tuple[int, int]:
    """Best first: higher priority, then older (lower insertion sequence)."""
    return (-task.priority, task.seq)


def lease_deadline(now: float, heartbeat_interval: float, settings: Settings) -> float:
    return now + settings.lease_ttl(heartbeat_interval)


def after_release(task: Task, retry: bool) -> TaskStatus:
    """Where a task goes when its attempt ends without success (failed, expired, released).

    Back to ready while attempts remain and a retry is wanted, else failed for good.
    """
    if retry and task.attempts < task.max_attempts:
        return S.READY
    return S.FAILED


def updated_score(old: float, success: bool) -> float:
    """Exponentially weighted success rate: recent attempts count most."""
    return (1 - SCORE_ALPHA) * old + SCORE_ALPHA * (1.0 if success else 0.0)
