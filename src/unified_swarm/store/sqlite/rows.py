"""Rows <-> records, and the small writes every step shares (events, attempts)."""

from __future__ import annotations

import sqlite3
from typing import Any

from ...jsonutil import dumps, loads
from ...models import (
    Attempt,
    Event,
    KnowledgeEntry,
    Lease,
    Outcome,
    Session,
    SessionStatus,
    Task,
    TaskStatus,
)
from .schema import HELD_IN

TASK_COLUMNS = (
    "id", "type", "title", "input", "required_capability", "priority", "priority_given",
    "critical", "infinite_scale", "roi", "estimated_hours", "dependencies", "status",
    "assigned_to", "attempts", "max_attempts", "lease_expires_at", "fencing_token", "progress",
    "progress_message", "result", "error", "parent_id", "created_at", "started_at",
    "completed_at", "updated_at", "context_topics", "depth", "preempt_at",
)
INSERT_TASK = (
    f"INSERT INTO tasks ({', '.join(TASK_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in TASK_COLUMNS)})"
)
#: the columns a state change may touch, written back by `save_task`
MUTABLE = (
    "priority", "status", "assigned_to", "attempts", "lease_expires_at", "fencing_token",
    "progress", "progress_message", "result", "error", "started_at", "completed_at", "updated_at",
    "preempt_at",
)
UPDATE_TASK = f"UPDATE tasks SET {', '.join(f'{c} = ?' for c in MUTABLE)} WHERE id = ?"


def task_from_row(row: sqlite3.Row) -> Task:
    return Task(
        id=row["id"],
        type=row["type"],
        title=row["title"],
        input=loads(row["input"]),
        required_capability=row["required_capability"],
        priority=row["priority"],
        priority_given=bool(row["priority_given"]),
        critical=bool(row["critical"]),
        infinite_scale=bool(row["infinite_scale"]),
        roi=row["roi"],
        estimated_hours=row["estimated_hours"],
        dependencies=loads(row["dependencies"]),
        status=TaskStatus(row["status"]),
        assigned_to=row["assigned_to"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        lease_expires_at=row["lease_expires_at"],
        fencing_token=row["fencing_token"],
        progress=row["progress"],
        progress_message=row["progress_message"],
        result=loads(row["result"]),
        error=row["error"],
        parent_id=row["parent_id"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        updated_at=row["updated_at"],
        seq=row["seq"],
        preempt_at=row["preempt_at"],
        context_topics=loads(row["context_topics"]),
        depth=row["depth"],
    )


def task_values(t: Task) -> tuple[Any, ...]:
    return (
        t.id, t.type, t.title, dumps(t.input), t.required_capability, t.priority,
        int(t.priority_given), int(t.critical), int(t.infinite_scale), t.roi, t.estimated_hours,
        dumps(t.dependencies), t.status.value, t.assigned_to, t.attempts, t.max_attempts,
        t.lease_expires_at, t.fencing_token, t.progress, t.progress_message,
        None if t.result is None else dumps(t.result), t.error, t.parent_id, t.created_at,
        t.started_at, t.completed_at, t.updated_at, dumps(t.context_topics), t.depth,
        t.preempt_at,
    )


def save_task(conn: sqlite3.Connection, t: Task) -> None:
    conn.execute(UPDATE_TASK, (
        t.priority, t.status.value, t.assigned_to, t.attempts, t.lease_expires_at,
        t.fencing_token, t.progress, t.progress_message,
        None if t.result is None else dumps(t.result), t.error, t.started_at, t.completed_at,
        t.updated_at, t.preempt_at, t.id,
    ))


def load_task(conn: sqlite3.Connection, task_id: str) -> Task | None:
    row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return None if row is None else task_from_row(row)


def add_note(conn: sqlite3.Connection, task_id: str, note: dict[str, Any]) -> None:
    """Append a handoff note to the task, inside the caller's step."""
    conn.execute("INSERT INTO notes (task_id, n, note) VALUES (?, (SELECT COUNT(*) FROM notes "
                 "WHERE task_id = ?) + 1, ?)", (task_id, task_id, dumps(note)))


def load_notes(conn: sqlite3.Connection, task_id: str) -> list[Any]:
    rows = conn.execute("SELECT note FROM notes WHERE task_id = ? ORDER BY n", (task_id,))
    return [loads(r[0]) for r in rows]


def session_from_row(row: sqlite3.Row, current: list[str]) -> Session:
    return Session(
        id=row["id"],
        name=row["name"],
        capabilities=loads(row["capabilities"]),
        status=SessionStatus(row["status"]),
        max_concurrent_tasks=row["max_concurrent_tasks"],
        heartbeat_interval=row["heartbeat_interval"],
        last_heartbeat=row["last_heartbeat"],
        registered_at=row["registered_at"],
        metadata=loads(row["metadata"]),
        performance_score=row["performance_score"],
        capability_scores=loads(row["capability_scores"]),
        tasks_completed=row["tasks_completed"],
        tasks_failed=row["tasks_failed"],
        current_tasks=current,
        detected_capabilities=loads(row["detected_capabilities"]),
        usage=None if row["usage"] is None else loads(row["usage"]),
        rate_limited=None if row["rate_limited"] is None else loads(row["rate_limited"]),
    )


def held_ids(conn: sqlite3.Connection, session_id: str) -> list[str]:
    rows = conn.execute(
        f"SELECT id FROM tasks WHERE assigned_to = ? AND status IN {HELD_IN} ORDER BY seq",
        (session_id,)).fetchall()
    return [r[0] for r in rows]


def load_session(conn: sqlite3.Connection, session_id: str) -> Session | None:
    row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return None if row is None else session_from_row(row, held_ids(conn, session_id))


def attempt_from_row(row: sqlite3.Row) -> Attempt:
    return Attempt(
        task_id=row["task_id"],
        attempt=row["attempt"],
        session_id=row["session_id"],
        fencing_token=row["fencing_token"],
        capability=row["capability"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        outcome=Outcome(row["outcome"]) if row["outcome"] else None,
        error=row["error"],
        lease_expires_at=row["lease_expires_at"],
        predicted=row["predicted"],
        usage=None if row["usage"] is None else loads(row["usage"]),
    )


def entry_from_row(row: sqlite3.Row) -> KnowledgeEntry:
    return KnowledgeEntry(
        topic=row["topic"],
        version=row["version"],
        content=loads(row["content"]),
        updated_by=row["updated_by"],
        updated_at=row["updated_at"],
        tags=loads(row["tags"]),
        deleted=bool(row["deleted"]),
    )


def lease_of(t: Task) -> Lease:
    assert t.assigned_to is not None and t.lease_expires_at is not None
    return Lease(t.id, t.assigned_to, t.fencing_token, t.lease_expires_at)


def held_lease(t: Task, notes: list[Any]) -> Lease:
    """A lease as the heartbeat shows it to its holder: with the task's status (a paused
    one has no deadline), the end of a preemption's grace, and the handoff notes."""
    assert t.assigned_to is not None
    return Lease(t.id, t.assigned_to, t.fencing_token, t.lease_expires_at, t.status,
                 t.preempt_at, notes)


def emit(conn: sqlite3.Connection, out: list[Event], type_: str, now: float,
         data: dict[str, Any]) -> None:
    """Append an event in the same transaction as the change it describes."""
    cur = conn.execute("INSERT INTO events (type, at, data) VALUES (?, ?, ?)",
                       (type_, now, dumps(data)))
    assert cur.lastrowid is not None
    out.append(Event(cur.lastrowid, type_, now, data))


def end_attempt(conn: sqlite3.Connection, t: Task, now: float, outcome: Outcome,
                error: str | None, digest: str | None = None) -> None:
    conn.execute(
        "UPDATE attempts SET ended_at = ?, outcome = ?, error = ?, digest = ?, "
        "lease_expires_at = ? WHERE task_id = ? AND fencing_token = ?",
        (now, outcome.value, error, digest, t.lease_expires_at, t.id, t.fencing_token))
