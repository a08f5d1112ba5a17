"""What a pool's session costs per hour, from what its attempts reported spending.

An attempt's usage (`cost_usd`, sent by the worker with its complete or fail: the Claude
executor fills it from the run's `result` event) is kept by the store on the attempt and
carried by the event that ends it: `task.completed`, and `task.requeued` / `task.failed`
with reason "failed" (a failed run cost money too), each with the attempt's `duration`.
The meter hears those events of a pool's sessions (no store read) and keeps an hour of
(cost, seconds) pairs: the rate is cost / busy seconds x 3600, what one session costs per
hour while it works (an idle session costs nothing, so this is the conservative figure for
a budget). A pool whose attempts report no cost has no rate; then the pool's
`cost_per_hour` key (the operator's estimate) is used, and with neither,
`max_cost_per_hour` cannot hold that pool (docs/scaling.md says so).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..models import JSON, Event

WINDOW = 3600.0
#: (cost, seconds) pairs kept per pool: the newest, when more ended within the window
KEPT_MAX = 10_000
#: the events that end an attempt, with what it spent
ENDING = frozenset({"task.completed", "task.requeued", "task.failed"})


@dataclass(slots=True)
class CostMeter:
    window: float = WINDOW
    #: session id -> pool, as the scaler last saw the pools
    pool_of: dict[str, str] = field(default_factory=dict)
    _seen: dict[str, deque[tuple[float, float, float]]] = field(default_factory=dict)

    def on_events(self, events: Sequence[Event]) -> None:
        """A store listener: note what the attempts of pool sessions cost (no I/O here)."""
        for ev in events:
            if ev.type not in ENDING:
                continue
            pool = self.pool_of.get(str(ev.data.get("session_id")))
            spent = attempt_cost(ev)
            if pool is not None and spent is not None:
                self._seen.setdefault(pool, deque(maxlen=KEPT_MAX)).append((ev.at, *spent))

    def rate(self, pool: str, now: float) -> float | None:
        """Cost per working session-hour over the last window; None when none recorded."""
        seen = self._seen.get(pool)
        while seen and seen[0][0] < now - self.window:
            seen.popleft()
        if not seen:
            return None
        seconds = sum(s for _, _, s in seen)
        return sum(c for _, c, _ in seen) / seconds * 3600.0


def attempt_cost(ev: Event) -> tuple[float, float] | None:
    """(dollars, seconds) of the attempt an event ended, when it reported a cost and took
    time; None otherwise (a requeue for another reason than a failure spent nothing new)."""
    if ev.type != "task.completed" and ev.data.get("reason") != "failed":
        return None
    cost, seconds = recorded_cost(ev.data.get("usage")), ev.data.get("duration")
    if cost is None or isinstance(seconds, bool) or not isinstance(seconds, int | float) \
            or seconds <= 0:
        return None
    return cost, float(seconds)


def recorded_cost(usage: JSON) -> float | None:
    """The `cost_usd` of an attempt's usage, or None."""
    if not isinstance(usage, Mapping):
        return None
    cost = usage.get("cost_usd")
    if isinstance(cost, bool) or not isinstance(cost, int | float) or cost < 0:
        return None
    return float(cost)
