"""Claim steps: the candidates a session may take, and the compare-and-set claim or offer
of one named task (the choice among candidates is core/scheduling.py's). Each function
taking `ev` runs inside the writer's transaction and is one atomic step; the others are
reads, each in one snapshot of a reader connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ... import lifecycle
from ...errors import NotClaimable, NotFound, TaskTaken
from ...jsonutil import loads
from ...models import (
    CANDIDATE_FIELDS,
    Candidate,
    Claimed,
    Event,
    Session,
    SessionStatus,
    Task,
    TaskStatus,
)
from ..records import lease_of
from .rows import (
    candidate_from_row,
    emit,
    load_notes,
    load_session,
    load_task,
    save_task,
)
from .schema import HELD_IN, OFFERED, READY, RUNNING

S = TaskStatus
Conn = sqlite3.Connection



#: the columns of a candidate, in Candidate's order
CANDIDATE = ", ".join(CANDIDATE_FIELDS)


def ready_candidates(conn: Conn, capabilities: Sequence[str], limit: int) -> list[Candidate]:
    """One bounded probe of the ready index per capability (O(capabilities x log n))."""
    if not capabilities:
        rows = conn.execute(f"SELECT {CANDIDATE} FROM tasks WHERE status = {READY} "
                            "ORDER BY priority DESC, seq LIMIT ?", (limit,)).fetchall()
    else:
        rows = [row for cap in dict.fromkeys(capabilities) for row in conn.execute(
            f"SELECT {CANDIDATE} FROM tasks WHERE status = {READY} AND "
            "required_capability = ? ORDER BY priority DESC, seq LIMIT ?", (cap, limit))]
        rows.sort(key=lambda r: (-r["priority"], r["seq"]))
    return [candidate_from_row(r) for r in rows]


def offered_to(conn: Conn, session_id: str) -> list[Candidate]:
    rows = conn.execute(f"SELECT {CANDIDATE} FROM tasks WHERE assigned_to = ? AND "
                        f"status = {OFFERED} ORDER BY seq", (session_id,)).fetchall()
    return [candidate_from_row(r) for r in rows]


def _claimable_session(conn: Conn, ev: list[Event], session_id: str, now: float,
                       asked: bool = True) -> Session:
    """The session, alive again if it had only gone silent and `asked` for work itself
    (asking proves liveness; an offer the server makes proves nothing). One that left (its
    token revoked) stays offline.
    """
    row = conn.execute("SELECT token_hash FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if row is None:
        raise NotFound(f"session {session_id!r} does not exist")
    if asked and row["token_hash"] is not None:
        revive(conn, ev, session_id, now)
    s = load_session(conn, session_id)
    assert s is not None
    if s.status == SessionStatus.OFFLINE:
        raise NotClaimable(f"session {session_id!r} left the swarm")
    if s.status == SessionStatus.DRAINING:
        raise NotClaimable(f"session {session_id!r} is draining and takes no new work")
    running = _running(conn, session_id)
    if running >= s.max_concurrent_tasks:
        raise NotClaimable(
            f"session {session_id!r} already runs {running} task(s), its max_concurrent_tasks")
    return s


def _running(conn: Conn, session_id: str) -> int:
    return int(conn.execute(
        f"SELECT COUNT(*) FROM tasks WHERE assigned_to = ? AND status = {RUNNING}",
        (session_id,)).fetchone()[0])


def check_in(conn: Conn, ev: list[Event], session_id: str, now: float) -> Session:
    return _claimable_session(conn, ev, session_id, now)


def _takeable(t: Task, s: Session) -> None:
    """Refuse a task this session cannot have (it may try another)."""
    if t.status == S.ASSIGNED and t.assigned_to != s.id:
        raise TaskTaken(f"task {t.id!r} is offered to another session")
    if t.status not in (S.READY, S.ASSIGNED):
        raise TaskTaken(f"task {t.id!r} is {t.status.value}, not ready")
    if s.capabilities and t.required_capability not in s.capabilities:
        raise TaskTaken(
            f"task {t.id!r} needs capability {t.required_capability!r}, "
            f"which session {s.id!r} does not have")


def claim(conn: Conn, ev: list[Event], session_id: str, task_id: str, now: float,
          lease_factor: float, predicted: float | None = None) -> Claimed:
    t = load_task(conn, task_id)
    if t is None:
        raise NotFound(f"task {task_id!r} does not exist")
    s = _claimable_session(conn, ev, session_id, now)
    _takeable(t, s)
    return _claim(conn, ev, t, s, now, lease_factor, predicted)


def claim_many(conn: Conn, ev: list[Event], session_id: str,
               picks: Sequence[tuple[str, float | None]], now: float,
               lease_factor: float) -> list[Claimed]:
    """Claim the named tasks in order, in one step: a task that can no longer be had is
    skipped, and claiming stops once the session runs its max_concurrent_tasks. The session
    checks in as for one claim (NotFound, NotClaimable when it may take nothing at all)."""
    s = _claimable_session(conn, ev, session_id, now)
    room = s.max_concurrent_tasks - _running(conn, session_id)
    got: list[Claimed] = []
    for task_id, predicted in dict(picks).items():  # a task named twice is claimed once
        if len(got) >= room:
            break
        t = load_task(conn, task_id)
        if t is None:
            continue
        try:
            _takeable(t, s)
        except TaskTaken:
            continue
        got.append(_claim(conn, ev, t, s, now, lease_factor, predicted))
    return got


def revive(conn: Conn, ev: list[Event], session_id: str, now: float) -> None:
    """Mark a session alive at `now`; one that had gone silent comes back online."""
    row = conn.execute("SELECT status, name, capabilities, heartbeat_interval, "
                       "max_concurrent_tasks FROM sessions WHERE id = ?",
                       (session_id,)).fetchone()
    if row["status"] == SessionStatus.OFFLINE.value:
        held = conn.execute(f"SELECT 1 FROM tasks WHERE assigned_to = ? AND status IN {HELD_IN} "
                            "LIMIT 1", (session_id,)).fetchone()
        conn.execute("UPDATE sessions SET status = ?, idle_since = ? WHERE id = ?",
                     ("busy" if held else "idle", now, session_id))
        emit(conn, ev, "session.joined", now, {
            "session_id": session_id, "name": row["name"],
            "capabilities": loads(row["capabilities"]), "resumed": True,
            "heartbeat_interval": row["heartbeat_interval"],
            "max_concurrent_tasks": row["max_concurrent_tasks"]})
    conn.execute("UPDATE sessions SET last_heartbeat = ? WHERE id = ?", (now, session_id))


def _claim(conn: Conn, ev: list[Event], t: Task, s: Session, now: float,
           lease_factor: float, predicted: float | None) -> Claimed:
    lifecycle.check_transition(t.status, S.IN_PROGRESS)
    # compare-and-set on the status we read: the single writer makes it hold, the WHERE
    # clause keeps it honest if that ever changes
    t.status = S.IN_PROGRESS
    t.assigned_to = s.id
    t.attempts += 1
    t.fencing_token += 1
    t.lease_expires_at = lifecycle.lease_deadline(now, s.heartbeat_interval, lease_factor)
    t.started_at = now
    t.progress, t.progress_message, t.preempt_at = 0.0, None, None
    t.updated_at = now
    save_task(conn, t)
    conn.execute(
        "INSERT INTO attempts (task_id, fencing_token, attempt, session_id, capability, "
        "started_at, predicted) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (t.id, t.fencing_token, t.attempts, s.id, t.required_capability, now, predicted))
    conn.execute("UPDATE sessions SET status = 'busy' WHERE id = ? AND status = 'idle'", (s.id,))
    lease = lease_of(t)
    emit(conn, ev, "task.claimed", now, {
        "task_id": t.id, "session_id": s.id, "fencing_token": t.fencing_token,
        "attempt": t.attempts, "expires_at": lease.expires_at,
        "required_capability": t.required_capability, "predicted": predicted})
    return Claimed(t, lease, load_notes(conn, t.id))


def offer(conn: Conn, ev: list[Event], session_id: str, task_id: str, now: float,
          deadline: float) -> Task | None:
    row = conn.execute("SELECT status FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if row is not None and row[0] == SessionStatus.OFFLINE.value:
        return None  # a session that went silent is offered nothing
    s = _claimable_session(conn, ev, session_id, now, asked=False)
    t = load_task(conn, task_id)
    if t is None:
        raise NotFound(f"task {task_id!r} does not exist")
    if t.status != S.READY:
        raise TaskTaken(f"task {t.id!r} is {t.status.value}, not ready")
    _takeable(t, s)
    lifecycle.check_transition(t.status, S.ASSIGNED)
    t.status, t.assigned_to, t.lease_expires_at, t.updated_at = (
        S.ASSIGNED, session_id, deadline, now)
    save_task(conn, t)
    emit(conn, ev, "task.assigned", now, {"task_id": t.id, "session_id": session_id,
                                           "deadline": deadline})
    return t
