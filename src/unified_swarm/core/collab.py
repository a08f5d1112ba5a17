"""Splitting a task: the checks and the plan above the store's one atomic step.

The holder of a task hands its work to subtasks (`POST /work/{id}/split`): they are planned
like any batch (core/planning.py: ids, fields, dependencies among them, first statuses),
each with `parent_id` and one more level of `depth`, plus, for the `task` merge strategy, a
merge task that depends on every subtask. The store then ends the attempt `split`, parks
the parent `waiting` and inserts the subtasks in one step (`Store.split`), and completes or
fails the parent in the steps that end its subtasks (collab.py's rules). Here: what may be
split (depth cap, no subtask waiting on its own ancestors) and the request's digest, so
that a retried split answers the same subtasks instead of making new ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from .. import collab
from ..config import Settings
from ..errors import InvalidInput, NotFound, Unavailable
from ..jsonutil import digest
from ..models import Clock, Split, Task, TaskSpec, TaskStatus
from ..store.base import Store
from . import planning


@dataclass(frozen=True, slots=True)
class Merge:
    """How the parent's result is made: `list`, `object`, or `task` with the merge task."""

    strategy: str
    task: TaskSpec | None = None


def check_merge(merge: Merge) -> None:
    if merge.strategy not in collab.STRATEGIES:
        raise InvalidInput(f"merge must be one of {list(collab.STRATEGIES)} or "
                           '{"task": {...}}')
    if (merge.strategy == collab.TASK) != (merge.task is not None):
        raise InvalidInput('merge "task" needs the merge task, and only it has one')


def request_digest(specs: Sequence[TaskSpec], merge: Merge) -> str:
    """The split as asked (before ids are generated), for idempotency."""
    return digest([[dataclasses.asdict(s) for s in specs], merge.strategy,
                   None if merge.task is None else dataclasses.asdict(merge.task)])


async def ancestors(store: Store, task: Task) -> list[str]:
    """The task and every split parent above it (at most its depth + 1 ids)."""
    chain, cur = [task.id], task
    for _ in range(task.depth):
        if cur.parent_id is None:
            break
        parent = await store.get_task(cur.parent_id)
        if parent is None:
            break
        chain.append(parent.id)
        cur = parent
    return chain


def prepare(parent: Task, specs: Sequence[TaskSpec], merge: Merge, above: Sequence[str],
            settings: Settings) -> tuple[list[TaskSpec], list[str], str | None]:
    """The subtasks as a batch (the merge task last), their ids in the holder's order, and
    the merge task's id. Raises InvalidInput for a split past the depth cap, an empty or
    oversized one, or a subtask that depends on the task itself or a parent above it."""
    if not specs:
        raise InvalidInput("a split needs at least one subtask")
    if len(specs) + 1 > settings.max_batch:
        raise InvalidInput(f"a split makes at most {settings.max_batch - 1} subtasks")
    depth = parent.depth + 1
    if depth > settings.max_split_depth:
        raise InvalidInput(f"task {parent.id!r} is {parent.depth} split(s) deep already: "
                           f"splits nest at most {settings.max_split_depth} deep")
    batch = [dataclasses.replace(s, parent_id=parent.id, depth=depth) for s in specs]
    planning.prepare(batch, settings)
    waiting_on = set(above) & {d for s in batch for d in s.dependencies}
    if waiting_on:
        raise InvalidInput(f"a subtask cannot depend on {sorted(waiting_on)[0]!r}: it waits "
                           "for its subtasks")
    order = [str(s.id) for s in batch]
    merge_id = None
    if merge.task is not None:
        mt = dataclasses.replace(merge.task, parent_id=parent.id, depth=depth,
                                 dependencies=list(order))
        planning.prepare([mt], settings)
        merge_id = str(mt.id)
        if merge_id in order:
            raise InvalidInput(f"the merge task's id {merge_id!r} is a subtask's")
        batch.append(mt)
        order.append(merge_id)
    return batch, order, merge_id


async def split(store: Store, settings: Settings, clock: Clock, session_id: str,
                task_id: str, token: int, specs: Sequence[TaskSpec], merge: Merge) -> Split:
    """Plan the subtasks against the store and split under the caller's lease in one step;
    plan again when a dependency moved in between. A split already recorded for this lease
    answers as it did (`duplicate`), whatever the store holds now."""
    check_merge(merge)
    asked = request_digest(specs, merge)
    parent = await store.get_task(task_id)
    if parent is None:
        raise NotFound(f"task {task_id!r} does not exist")
    if parent.status != TaskStatus.IN_PROGRESS:
        # not running: a retried split (answered from the store), or a refusal it words
        done = await store.split(session_id, task_id, token, [], [], merge.strategy, None,
                                 {}, asked, clock())
        assert done is not None
        return done
    batch, order, merge_id = prepare(parent, specs, merge, await ancestors(store, parent),
                                     settings)
    for _ in range(planning.MAX_REPLANS):
        stored = await store.task_statuses(planning.named(batch))
        now = clock()
        tasks = planning.plan_batch(batch, stored, now, settings)
        done = await store.split(session_id, task_id, token, tasks, order, merge.strategy,
                                 merge_id, planning.assumed(tasks, stored), asked, now)
        if done is not None:
            return done
    raise Unavailable("the subtasks' dependencies kept changing while the task was split; "
                      "send it again", retry_after=0.1)
