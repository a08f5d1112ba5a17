"""Rows <-> records, and the small writes every step shares (events, attempts)."""

from __future__ import annotations

import sqlite3
from typing import Any

from ...jsonutil import dumps, loads
from ...models import (
    Attempt,
    Candidate,
    Event,
    KnowledgeEntry,
    Outcome,
    Session,
    Task,
)
from ..records import Kinds, Reader
from .schema import HELD_IN

TASK_COLUMNS = (
    "id", "type", "title", "input", "required_capability", "priority", "priority_given",
    "critical", "infinite_scale", "roi", "estimated_hours", "dependencies", "status",
    "assigned_to", "attempts", "max_attempts", "lease_expires_at", "fencing_token", "progress",
    "progress_message", "result", "error", "parent_id", "created_at", "started_at",
    "completed_at", "updated_at", "context_topics", "depth", "preempt_at", "preemptions",
)
INSERT_TASK = (
    f"INSERT INTO tasks ({', '.join(TASK_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in TASK_COLUMNS)})"
)
#: the columns a state change may touch, written back by `save_task`
MUTABLE = (
    "priority", "status", "assigned_to", "attempts", "lease_expires_at", "fencing_token",
    "progress", "progress_message", "result", "error", "started_at", "completed_at", "updated_at",
    "preempt_at", "preemptions",
)
UPDATE_TASK = f"UPDATE tasks SET {', '.join(f'{c} = ?' for c in MUTABLE)} WHERE id = ?"


#: SQLite keeps numbers as numbers, flags as 0/1 and JSON as text
KINDS: Kinds = {bool: bool}
_task = Reader(Task, KINDS, skip=("context", "split_suggested"))  # not stored: built on reads
_session = Reader(Session, KINDS, skip=("current_tasks", "stats", "quarantined_until"))
_attempt = Reader(Attempt, KINDS)
_entry = Reader(KnowledgeEntry, KINDS)
_candidate = Reader(Candidate, KINDS)


def task_from_row(row: sqlite3.Row) -> Task:
    return _task(row.__getitem__)


def attempt_from_row(row: sqlite3.Row) -> Attempt:
    return _attempt(row.__getitem__)


def entry_from_row(row: sqlite3.Row) -> KnowledgeEntry:
    return _entry(row.__getitem__)


def candidate_from_row(row: sqlite3.Row) -> Candidate:
    return _candidate(row.__getitem__)


def task_values(t: Task) -> tuple[Any, ...]:
    return (
        t.id, t.type, t.title, dumps(t.input), t.required_capability, t.priority,
        int(t.priority_given), int(t.critical), int(t.infinite_scale), t.roi, t.estimated_hours,
        dumps(t.dependencies), t.status.value, t.assigned_to, t.attempts, t.max_attempts,
        t.lease_expires_at, t.fencing_token, t.progress, t.progress_message,
        None if t.result is None else dumps(t.result), t.error, t.parent_id, t.created_at,
        t.started_at, t.completed_at, t.updated_at, dumps(t.context_topics), t.depth,
        t.preempt_at, t.preemptions,
    )


def save_task(conn: sqlite3.Connection, t: Task) -> None:
    conn.execute(UPDATE_TASK, (
        t.priority, t.status.value, t.assigned_to, t.attempts, t.lease_expires_at,
        t.fencing_token, t.progress, t.progress_message,
        None if t.result is None else dumps(t.result), t.error, t.started_at, t.completed_at,
        t.updated_at, t.preempt_at, t.preemptions, t.id,
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
    return _session(row.__getitem__, current_tasks=current)


def held_ids(conn: sqlite3.Connection, session_id: str) -> list[str]:
    rows = conn.execute(
        f"SELECT id FROM tasks WHERE assigned_to = ? AND status IN {HELD_IN} ORDER BY seq",
        (session_id,)).fetchall()
    return [r[0] for r in rows]


def load_session(conn: sqlite3.Connection, session_id: str) -> Session | None:
    row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return None if row is None else session_from_row(row, held_ids(conn, session_id))


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
