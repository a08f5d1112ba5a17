"""Task steps: adding a planned batch, outcomes, cancel, releasing held work, the reaper.
Each function taking `ev` runs inside the writer's transaction and is one
atomic step; the others are reads, each in one snapshot of a reader connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from ... import collab, lifecycle
from ...errors import (
    AlreadyExists,
    Forbidden,
    LeaseLost,
    NotClaimable,
    NotFound,
    OutcomeMismatch,
)
from ...jsonutil import digest, dumps, loads
from ...lifecycle import DEAD, FINAL, SCORE_START
from ...models import (
    JSON,
    Event,
    Outcome,
    Recorded,
    SessionStatus,
    Task,
    TaskStatus,
    added_data,
    note,
)
from ...usage import wire as rule_wire
from . import learning, usage
from .rows import (
    INSERT_TASK,
    add_note,
    emit,
    end_attempt,
    load_notes,
    load_task,
    save_task,
    task_from_row,
    task_values,
)
from .schema import HELD_IN

S = TaskStatus
Conn = sqlite3.Connection
#: ids per `IN (...)` list, well under SQLite's limit on host parameters
CHUNK = 500


# -- adding ------------------------------------------------------------------------------


def statuses(conn: Conn, ids: Sequence[str]) -> dict[str, TaskStatus]:
    found: dict[str, TaskStatus] = {}
    for i in range(0, len(ids), CHUNK):
        chunk = list(ids[i:i + CHUNK])
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(f"SELECT id, status FROM tasks WHERE id IN ({marks})", chunk):
            found[row[0]] = TaskStatus(row[1])
    return found


def insert_batch(conn: Conn, ev: list[Event], tasks: Sequence[Task],
                 assumed: Mapping[str, TaskStatus], now: float) -> list[Task] | None:
    if statuses(conn, list(assumed)) != dict(assumed):
        return None  # a dependency moved since the plan read it: plan again
    taken = statuses(conn, [t.id for t in tasks])
    first = next((t.id for t in tasks if t.id in taken), None)
    if first is not None:
        raise AlreadyExists(f"task id {first!r} already exists")
    for t in tasks:
        t.created_at = t.updated_at = now
        cur = conn.execute(INSERT_TASK, task_values(t))
        assert cur.lastrowid is not None
        t.seq = cur.lastrowid
        conn.executemany("INSERT INTO deps (task_id, depends_on) VALUES (?, ?)",
                         [(t.id, d) for d in t.dependencies])
        emit(conn, ev, "task.added", now, added_data(t))
    return list(tasks)


# -- outcomes ----------------------------------------------------------------------------


def _attempt_row(conn: Conn, task_id: str, token: int) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM attempts WHERE task_id = ? AND fencing_token = ?",
        (task_id, token)).fetchone()
    return row


def _held(conn: Conn, session_id: str, task_id: str, token: int, now: float,
          outcome: Outcome | None, payload_digest: str | None) -> Task | Recorded:
    """The task when the caller holds a valid lease on it; a duplicate when the very same
    outcome was already recorded for this token; else the right refusal."""
    t = load_task(conn, task_id)
    if t is None:
        raise NotFound(f"task {task_id!r} does not exist")
    if (t.status == S.IN_PROGRESS and t.assigned_to == session_id
            and t.fencing_token == token and t.lease_expires_at is not None
            and t.lease_expires_at > now):
        return t
    att = _attempt_row(conn, task_id, token)
    if att is None or att["session_id"] != session_id:
        if t.assigned_to == session_id or _ever_held(conn, session_id, task_id):
            raise LeaseLost(f"fencing token {token} is not the current lease of {task_id!r}")
        raise Forbidden(f"task {task_id!r} is not held by this session")
    if outcome is not None and att["outcome"] == outcome.value:
        if att["digest"] == payload_digest:
            return Recorded(t, duplicate=True)
        raise OutcomeMismatch(
            f"a different {outcome.value} outcome is already recorded for {task_id!r} "
            f"token {token}")
    if att["outcome"] in (Outcome.COMPLETED.value, Outcome.FAILED.value):
        raise OutcomeMismatch(
            f"attempt {token} of {task_id!r} already ended {att['outcome']}")
    raise LeaseLost(f"the lease of {task_id!r} (token {token}) is no longer held"
                    + (" (expired)" if att["outcome"] is None else f" ({att['outcome']})"))


def _ever_held(conn: Conn, session_id: str, task_id: str) -> bool:
    return conn.execute("SELECT 1 FROM attempts WHERE task_id = ? AND session_id = ? LIMIT 1",
                        (task_id, session_id)).fetchone() is not None


def progress(conn: Conn, ev: list[Event], session_id: str, task_id: str, token: int,
             value: float, message: str | None, now: float, lease_factor: float,
             report: Mapping[str, float] | None = None,
             rate_limit: dict[str, JSON] | None = None) -> Recorded:
    held = _held(conn, session_id, task_id, token, now, None, None)
    assert isinstance(held, Task)
    t = held
    interval = conn.execute("SELECT heartbeat_interval FROM sessions WHERE id = ?",
                            (session_id,)).fetchone()[0]
    t.progress, t.progress_message, t.updated_at = value, message, now
    t.lease_expires_at = lifecycle.renewed(t, now, interval, lease_factor)
    save_task(conn, t)
    conn.execute("UPDATE sessions SET last_heartbeat = ? WHERE id = ?", (now, session_id))
    usage.record(conn, t, session_id, report)
    emit(conn, ev, "task.progress", now, {"task_id": t.id, "session_id": session_id,
                                           "progress": value, "message": message})
    usage.set_rate_limited(conn, ev, session_id, rate_limit, now)
    return Recorded(t)


def complete(conn: Conn, ev: list[Event], session_id: str, task_id: str, token: int,
             result: JSON, now: float, report: Mapping[str, float] | None = None) -> Recorded:
    d = digest(result)
    held = _held(conn, session_id, task_id, token, now, Outcome.COMPLETED, d)
    if isinstance(held, Recorded):
        return held
    t = held
    lifecycle.check_transition(t.status, S.COMPLETED)
    spent = usage.record(conn, t, session_id, report)  # before the attempt ends: its token
    end_attempt(conn, t, now, Outcome.COMPLETED, None, d)
    duration = now - (t.started_at or now)
    t.status, t.result, t.completed_at, t.updated_at = S.COMPLETED, result, now, now
    t.progress, t.lease_expires_at, t.error = 1.0, None, None
    save_task(conn, t)
    _score(conn, session_id, t.required_capability, True, now)
    moved = learning.learn(conn, session_id, t.required_capability, True, duration,
                           t.estimated_hours)
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'completed'")
    conn.execute("UPDATE meta SET value = CAST(value AS REAL) + ? WHERE key = 'duration_sum'",
                 (duration,))
    emit(conn, ev, "task.completed", now, {"task_id": t.id, "session_id": session_id,
                                            "fencing_token": token, "duration": duration,
                                            "required_capability": t.required_capability,
                                            "stats": learning.wire(moved),
                                            "usage": rule_wire(spent)})
    usage.set_rate_limited(conn, ev, session_id, None, now)
    _release_dependents(conn, ev, t.id, now)
    child_ended(conn, ev, t, now)
    return Recorded(t, stats=moved)


def fail(conn: Conn, ev: list[Event], session_id: str, task_id: str, token: int, error: str,
         retry: bool, now: float, report: Mapping[str, float] | None = None) -> Recorded:
    d = digest([error, retry])
    held = _held(conn, session_id, task_id, token, now, Outcome.FAILED, d)
    if isinstance(held, Recorded):
        return held
    spent = usage.record(conn, held, session_id, report)
    duration = now - (held.started_at or now)
    end_attempt(conn, held, now, Outcome.FAILED, error, d)
    _score(conn, session_id, held.required_capability, False, now)
    moved = learning.learn(conn, session_id, held.required_capability, False, duration,
                           held.estimated_hours)
    release_task(conn, ev, held, now, retry=retry, reason="failed", error=error,
                 extra={"stats": learning.wire(moved), "duration": duration,
                        "usage": rule_wire(spent)})
    usage.set_rate_limited(conn, ev, session_id, None, now)
    return Recorded(held, stats=moved)


def release_task(conn: Conn, ev: list[Event], t: Task, now: float, *, retry: bool, reason: str,
                 error: str | None, extra: Mapping[str, JSON] | None = None) -> None:
    """Let go of a held task: an offer goes back; an attempt goes back to ready while a retry
    is wanted and attempts remain, else fails for good (`lifecycle.after_release`)."""
    holder = t.assigned_to
    new = lifecycle.after_release(t, retry)
    lifecycle.check_transition(t.status, new)
    t.status, t.assigned_to, t.lease_expires_at, t.updated_at = new, None, None, now
    t.preempt_at = None
    if error is not None:
        t.error = error
    if new == S.FAILED:
        t.completed_at = now
    save_task(conn, t)
    if holder is not None:
        _maybe_idle(conn, holder, now)
    data = {"task_id": t.id, "session_id": holder, "reason": reason, "error": error,
            "attempts": t.attempts, "required_capability": t.required_capability,
            **(extra or {})}
    if new == S.READY:
        emit(conn, ev, "task.requeued", now, data)
    else:
        emit(conn, ev, "task.failed", now, data)
    if new in DEAD:
        child_ended(conn, ev, t, now)  # first: the parent's error names this task
        _block_dependents(conn, ev, t.id, now)


def _maybe_idle(conn: Conn, session_id: str, now: float) -> None:
    conn.execute(
        "UPDATE sessions SET status = 'idle', idle_since = ? WHERE id = ? AND status = 'busy' "
        f"AND NOT EXISTS (SELECT 1 FROM tasks WHERE assigned_to = ? AND status IN {HELD_IN})",
        (now, session_id, session_id))


def _score(conn: Conn, session_id: str, capability: str, success: bool, now: float) -> None:
    row = conn.execute("SELECT performance_score, capability_scores FROM sessions WHERE id = ?",
                       (session_id,)).fetchone()
    scores = loads(row["capability_scores"])
    scores[capability] = lifecycle.updated_score(scores.get(capability, SCORE_START), success)
    counter = "tasks_completed" if success else "tasks_failed"
    conn.execute(
        f"UPDATE sessions SET performance_score = ?, capability_scores = ?, "
        f"{counter} = {counter} + 1 WHERE id = ?",
        (lifecycle.updated_score(row["performance_score"], success), dumps(scores), session_id))
    _maybe_idle(conn, session_id, now)


def _release_dependents(conn: Conn, ev: list[Event], task_id: str, now: float) -> None:
    """A task completed: each pending dependent whose dependencies now all completed
    becomes ready (`lifecycle.status_from_deps`, `lifecycle.on_ready`)."""
    rows = conn.execute(
        "SELECT t.* FROM deps d JOIN tasks t ON t.id = d.task_id "
        f"WHERE d.depends_on = ? AND t.status = '{S.PENDING.value}'", (task_id,)).fetchall()
    for row in rows:
        t = task_from_row(row)
        deps = conn.execute("SELECT u.status FROM deps d JOIN tasks u ON u.id = d.depends_on "
                            "WHERE d.task_id = ?", (t.id,))
        if lifecycle.status_from_deps(S(r[0]) for r in deps) == S.READY:
            lifecycle.on_ready(t)
            t.updated_at = now
            save_task(conn, t)
            emit(conn, ev, "task.ready", now, {
                "task_id": t.id, "required_capability": t.required_capability,
                "priority": t.priority})


def _block_dependents(conn: Conn, ev: list[Event], task_id: str, now: float) -> None:
    """Every pending task downstream of a dead one can never run: block it, transitively.
    A blocked subtask then fails its waiting parent (after the whole walk, so that the
    parent's cascade never races the walk)."""
    frontier = [task_id]
    blocked: list[str] = []
    while frontier:
        cause = frontier.pop()
        rows = conn.execute(
            "SELECT t.id FROM deps d JOIN tasks t ON t.id = d.task_id "
            f"WHERE d.depends_on = ? AND t.status = '{S.PENDING.value}'", (cause,)).fetchall()
        for (dep_id,) in rows:
            lifecycle.check_transition(S.PENDING, S.BLOCKED)
            conn.execute("UPDATE tasks SET status = ?, updated_at = ?, completed_at = ? "
                         "WHERE id = ?", (S.BLOCKED.value, now, now, dep_id))
            emit(conn, ev, "task.blocked", now, {"task_id": dep_id, "because": cause})
            frontier.append(dep_id)
            blocked.append(dep_id)
    for dep_id in blocked:
        t = load_task(conn, dep_id)
        if t is not None and t.parent_id is not None:
            child_ended(conn, ev, t, now)


def cancel(conn: Conn, ev: list[Event], task_id: str, now: float, reason: str) -> Task:
    """Cancel a task, every subtask below it (a split parent's whole tree: nothing of it
    stays runnable), fail its waiting parent, and block its dependents."""
    t = load_task(conn, task_id)
    if t is None:
        raise NotFound(f"task {task_id!r} does not exist")
    if t.status in FINAL:
        raise NotClaimable(f"task {task_id!r} is already {t.status.value}")
    _cancel_one(conn, ev, t, now, reason)
    gone = cancel_tree(conn, ev, t.id, now, f"parent {t.id!r} cancelled")
    child_ended(conn, ev, t, now)
    for dead in [t.id, *gone]:
        _block_dependents(conn, ev, dead, now)
    return t


def _cancel_one(conn: Conn, ev: list[Event], t: Task, now: float, reason: str) -> None:
    """One task to cancelled (its attempt ends `released`), without touching dependents."""
    lifecycle.check_transition(t.status, S.CANCELLED)
    holder = t.assigned_to
    if t.status in lifecycle.RUNNING:
        end_attempt(conn, t, now, Outcome.RELEASED, f"cancelled: {reason}")
    t.status, t.assigned_to, t.lease_expires_at, t.preempt_at = S.CANCELLED, None, None, None
    t.completed_at = t.updated_at = now
    save_task(conn, t)
    if holder is not None:
        _maybe_idle(conn, holder, now)
    emit(conn, ev, "task.cancelled", now, {"task_id": t.id, "reason": reason,
                                            "session_id": holder})


# -- split parents -----------------------------------------------------------------------


def split_row(conn: Conn, task_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM splits WHERE task_id = ?",
                                           (task_id,)).fetchone()
    return row


def cancel_tree(conn: Conn, ev: list[Event], root: str, now: float, reason: str) -> list[str]:
    """Cancel every open task below a split parent, depth first through nested splits;
    the ids cancelled (their dependents are the caller's to block)."""
    gone: list[str] = []
    frontier = [root]
    while frontier:
        row = split_row(conn, frontier.pop())
        for child_id in loads(row["children"]) if row is not None else []:
            child = load_task(conn, child_id)
            if child is None:
                continue
            frontier.append(child_id)
            if child.status not in FINAL:
                _cancel_one(conn, ev, child, now, reason)
                gone.append(child_id)
    return gone


def child_ended(conn: Conn, ev: list[Event], t: Task, now: float) -> None:
    """A task reached a final status: when it is a subtask of a waiting parent, the parent
    completes once every one of its subtasks completed (counted from their statuses, so
    exactly once however completions race), or fails at once when this one cannot."""
    if t.parent_id is None:
        return
    parent = load_task(conn, t.parent_id)
    if parent is None or parent.status != S.WAITING:
        return  # ended already (exactly once), or not split yet
    if t.status in DEAD:
        _end_parent(conn, ev, parent, now, S.FAILED,
                    error=collab.subtask_error(t.id, t.status.value, t.error))
        return
    row = split_row(conn, parent.id)
    assert row is not None
    children: list[str] = loads(row["children"])
    marks = ",".join("?" * len(children))
    found = {r["id"]: r for r in conn.execute(
        f"SELECT id, status, result FROM tasks WHERE id IN ({marks})", children)}
    if all(found[c]["status"] == S.COMPLETED.value for c in children):
        results = [(c, loads(found[c]["result"])) for c in children]
        _end_parent(conn, ev, parent, now, S.COMPLETED,
                    result=collab.merged(row["merge"], results, row["merge_task"]))


def _end_parent(conn: Conn, ev: list[Event], parent: Task, now: float, new: TaskStatus, *,
                result: JSON = None, error: str | None = None) -> None:
    """A waiting parent completes with its merged result or fails naming its subtask; a
    failed one cancels what is still open below it. Then its own parent hears of it."""
    lifecycle.check_transition(parent.status, new)
    parent.status, parent.completed_at, parent.updated_at = new, now, now
    if new == S.COMPLETED:
        parent.result, parent.progress, parent.error = result, 1.0, None
        save_task(conn, parent)
        emit(conn, ev, "task.completed", now, {
            "task_id": parent.id, "session_id": None, "reason": "merged",
            "required_capability": parent.required_capability})
        _release_dependents(conn, ev, parent.id, now)
    else:
        parent.error = error
        save_task(conn, parent)
        emit(conn, ev, "task.failed", now, {
            "task_id": parent.id, "session_id": None, "reason": "subtask_failed",
            "error": error, "attempts": parent.attempts,
            "required_capability": parent.required_capability})
        gone = cancel_tree(conn, ev, parent.id, now, f"parent {parent.id!r} failed")
        for dead in [parent.id, *gone]:
            _block_dependents(conn, ev, dead, now)
    child_ended(conn, ev, parent, now)


# -- reaping -----------------------------------------------------------------------------


def release_held(conn: Conn, ev: list[Event], session_id: str, now: float,
                 outcome: Outcome, reason: str) -> list[Task]:
    """Put everything a departing session holds back in the queue (offers and leases)."""
    out = []
    for t in held_now(conn, session_id):
        if t.status in lifecycle.PAUSED:  # it waited for an answer, it did not fail
            end_attempt(conn, t, now, outcome, lifecycle.WAITED_WHEN_GONE)
            t.attempts -= 1
        elif t.status in lifecycle.RUNNING:
            end_attempt(conn, t, now, outcome, reason)
        release_task(conn, ev, t, now, retry=True, reason=reason, error=None)
        out.append(t)
    return out


def reap_leases(conn: Conn, ev: list[Event], now: float, limit: int) -> tuple[
        list[str], list[str], bool]:
    rows = conn.execute(
        f"SELECT * FROM tasks WHERE status IN {HELD_IN} "
        "AND lease_expires_at <= ? ORDER BY lease_expires_at, seq LIMIT ?", (now, limit + 1)
    ).fetchall()
    requeued: list[str] = []
    failed: list[str] = []
    for row in rows[:limit]:
        t = task_from_row(row)
        if t.status == S.IN_PROGRESS and t.preempt_at is not None:
            _revoke(conn, t, now)
            reason = "preempted"
        elif t.status == S.IN_PROGRESS:
            end_attempt(conn, t, now, Outcome.EXPIRED, "lease expired")
            reason = "lease_expired"
        else:
            reason = "claim_timeout"
        release_task(conn, ev, t, now, retry=True, reason=reason, error=None)
        (requeued if t.status == S.READY else failed).append(t.id)
    return requeued, failed, len(rows) > limit


def held_now(conn: Conn, session_id: str) -> list[Task]:
    rows = conn.execute(
        f"SELECT * FROM tasks WHERE assigned_to = ? AND status IN {HELD_IN} ORDER BY seq",
        (session_id,)).fetchall()
    return [task_from_row(r) for r in rows]


# -- preemption, release, input ----------------------------------------------------------


def _revoke(conn: Conn, t: Task, now: float) -> None:
    """A preempted lease whose grace ran out: the attempt ends `released` without a note,
    does not count against max_attempts, and the fencing token moves on so a late outcome
    of the old holder can never match the task again."""
    end_attempt(conn, t, now, Outcome.RELEASED, lifecycle.REVOKED)
    t.attempts -= 1
    t.fencing_token += 1


def release(conn: Conn, ev: list[Event], session_id: str, task_id: str, token: int,
            text: str | None, now: float) -> Recorded:
    d = digest(text)
    held = _held(conn, session_id, task_id, token, now, Outcome.RELEASED, d)
    if isinstance(held, Recorded):
        return held
    t = held
    reason = (lifecycle.RELEASED_PREEMPTED if t.preempt_at is not None
              else lifecycle.RELEASED_BY_CHOICE)
    end_attempt(conn, t, now, Outcome.RELEASED, reason, d)
    if text is not None:
        add_note(conn, t.id, note("release", text, now, session_id, fencing_token=token))
    t.attempts -= 1  # a release (preempted or by choice) is not a failure
    release_task(conn, ev, t, now, retry=True, reason=reason, error=None)
    return Recorded(t)


def preempt(conn: Conn, ev: list[Event], task_id: str, token: int, deadline: float,
            now: float) -> Task | None:
    t = load_task(conn, task_id)
    if t is None:
        raise NotFound(f"task {task_id!r} does not exist")
    if (t.status != S.IN_PROGRESS or t.fencing_token != token or t.lease_expires_at is None
            or t.lease_expires_at <= now):
        return None  # that lease is over already: nothing to preempt
    t.preemptions += t.preempt_at is None  # a second mark of one attempt is not another
    lifecycle.mark_preempted(t, deadline)
    t.updated_at = now
    save_task(conn, t)
    emit(conn, ev, "task.preempted", now, {
        "task_id": t.id, "session_id": t.assigned_to, "fencing_token": token,
        "preempt_at": t.preempt_at, "grace_s": max(0.0, (t.preempt_at or now) - now)})
    return t


def request_input(conn: Conn, ev: list[Event], session_id: str, task_id: str, token: int,
                  question: str, now: float) -> Recorded:
    t = load_task(conn, task_id)
    if (t is not None and t.status == S.INPUT_REQUIRED and t.assigned_to == session_id
            and t.fencing_token == token):
        return Recorded(t, duplicate=True)  # a retried question: asked once
    held = _held(conn, session_id, task_id, token, now, None, None)
    assert isinstance(held, Task)
    t = held
    lifecycle.check_transition(t.status, S.INPUT_REQUIRED)
    t.status, t.lease_expires_at, t.updated_at = S.INPUT_REQUIRED, None, now
    save_task(conn, t)
    add_note(conn, t.id, note("question", question, now, session_id, fencing_token=token))
    emit(conn, ev, "task.input_required", now, {
        "task_id": t.id, "session_id": session_id, "fencing_token": token,
        "question": question, "title": t.title})
    return Recorded(t)


def give_input(conn: Conn, ev: list[Event], task_id: str, answer: str, by: str | None,
               now: float, lease_factor: float) -> Task:
    t = load_task(conn, task_id)
    if t is None:
        raise NotFound(f"task {task_id!r} does not exist")
    if t.status != S.INPUT_REQUIRED and not lifecycle.question_open(
            t.status, load_notes(conn, t.id)):
        raise NotClaimable(f"task {task_id!r} is {t.status.value} and asks no question")
    add_note(conn, t.id, note("answer", answer, now, None, by=by))
    holder = t.assigned_to
    alive = None
    if t.status == S.INPUT_REQUIRED and holder is not None:
        alive = conn.execute("SELECT heartbeat_interval FROM sessions WHERE id = ? AND "
                             "status != ?", (holder, SessionStatus.OFFLINE.value)).fetchone()
    if t.status != S.INPUT_REQUIRED:
        pass  # its holder went meanwhile: the task waits in the queue, the answer with it
    elif alive is not None:
        lifecycle.check_transition(t.status, S.IN_PROGRESS)
        t.status = S.IN_PROGRESS
        t.lease_expires_at = lifecycle.renewed(t, now, alive[0], lease_factor)
        t.updated_at = now
        save_task(conn, t)
    else:
        end_attempt(conn, t, now, Outcome.RELEASED, lifecycle.ANSWERED_AFTER_LEAVING)
        t.attempts -= 1
        release_task(conn, ev, t, now, retry=True, reason="input_given", error=None)
    emit(conn, ev, "task.input_given", now, {
        "task_id": t.id, "session_id": t.assigned_to, "status": t.status.value,
        "answer": answer})
    return t
