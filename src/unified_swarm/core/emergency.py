"""Where an emergency task goes (POST /swarm/emergency): pure rules, no I/O.

The task is offered at once to the best idle session able to take it, by the learned
model's cost (`Brain.fit`, the same numbers the scheduler ranks by); with none idle, the
best-fitting session running the least important task is preempted (research/scheduling.md
section 5: the lowest class first, never an emergency by an emergency, the least sunk cost
on a tie). The orchestrator reads the sessions and running tasks, asks these functions,
and makes the moves through the store's compare-and-set steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..lifecycle import EMERGENCY_PRIORITY
from ..models import Session, SessionStatus, Task
from .choice import INFEASIBLE

#: the learned cost of the emergency task on a session (INFEASIBLE: it may not take it)
Fit = Callable[[str], float]


@dataclass(frozen=True, slots=True)
class Placement:
    """What an emergency did: the session it was offered to, or the task preempted for it
    (its holder frees a slot within the grace)."""

    assigned_to: str | None = None
    preempted: tuple[str, str] | None = None  # (task id, session id)


def can_take(session: Session, capability: str) -> bool:
    """Declared capabilities allow it (none declared: any task)."""
    return not session.capabilities or capability in session.capabilities


def idle_order(capability: str, sessions: Sequence[Session], fit: Fit) -> list[str]:
    """Idle sessions able to take the task, best fit first (ties by id, so replicas agree)."""
    able = [s for s in sessions if s.status == SessionStatus.IDLE and not s.current_tasks
            and can_take(s, capability) and fit(s.id) < INFEASIBLE]
    return [s.id for s in sorted(able, key=lambda s: (fit(s.id), s.id))]


def victims(capability: str, running: Sequence[Task], sessions: Mapping[str, Session],
            fit: Fit, max_preemptions: int) -> list[Task]:
    """Running tasks whose preemption frees a session able to take the emergency, best
    first: the least important task (lowest priority), then the best-fitting session, then
    the least sunk cost (the most recently started). An emergency is never preempted for
    another, nor a task already preempted (its session frees up anyway), nor one preempted
    `max_preemptions` times already: a long task would otherwise lose every attempt to the
    next emergency and never finish."""
    out = []
    for t in running:
        s = sessions.get(t.assigned_to or "")
        if (s is None or s.status in (SessionStatus.OFFLINE, SessionStatus.DRAINING)
                or t.priority >= EMERGENCY_PRIORITY or t.preempt_at is not None
                or t.preemptions >= max_preemptions
                or not can_take(s, capability) or fit(s.id) >= INFEASIBLE):
            continue
        out.append(t)
    return sorted(out, key=lambda t: (t.priority, fit(t.assigned_to or ""),
                                      -(t.started_at or 0.0), t.id))
