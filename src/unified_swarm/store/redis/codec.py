"""Redis hashes and JSON <-> records.

Numbers are stored as text that parses back to the very same value: Python writes
`repr(float)`, the scripts write `%.17g`. JSON fields (input, result, dependencies,
capabilities, metadata) are written by Python (orjson) and never re-encoded by Lua.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ... import lifecycle
from ...jsonutil import dumps, loads
from ...models import (
    CANDIDATE_FIELDS,
    Attempt,
    Candidate,
    Event,
    Interrupt,
    KnowledgeEntry,
    Lease,
    Outcome,
    Session,
    SessionStatus,
    Task,
    TaskStatus,
    added_data,
)

Flat = list[str]


def pairs(flat: Flat) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def num(x: float) -> str:
    """A float as text that round-trips exactly."""
    return repr(float(x))


def opt(value: str | None) -> str:
    """An optional string argument: '' for None, else '=' + value."""
    return "" if value is None else "=" + value


def _float(h: dict[str, str], key: str) -> float | None:
    raw = h.get(key)
    return None if raw is None else float(raw)


def task_from(flat: Flat) -> Task:
    h = pairs(flat)
    return Task(
        id=h["id"],
        type=h["type"],
        title=h["title"],
        input=loads(h["input"]),
        required_capability=h["required_capability"],
        priority=int(h["priority"]),
        priority_given=h["priority_given"] == "1",
        critical=h["critical"] == "1",
        infinite_scale=h["infinite_scale"] == "1",
        roi=h.get("roi"),
        estimated_hours=_float(h, "estimated_hours"),
        dependencies=loads(h["dependencies"]),
        status=TaskStatus(h["status"]),
        assigned_to=h.get("assigned_to"),
        attempts=int(h["attempts"]),
        max_attempts=int(h["max_attempts"]),
        lease_expires_at=_float(h, "lease_expires_at"),
        fencing_token=int(h["fencing_token"]),
        progress=float(h["progress"]),
        progress_message=h.get("progress_message"),
        result=loads(h.get("result")),
        error=h.get("error"),
        parent_id=h.get("parent_id"),
        created_at=float(h["created_at"]),
        started_at=_float(h, "started_at"),
        completed_at=_float(h, "completed_at"),
        updated_at=_float(h, "updated_at"),
        seq=int(h["seq"]),
        preempt_at=_float(h, "preempt_at"),
        context_topics=loads(h.get("context_topics", "[]")),
        depth=int(h.get("depth", "0")),
    )


#: how each candidate field is read back from its text (None stays None)
_CANDIDATE_TYPES: dict[str, Callable[[str], Any]] = {
    "priority": int, "seq": int, "fencing_token": int, "attempts": int, "max_attempts": int,
    "created_at": float, "estimated_hours": float, "critical": lambda v: v == "1",
}


def candidate_from(values: list[str | None]) -> Candidate:
    """A Candidate from the HMGET of CANDIDATE_FIELDS."""
    fields: dict[str, Any] = {k: v if v is None else _CANDIDATE_TYPES.get(k, str)(v)
                              for k, v in zip(CANDIDATE_FIELDS, values, strict=True)}
    return Candidate(**fields)


def task_fields(t: Task) -> list[str]:
    """The hash fields of a new task that Python decides (the script adds id, status, seq,
    open_deps and the timestamps)."""
    ready_priority = lifecycle.ready_priority(t)
    fields: dict[str, str | None] = {
        "type": t.type, "title": t.title, "input": dumps(t.input),
        "required_capability": t.required_capability, "priority": str(t.priority),
        "priority_ready": str(ready_priority), "priority_given": _flag(t.priority_given),
        "critical": _flag(t.critical), "infinite_scale": _flag(t.infinite_scale),
        "roi": t.roi, "dependencies": dumps(t.dependencies), "attempts": "0",
        "max_attempts": str(t.max_attempts), "fencing_token": "0", "progress": num(0.0),
        "parent_id": t.parent_id,
        "context_topics": dumps(t.context_topics), "depth": str(t.depth),
        "estimated_hours": None if t.estimated_hours is None else num(t.estimated_hours),
    }
    out: list[str] = []
    for key, value in fields.items():
        if value is not None:
            out += [key, value]
    return out


def _flag(b: bool) -> str:
    return "1" if b else "0"


def added_event_data(t: Task) -> str:
    """`task.added` data (models.added_data), as JSON for the script."""
    return dumps(added_data(t))


def session_from(reply: list[Any]) -> Session:
    flat, held, scores = reply
    h = pairs(flat)
    return Session(
        id=h["id"],
        name=h["name"],
        capabilities=loads(h["capabilities"]),
        status=SessionStatus(h["status"]),
        max_concurrent_tasks=int(h["max_concurrent_tasks"]),
        heartbeat_interval=float(h["heartbeat_interval"]),
        last_heartbeat=float(h["last_heartbeat"]),
        registered_at=float(h["registered_at"]),
        metadata=loads(h["metadata"]),
        performance_score=float(h["performance_score"]),
        capability_scores={k: float(v) for k, v in pairs(scores).items()},
        tasks_completed=int(h["tasks_completed"]),
        tasks_failed=int(h["tasks_failed"]),
        current_tasks=list(held),
        detected_capabilities=loads(h.get("detected_capabilities") or "[]"),
        usage=loads(h["usage"]) if h.get("usage") else None,
        rate_limited=loads(h["rate_limited"]) if h.get("rate_limited") else None,
    )


def lease_of(t: Task) -> Lease:
    assert t.assigned_to is not None and t.lease_expires_at is not None
    return Lease(t.id, t.assigned_to, t.fencing_token, t.lease_expires_at)


def held_lease(t: Task, notes: list[str]) -> Lease:
    """A lease as the heartbeat shows it to its holder (see the SQLite store's rows.py)."""
    assert t.assigned_to is not None
    return Lease(t.id, t.assigned_to, t.fencing_token, t.lease_expires_at, t.status,
                 t.preempt_at, [loads(n) for n in notes])


def attempt_from(task_id: str, flat: Flat) -> Attempt:
    h = pairs(flat)
    return Attempt(
        task_id=task_id,
        attempt=int(h["attempt"]),
        session_id=h["session_id"],
        fencing_token=int(h["fencing_token"]),
        capability=h["capability"],
        started_at=float(h["started_at"]),
        ended_at=_float(h, "ended_at"),
        outcome=Outcome(h["outcome"]) if h.get("outcome") else None,
        error=h.get("error"),
        lease_expires_at=_float(h, "lease_expires_at"),
        predicted=_float(h, "predicted"),
        usage=loads(h["usage"]) if h.get("usage") else None,
    )


def event_from(raw: str) -> Event:
    d = loads(raw)
    return Event(int(d["seq"]), d["type"], float(d["at"]), d["data"])


def entry_from(raw: str) -> KnowledgeEntry:
    d = loads(raw)
    return KnowledgeEntry(topic=d["topic"], version=int(d["version"]), content=d["content"],
                          updated_by=d["updated_by"], updated_at=float(d["updated_at"]),
                          tags=d["tags"], deleted=bool(d["deleted"]))


def interrupt_json(i: Interrupt) -> str:
    return dumps({"reason": i.reason, "at": i.at, "by": i.by, "task_id": i.task_id})


def interrupt_from(raw: str | None) -> Interrupt | None:
    if raw is None:
        return None
    d = loads(raw)
    return Interrupt(d["reason"], d["at"], d.get("by"), d.get("task_id"))
