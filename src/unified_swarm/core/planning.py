"""Planning a batch of tasks: ids, field checks, the dependency graph, first statuses.

`plan_batch` is pure: it takes the statuses of the stored tasks the batch names and returns
the tasks in dependency order with their first status and priority. `add_tasks` runs it
against a store: read those statuses, plan, and insert only if they still hold
(`Store.insert_batch`), planning again when one moved in between. So a batch is checked
against exactly the state it is written into, on every backend alike.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Mapping, Sequence

from ..config import CATALOGUE, Settings
from ..errors import (
    AlreadyExists,
    DependencyCycle,
    InvalidInput,
    Unavailable,
    UnknownCapability,
    UnknownDependency,
)
from ..lifecycle import EMERGENCY_PRIORITY, MAX_PRIORITY, compute_priority, status_from_deps
from ..models import Clock, Idem, Task, TaskSpec, TaskStatus
from ..store.base import Store
from . import limits

S = TaskStatus
#: plans of one batch before giving up (its dependencies kept moving under it)
MAX_REPLANS = 8

def new_task_id() -> str:
    return f"task-{uuid.uuid4().hex}"


def validate_spec(spec: TaskSpec, settings: Settings) -> None:
    """Field checks that need no store: ids, capability, priority range, attempts."""
    if spec.id is not None:
        limits.check_id(spec.id, "task id")
    if not spec.type or len(spec.type) > limits.MAX_TYPE:
        raise InvalidInput(f"task type must be 1..{limits.MAX_TYPE} characters")
    cap = spec.required_capability or spec.type
    limits.check_name(cap, "capability")
    if settings.strict_capabilities and cap not in CATALOGUE:
        raise UnknownCapability(f"capability {cap!r} is not in the catalogue: {sorted(CATALOGUE)}")
    if spec.priority is not None and not limits.MIN_PRIORITY <= spec.priority <= MAX_PRIORITY:
        raise InvalidInput(f"priority must be within {limits.MIN_PRIORITY}..{MAX_PRIORITY}, "
                           f"got {spec.priority}")
    if spec.max_attempts is not None and not 1 <= spec.max_attempts <= limits.MAX_ATTEMPTS:
        raise InvalidInput(f"max_attempts must be within 1..{limits.MAX_ATTEMPTS}")
    if (spec.estimated_hours is not None
            and not 0 <= spec.estimated_hours <= limits.MAX_ESTIMATED_HOURS):
        raise InvalidInput(f"estimated_hours must be within 0..{limits.MAX_ESTIMATED_HOURS:.0f}")
    if len(spec.title) > limits.MAX_TITLE or len(spec.roi or "") > limits.MAX_ROI:
        raise InvalidInput(f"a title is at most {limits.MAX_TITLE} characters, a roi "
                           f"{limits.MAX_ROI}")
    if len(spec.dependencies) > limits.MAX_DEPENDENCIES:
        raise InvalidInput(f"a task can have at most {limits.MAX_DEPENDENCIES} dependencies")
    if len(spec.context_topics) > limits.MAX_CONTEXT_TOPICS:
        raise InvalidInput(f"a task names at most {limits.MAX_CONTEXT_TOPICS} context topics")
    for topic in spec.context_topics:
        limits.check_topic(topic)
    if spec.id is not None and spec.id in spec.dependencies:
        raise DependencyCycle(f"task {spec.id!r} depends on itself")


def prepare(specs: Sequence[TaskSpec], settings: Settings) -> None:
    """Give every spec an id (generated when the client gave none) and check its fields and
    the batch's ids: everything that needs no store. Raises InvalidInput, AlreadyExists."""
    for spec in specs:
        spec.id = spec.id or new_task_id()
        validate_spec(spec, settings)
    ids = [s.id for s in specs]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise AlreadyExists(f"task id {dup!r} appears twice in the batch")


def named(specs: Sequence[TaskSpec]) -> list[str]:
    """The ids a plan must look up in the store: the batch's own, and its dependencies."""
    return sorted({s.id for s in specs if s.id} | {d for s in specs for d in s.dependencies})


def plan_batch(
    specs: Sequence[TaskSpec],
    stored: Mapping[str, TaskStatus],
    now: float,
    settings: Settings,
) -> list[Task]:
    """Turn a batch into tasks with their first status, all or nothing.

    `stored` holds the status of each task the batch names that exists in the store. A new
    task may depend on tasks of the same batch or on stored ones; existing tasks cannot
    depend on new ones, so a cycle can only lie inside the batch. Raises AlreadyExists,
    UnknownDependency or DependencyCycle and builds nothing then. Tasks come back in
    dependency order (a task after everything it depends on).
    """
    prepare(specs, settings)
    in_batch = {s.id for s in specs if s.id is not None}  # every one, once prepared
    taken = sorted(i for i in in_batch if i in stored)
    if taken:
        raise AlreadyExists(f"task id {taken[0]!r} already exists")
    external = sorted({d for s in specs for d in s.dependencies} - in_batch)
    missing = [d for d in external if d not in stored]
    if missing:
        raise UnknownDependency(f"unknown dependency {missing[0]!r}")
    statuses: dict[str, TaskStatus] = {d: stored[d] for d in external}
    tasks: list[Task] = []
    for spec in _topological(specs):
        assert spec.id is not None
        status = status_from_deps(statuses[d] for d in dict.fromkeys(spec.dependencies))
        statuses[spec.id] = status
        tasks.append(_build(spec, status, now, settings))
    return tasks


def assumed(tasks: Sequence[Task], stored: Mapping[str, TaskStatus]) -> dict[str, TaskStatus]:
    """What a plan assumed of the store: the status of each dependency outside the batch."""
    new = {t.id for t in tasks}
    return {d: stored[d] for t in tasks for d in t.dependencies if d not in new}


async def add_tasks(store: Store, specs: Sequence[TaskSpec], clock: Clock,
                    settings: Settings, idem: Idem | None = None, *,
                    emergency: bool = False) -> list[Task]:
    """Plan the batch against the store and insert it if what the plan read still holds; plan
    again when a dependency moved in between (at most MAX_REPLANS times). The batch is dated
    by `clock` after the read, right before its write. `emergency` puts every task of the
    batch in the emergency class (operators only, POST /swarm/emergency)."""
    prepare(specs, settings)  # refuse bad input before reading anything
    # Without dependencies the plan needs nothing from the store: a taken id is the only
    # thing the read could find, and the insert step refuses it itself, with the same
    # AlreadyExists. So the common submit is one store step, not two.
    free = not any(s.dependencies for s in specs)
    for _ in range(MAX_REPLANS):
        stored = {} if free else await store.task_statuses(named(specs))
        now = clock()
        tasks = plan_batch(specs, stored, now, settings)
        for t in tasks if emergency else ():
            t.priority, t.priority_given, t.critical = EMERGENCY_PRIORITY, True, True
        added = await store.insert_batch(tasks, assumed(tasks, stored), now, idem)
        if added is not None:
            return added
    raise Unavailable("the batch's dependencies kept changing while it was added; "
                      "send it again", retry_after=0.1)


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
        context_topics=list(dict.fromkeys(spec.context_topics)),
        depth=spec.depth,
        created_at=now,
        updated_at=now,
    )
