"""Keeping the answer of a keyed step (`Idempotency-Key`), for both stores.

A keyed step (register, insert_batch, claim, put_knowledge with an `Idem`) first looks its
key up: a kept answer is returned as it was (or `KeyReused` when the request differs), and
nothing else runs. Otherwise the step runs, and when it changed something (it emitted
events) its answer is kept under the key in the same atomic step, until `ttl` runs out.
A step that refused, changed nothing or answered nothing (a batch claim that found no
task) keeps nothing: its retry simply runs again.

An answer made of several steps (an emergency's: the task, then its placement) is kept by
a step of its own once it is whole (`Store.keep`): first writer wins.

This module is the part both stores share: the answer as JSON and back (`encode`,
`decode`, exact: floats round-trip, enums come back as enums), the refusal, and the test
fault that loses a reply after its step committed (`LostReplies`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import KeyReused, Unavailable
from ..jsonutil import dumps, loads
from ..models import (
    Claimed,
    Idem,
    KnowledgeEntry,
    Lease,
    Placed,
    Replay,
    Session,
    SessionStatus,
    Task,
    TaskStatus,
)

#: the kind of answer each keyed step gives (kept with it, so a lookup can rebuild it)
KINDS = ("register", "insert_batch", "claim", "claim_many", "put_knowledge", "emergency")


def reused() -> KeyReused:
    return KeyReused("this Idempotency-Key was first sent with another request: send a new "
                     "key for a new request (nothing was done)")


def check(idem: Idem, fingerprint: str) -> None:
    """Refuse a kept key whose first request was not this one."""
    if fingerprint != idem.fingerprint:
        raise reused()


def _session(d: dict[str, Any]) -> Session:
    return Session(**{**d, "status": SessionStatus(d["status"])})


def _task(d: dict[str, Any]) -> Task:
    return Task(**{**d, "status": TaskStatus(d["status"])})


def _claimed(d: dict[str, Any]) -> Claimed:
    return Claimed(_task(d["task"]), Lease(**d["lease"]))


def encode(kind: str, value: Replay) -> str:
    """An answer as JSON text (`kind` is one of KINDS)."""
    if kind in ("insert_batch", "claim_many"):
        assert isinstance(value, list)
        return dumps([dataclasses.asdict(v) for v in value])
    assert not isinstance(value, list)
    return dumps(dataclasses.asdict(value))


def tasks_of(raw: str) -> list[Task]:
    """The tasks an `insert_batch` answer kept."""
    return _tasks(loads(raw))


def _tasks(d: list[dict[str, Any]]) -> list[Task]:
    return [_task(t) for t in d]


def decode(kind: str, raw: str) -> Replay:
    """The answer `encode` kept, rebuilt."""
    d = loads(raw)
    if kind == "register":
        return _session(d)
    if kind == "insert_batch":
        return _tasks(d)
    if kind == "claim":
        return _claimed(d)
    if kind == "claim_many":
        return [_claimed(c) for c in d]
    if kind == "put_knowledge":
        return KnowledgeEntry(**d)
    if kind == "emergency":
        victim = d["preempted"]
        return Placed(_task(d["task"]), d["assigned_to"],
                      None if victim is None else (str(victim[0]), str(victim[1])))
    raise ValueError(f"no such kind of kept answer: {kind!r}")


class LostReplies:
    """A test fault: the next `n` replies of the named steps are lost after their step
    committed (the caller gets `Unavailable`, 503, as when a store call timed out on our
    side but ran). It proves that a retry with the same key answers without a second
    effect. Off unless a test arms it; a store checks one attribute per write."""

    def __init__(self) -> None:
        self.armed: dict[str, int] = {}
        #: how many replies were lost so far, per step
        self.lost: dict[str, int] = {}

    def arm(self, step: str, n: int = 1) -> None:
        self.armed[step] = self.armed.get(step, 0) + n

    def after(self, step: str) -> None:
        """Called by a store once `step` has committed: raise when armed for it."""
        left = self.armed.get(step, 0)
        if left <= 0:
            return
        self.armed[step] = left - 1
        self.lost[step] = self.lost.get(step, 0) + 1
        raise Unavailable(f"fault: the reply of {step!r} was lost after it committed",
                          retry_after=0.0)
