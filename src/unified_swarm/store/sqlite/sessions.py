"""Session steps: join, heartbeat, leave, drain, and the silent-session half of the reaper."""

from __future__ import annotations

import sqlite3

from ... import lifecycle
from ...errors import AlreadyExists, NotFound
from ...jsonutil import dumps
from ...models import Event, Heartbeat, Outcome, Session, SessionStatus, Task, TaskStatus
from ..records import held_lease
from .claims import revive
from .rows import emit, load_notes, load_session
from .schema import RUNNING
from .tasks import held_now, release_held, release_task

Conn = sqlite3.Connection


def register(conn: Conn, ev: list[Event], s: Session, token_hash: str, now: float) -> Session:
    old = conn.execute("SELECT status FROM sessions WHERE id = ?", (s.id,)).fetchone()
    if old is not None and old["status"] != SessionStatus.OFFLINE.value:
        raise AlreadyExists(f"session {s.id!r} is online already")
    if old is None:
        conn.execute(
            "INSERT INTO sessions (id, name, capabilities, status, max_concurrent_tasks, "
            "heartbeat_interval, last_heartbeat, registered_at, idle_since, token_hash, "
            "metadata) VALUES (?, ?, ?, 'idle', ?, ?, ?, ?, ?, ?, ?)",
            (s.id, s.name, dumps(s.capabilities), s.max_concurrent_tasks, s.heartbeat_interval,
             now, now, now, token_hash, dumps(s.metadata)))
    else:  # resume: history, counters and scores stay
        conn.execute(
            "UPDATE sessions SET name = ?, capabilities = ?, status = 'idle', "
            "max_concurrent_tasks = ?, heartbeat_interval = ?, last_heartbeat = ?, "
            "idle_since = ?, token_hash = ?, metadata = ? WHERE id = ?",
            (s.name, dumps(s.capabilities), s.max_concurrent_tasks, s.heartbeat_interval, now,
             now, token_hash, dumps(s.metadata), s.id))
    emit(conn, ev, "session.joined", now, {
        "session_id": s.id, "name": s.name, "capabilities": s.capabilities,
        "resumed": old is not None, "heartbeat_interval": s.heartbeat_interval,
        "max_concurrent_tasks": s.max_concurrent_tasks})
    joined = load_session(conn, s.id)
    assert joined is not None
    return joined


def heartbeat(conn: Conn, ev: list[Event], session_id: str, now: float, status: str | None,
              lease_factor: float) -> Heartbeat:
    s = load_session(conn, session_id)
    if s is None:
        raise NotFound(f"session {session_id!r} does not exist")
    revive(conn, ev, session_id, now)  # it was only silent (paused, partitioned): back
    if status == SessionStatus.DRAINING.value:
        _drain(conn, ev, session_id, now)
    elif status in (SessionStatus.IDLE.value, SessionStatus.BUSY.value):
        conn.execute("UPDATE sessions SET status = ? WHERE id = ? AND status IN ('idle', 'busy')",
                     (status, session_id))
    deadline = lifecycle.lease_deadline(now, s.heartbeat_interval, lease_factor)
    # a preempted lease is renewed up to the end of its grace, no further
    conn.execute(
        "UPDATE tasks SET lease_expires_at = CASE WHEN preempt_at IS NULL THEN ? "
        f"ELSE MIN(?, preempt_at) END WHERE assigned_to = ? AND status = {RUNNING} "
        "AND lease_expires_at > ?", (deadline, deadline, session_id, now))
    conn.execute("UPDATE sessions SET last_heartbeat = ? WHERE id = ?", (now, session_id))
    held = held_now(conn, session_id)
    fresh = load_session(conn, session_id)
    assert fresh is not None
    return Heartbeat(
        session=fresh,
        held=[held_lease(t, load_notes(conn, t.id)) for t in held
              if t.status in lifecycle.PAUSED or (
                  t.status == TaskStatus.IN_PROGRESS and t.lease_expires_at is not None
                  and t.lease_expires_at > now)],
        assignments=[t for t in held if t.status == TaskStatus.ASSIGNED],
    )


def _drain(conn: Conn, ev: list[Event], session_id: str, now: float) -> None:
    """A draining session keeps its leases and starts nothing new, so offers it has not
    claimed go back at once (whether the operator or the session itself asked)."""
    cur = conn.execute("UPDATE sessions SET status = 'draining' WHERE id = ? "
                       "AND status IN ('idle', 'busy')", (session_id,))
    if cur.rowcount:
        emit(conn, ev, "session.draining", now, {"session_id": session_id})
    for t in held_now(conn, session_id):
        if t.status == TaskStatus.ASSIGNED:
            release_task(conn, ev, t, now, retry=True, reason="draining", error=None)


def set_draining(conn: Conn, ev: list[Event], session_id: str, now: float) -> Session:
    s = load_session(conn, session_id)
    if s is None:
        raise NotFound(f"session {session_id!r} does not exist")
    _drain(conn, ev, session_id, now)
    out = load_session(conn, session_id)
    assert out is not None
    return out


def leave(conn: Conn, ev: list[Event], session_id: str, now: float, reason: str,
          moved: list[Task] | None = None) -> Session:
    """Take a session offline; the tasks it held are appended to `moved` when given."""
    s = load_session(conn, session_id)
    if s is None:
        raise NotFound(f"session {session_id!r} does not exist")
    outcome = Outcome.RELEASED if reason == "left" else Outcome.EXPIRED
    released = release_held(conn, ev, session_id, now, outcome, "session " + reason)
    if moved is not None:
        moved.extend(released)
    revoke = ", token_hash = NULL" if reason == "left" else ""
    # a session that is gone waits on no API any more
    conn.execute(f"UPDATE sessions SET status = 'offline', rate_limited = NULL{revoke} "
                 "WHERE id = ?", (session_id,))
    if s.status != SessionStatus.OFFLINE or reason == "left":
        emit(conn, ev, f"session.{reason}", now, {"session_id": session_id, "name": s.name})
    out = load_session(conn, session_id)
    assert out is not None
    return out


def reap_silent(conn: Conn, ev: list[Event], now: float, limit: int, lease_factor: float,
                moved: list[Task]) -> tuple[list[str], bool]:
    rows = conn.execute(
        "SELECT id FROM sessions WHERE status != 'offline' "
        "AND last_heartbeat + ? * heartbeat_interval <= ? "
        "ORDER BY last_heartbeat + ? * heartbeat_interval, id LIMIT ?",  # most overdue first
        (lease_factor, now, lease_factor, limit + 1)).fetchall()
    ids = [r[0] for r in rows[:limit]]
    for sid in ids:
        leave(conn, ev, sid, now, "offline", moved)
    return ids, len(rows) > limit
