"""What the scaler asks of a spawner, and what it tells it.

A spawner starts and stops one pool's workers. The scaler observes the pool (its sessions
in the store, found by `metadata.pool`), asks the spawner how many workers are on their
way (launched, not registered yet), decides, and hands the decision to `scale`. Scale-in
is always a drain: `drain` is the orchestrator's (POST /session/{id}/drain: the session
finishes what it holds, takes nothing new, leaves), never a kill.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..core.autoscale import Decision
from ..models import Session, SessionStatus

#: drains one session (the orchestrator's drain: it keeps its leases, claims nothing new)
Drain = Callable[[str], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class PoolView:
    """A pool's sessions as the store has them now (online ones only)."""

    sessions: Sequence[Session] = ()

    def with_status(self, status: SessionStatus) -> list[Session]:
        return [s for s in self.sessions if s.status == status]

    @property
    def idle(self) -> list[Session]:
        return self.with_status(SessionStatus.IDLE)

    @property
    def busy(self) -> list[Session]:
        return self.with_status(SessionStatus.BUSY)

    @property
    def draining(self) -> list[Session]:
        return self.with_status(SessionStatus.DRAINING)

    @property
    def ids(self) -> set[str]:
        return {s.id for s in self.sessions}


def scale_in_order(view: PoolView) -> list[Session]:
    """Who drains first: idle sessions (the newest first: the oldest have the warmest
    caches), then busy ones holding the fewest tasks (they finish, then leave)."""
    idle = sorted(view.idle, key=lambda s: (-s.registered_at, s.id))
    busy = sorted(view.busy, key=lambda s: (len(s.current_tasks), -s.registered_at, s.id))
    return idle + busy


@dataclass(slots=True)
class Acted:
    """What one `scale` call did, for the log and the `pool.scaled` event."""

    started: list[str] = field(default_factory=list)
    drained: list[str] = field(default_factory=list)
    replicas: int | None = None
    note: str = ""

    def __bool__(self) -> bool:
        return bool(self.started or self.drained or self.replicas is not None)

    def wire(self) -> dict[str, Any]:
        return {"started": self.started, "drained": self.drained,
                "replicas": self.replicas, "note": self.note}


class Spawner(Protocol):
    """Starts and stops one pool's workers."""

    kind: str
    #: events to record in the swarm's log, (type, data); the scaler empties it
    events: list[tuple[str, dict[str, Any]]]

    async def observe(self, view: PoolView, now: float) -> int:
        """Supervise what it launched (reap, note exits) and return how many workers are
        on their way: launched but not registered yet."""

    async def scale(self, decision: Decision, view: PoolView, drain: Drain,
                    now: float) -> Acted:
        """Move the pool toward `decision.desired`: start workers, or drain sessions."""

    def status(self) -> dict[str, Any]:
        """What GET /swarm/scaling shows of it (workers, exits, backoff)."""

    async def close(self, on_exit: str, drain: Drain, within: float) -> None:
        """The server stops: drain what it started (`on_exit` "drain", waiting up to
        `within` s) or leave it running ("leave")."""


class NoSpawner:
    """`spawner = "none"`: the scaler only publishes its decision on GET /swarm/scaling,
    for KEDA or an HPA to act on."""

    kind = "none"

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def observe(self, view: PoolView, now: float) -> int:
        return 0

    async def scale(self, decision: Decision, view: PoolView, drain: Drain,
                    now: float) -> Acted:
        return Acted(note="published only (spawner none)")

    def status(self) -> dict[str, Any]:
        return {}

    async def close(self, on_exit: str, drain: Drain, within: float) -> None:
        return None
