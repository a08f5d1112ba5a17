"""The split step: the holder hands its task to subtasks in one transaction. Ending a split
parent (merge, failure, cascade) happens in the steps that end its subtasks (tasks.py:
`child_ended`, `cancel_tree`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from ... import lifecycle
from ...errors import AlreadyExists, InvalidInput
from ...jsonutil import dumps, loads
from ...models import Event, Outcome, Recorded, Split, Task, TaskStatus
from .rows import emit, end_attempt, load_task, save_task
from .tasks import _held, _maybe_idle, insert_batch, split_row, statuses

S = TaskStatus
Conn = sqlite3.Connection


def split(conn: Conn, ev: list[Event], session_id: str, task_id: str, token: int,
          subtasks: Sequence[Task], order: Sequence[str], merge: str, merge_task: str | None,
          assumed: Mapping[str, TaskStatus], digest: str, now: float) -> Split | None:
    """Under a valid lease: end the attempt `split`, park the parent `waiting` (no lease,
    no session) and insert its subtasks; None (nothing written) when a dependency the plan
    read has moved. The very same split again answers what the first one made."""
    held = _held(conn, session_id, task_id, token, now, Outcome.SPLIT, digest)
    if isinstance(held, Recorded):
        return _replay(conn, held.task)
    parent = held
    if not order:
        raise InvalidInput(f"a split of {task_id!r} needs at least one subtask")
    if statuses(conn, list(assumed)) != dict(assumed):
        return None
    taken = statuses(conn, [t.id for t in subtasks])
    if taken:
        raise AlreadyExists(f"task id {next(iter(taken))!r} already exists")
    lifecycle.check_transition(parent.status, S.WAITING)
    end_attempt(conn, parent, now, Outcome.SPLIT, None, digest)
    parent.status, parent.assigned_to, parent.lease_expires_at = S.WAITING, None, None
    parent.updated_at = now
    save_task(conn, parent)
    _maybe_idle(conn, session_id, now)
    conn.execute("INSERT INTO splits (task_id, fencing_token, merge, merge_task, children) "
                 "VALUES (?, ?, ?, ?, ?)", (parent.id, token, merge, merge_task,
                                            dumps(list(order))))
    emit(conn, ev, "task.split", now, {
        "task_id": parent.id, "session_id": session_id, "fencing_token": token,
        "subtasks": list(order), "merge": merge, "merge_task": merge_task,
        "required_capability": parent.required_capability})
    added = insert_batch(conn, ev, subtasks, {}, now)
    assert added is not None
    by_id = {t.id: t for t in added}
    return Split(parent, [by_id[i] for i in order])


def _replay(conn: Conn, parent: Task) -> Split:
    row = split_row(conn, parent.id)
    assert row is not None
    found = [load_task(conn, i) for i in loads(row["children"])]
    return Split(parent, [t for t in found if t is not None], duplicate=True)
