"""What a pool's session costs per hour, from what executors record.

Today the Claude executor records `total_cost_usd` in a completed task's result (see
worker/executors/claude.py); nothing else records a cost. The meter hears every
`task.completed` event of a pool's sessions, reads that task's result (at most LIMIT a
decision), and keeps an hour of (cost, seconds) pairs: the rate is cost / busy seconds x
3600, what one session costs per hour while it works (an idle session costs nothing, so
this is the conservative figure for a budget). A pool whose tasks record no cost has no
rate; then the pool's `cost_per_hour` key (the operator's estimate) is used, and with
neither, `max_cost_per_hour` cannot hold that pool (docs/scaling.md says so).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..models import JSON, Event
from ..store.base import Store

WINDOW = 3600.0
LIMIT = 200
PENDING_MAX = 10_000


@dataclass(slots=True)
class CostMeter:
    window: float = WINDOW
    #: session id -> pool, as the scaler last saw the pools
    pool_of: dict[str, str] = field(default_factory=dict)
    _pending: deque[tuple[str, str, float]] = field(
        default_factory=lambda: deque(maxlen=PENDING_MAX))
    _seen: dict[str, deque[tuple[float, float, float]]] = field(default_factory=dict)

    def on_events(self, events: Sequence[Event]) -> None:
        """A store listener: note the completions of pool sessions (no I/O here)."""
        for ev in events:
            if ev.type != "task.completed":
                continue
            pool = self.pool_of.get(str(ev.data.get("session_id")))
            if pool is not None:
                duration = ev.data.get("duration")
                seconds = float(duration) if isinstance(duration, int | float) else 0.0
                self._pending.append((str(ev.data["task_id"]), pool, seconds))

    async def collect(self, store: Store, now: float, limit: int = LIMIT) -> None:
        """Read the cost of up to `limit` noted completions."""
        for _ in range(min(limit, len(self._pending))):
            task_id, pool, seconds = self._pending.popleft()
            task = await store.get_task(task_id)
            cost = None if task is None else recorded_cost(task.result)
            if cost is not None and seconds > 0:
                self._seen.setdefault(pool, deque()).append((now, cost, seconds))

    def rate(self, pool: str, now: float) -> float | None:
        """Cost per working session-hour over the last window; None when none recorded."""
        seen = self._seen.get(pool)
        while seen and seen[0][0] < now - self.window:
            seen.popleft()
        if not seen:
            return None
        seconds = sum(s for _, _, s in seen)
        return sum(c for _, c, _ in seen) / seconds * 3600.0


def recorded_cost(result: JSON) -> float | None:
    """The cost an executor put in a task's result (the Claude executor's total_cost_usd)."""
    if not isinstance(result, Mapping):
        return None
    cost = result.get("total_cost_usd")
    if isinstance(cost, bool) or not isinstance(cost, int | float) or cost < 0:
        return None
    return float(cost)
