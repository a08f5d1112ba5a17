"""Redis hashes and JSON <-> records.

Numbers are stored as text that parses back to the very same value: Python writes
`repr(float)`, the scripts write `%.17g`. JSON fields (input, result, dependencies,
capabilities, metadata) are written by Python (orjson) and never re-encoded by Lua.
"""

from __future__ import annotations

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
    Session,
    Task,
    added_data,
)
from .. import records
from ..records import Kinds, Reader

Flat = list[str]


def pairs(flat: Flat) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def num(x: float) -> str:
    """A float as text that round-trips exactly."""
    return repr(float(x))


def opt(value: str | None) -> str:
    """An optional string argument: '' for None, else '=' + value."""
    return "" if value is None else "=" + value


#: Redis keeps every value as text (a flag as "1"/"0"), JSON as written by Python
KINDS: Kinds = {int: int, float: float, bool: lambda v: v == "1"}
_task = Reader(Task, KINDS, skip=("context", "split_suggested"))  # not stored: built on reads
_session = Reader(Session, KINDS, skip=("capability_scores", "current_tasks", "stats",
                                        "quarantined_until"))
_attempt = Reader(Attempt, KINDS, skip=("task_id",))
_candidate = Reader(Candidate, KINDS)


def task_from(flat: Flat) -> Task:
    return _task(pairs(flat).get)


def candidate_from(values: list[str | None]) -> Candidate:
    """A Candidate from the HMGET of CANDIDATE_FIELDS."""
    return _candidate(dict(zip(CANDIDATE_FIELDS, values, strict=True)).get)


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
    return _session(pairs(flat).get, current_tasks=list(held),
                    capability_scores={k: float(v) for k, v in pairs(scores).items()})


def held_lease(t: Task, notes: list[str]) -> Lease:
    """`records.held_lease`, with the notes as Redis keeps them (JSON text)."""
    return records.held_lease(t, [loads(n) for n in notes])


def attempt_from(task_id: str, flat: Flat) -> Attempt:
    return _attempt(pairs(flat).get, task_id=task_id)


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
