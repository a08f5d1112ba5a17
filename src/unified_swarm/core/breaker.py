"""Routing around failure: a circuit breaker per session and per session x capability. Pure.

Closed: the session gets work. After `threshold` failures in a row it trips open: ejected for
a period that doubles with each ejection in a row (`base`, 2 x base, ... up to `cap`), the way
Envoy's outlier detection ejects a host. When the period ends the breaker is half-open: the
session may run ONE probe task of that capability at a time; a success closes the breaker
(`session.restored`), a failure opens it again for twice as long.

At most `max_fraction` of the sessions that can do the capability (at least one) are out at
once: past that, the failures say more about the tasks than about the sessions, and ejecting
more would only starve the queue (research/scheduling.md §8). A quarantined session still
gets work no healthy session can do (the scheduler's choice, not the breaker's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..models import Quarantine


@dataclass(frozen=True, slots=True)
class BreakerParams:
    threshold: int = 5
    base: float = 60.0
    cap: float = 1800.0
    max_fraction: float = 0.25


def period(ejections: int, params: BreakerParams) -> float:
    """How long the `ejections`-th ejection in a row lasts: doubling, capped."""
    return float(min(params.base * 2.0 ** max(ejections - 1, 0), params.cap))


def room(ejected_now: int, population: int, params: BreakerParams) -> bool:
    """Whether one more ejection stays within the cap (at least one is always allowed)."""
    limit = max(1, math.floor(population * params.max_fraction))
    return ejected_now < limit


def after_failure(session_id: str, capability: str, streak: int, current: Quarantine | None,
                  now: float, ejected_now: int, population: int,
                  params: BreakerParams) -> Quarantine | None:
    """A failure was recorded with `streak` failures in a row on this pair (or session).
    Returns the breaker to store when it trips, or re-trips after a failed probe; None when
    nothing changes."""
    if current is not None and current.open(now):
        return None  # work started before the ejection failed too: it is out already
    probing = current is not None
    if not probing and streak < params.threshold:
        return None
    if not probing and not room(ejected_now, population, params):
        return None
    k = current.ejections + 1 if current is not None else 1
    return Quarantine(session_id, capability, now + period(k, params), k)


def after_success(current: Quarantine | None, now: float) -> bool:
    """A success was recorded: True when it closes a half-open breaker (the probe passed).
    A success of work started before the ejection does not end the ejection early."""
    return current is not None and not current.open(now)


def may_take(current: Quarantine | None, now: float, running: int) -> bool:
    """Whether the breaker lets the pair start one more task now: closed, or half-open with
    no probe already running."""
    if current is None:
        return True
    return not current.open(now) and running == 0
