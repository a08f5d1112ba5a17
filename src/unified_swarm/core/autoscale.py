"""How many sessions a pool should run: a pure decision, `now` passed in.

The rule, per pool, at every decision (docs/scaling.md says the same for operators):

1. **Recommend** from what the pool can see now:
   - *grow* when ready work waits, no session of the pool is idle, and either more than
     `up_ready` tasks are ready (the seed's "more than 10") or the expected seconds of that
     work exceed `drain_s`. The pool then wants its busy sessions plus one new session per
     `tasks_per_session` ready tasks, or as many as drain the expected work within
     `drain_s`, whichever is more (at least one, at most one per ready task). Sessions
     still starting count as new ones already on their way.
   - *shrink* when nothing is ready and more than `down_idle` sessions (default: `min`)
     are idle: the idle ones are extras, so the pool wants its busy (and starting) ones.
   - otherwise *hold* at the current size.
2. **Tolerance**: a change of at most `tolerance` x current is not worth making.
3. **Rate**: one decision grows a pool by at most max(4, current) (Kubernetes' HPA
   default), so a wrong estimate cannot multiply the swarm in one step.
4. **Stabilisation**: growing goes only as high as every recommendation of the last
   `up_window` seconds agreed; shrinking only as low as every recommendation of the last
   `down_window` seconds agreed. A noisy queue therefore never flaps the pool.
5. **Bounds**: clamp to [min, max]; an operator's pin replaces steps 1-4; the budget's cap
   (sessions, cost per hour) comes last and wins even over `min`.

Budgets are shared by every pool: `allocate` hands them out, first every pool's `min` in
file order, then the rest in file order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

from ..models import JSON, iso

#: the seed's defaults: spawn past 10 ready with none idle; keep 3..5
SEED_MIN, SEED_MAX, SEED_UP_READY = 3, 5, 10
#: ready tasks one new session is started for: KEDA's default target for a queue's length
#: per replica (its Redis-list scaler's listLength), so a burst is met in one decision
TASKS_PER_SESSION = 5
#: one decision grows a pool by at most max(RATE_UP, current) sessions
RATE_UP = 4


@dataclass(frozen=True, slots=True)
class Policy:
    """A pool's scaling rule (pools.py reads it from the TOML file)."""

    min: int = SEED_MIN
    max: int = SEED_MAX
    #: grow when more than this many tasks are ready and no session is idle
    up_ready: int = SEED_UP_READY
    #: one new session for every this many ready tasks
    tasks_per_session: int = TASKS_PER_SESSION
    #: shrink when nothing is ready and more than this many sessions are idle (None: min)
    down_idle: int | None = None
    #: seconds within which the pool should drain the expected ready work
    drain_s: float = 300.0
    tolerance: float = 0.1
    up_window: float = 0.0
    down_window: float = 60.0

    @property
    def idle_limit(self) -> int:
        return self.min if self.down_idle is None else self.down_idle

    @property
    def window(self) -> float:
        """How much recommendation history the decision needs."""
        return max(self.up_window, self.down_window)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the pool looks like now. Sessions draining are on their way out: not counted."""

    ready: int
    idle: int
    busy: int
    #: launched but not registered yet (counted, so they are not launched twice)
    starting: int = 0
    #: expected seconds of the ready work (learned durations); None when nothing is known
    work_s: float | None = None
    #: what one session costs per hour (the executor's recorded cost); None when unknown
    cost_per_hour: float | None = None

    @property
    def current(self) -> int:
        return self.idle + self.busy + self.starting


@dataclass(frozen=True, slots=True)
class Cap:
    """The most sessions a budget allows a pool (None: no limit), and which budget."""

    sessions: int | None = None
    why: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision with everything it was taken from (logged, and shown on
    GET /swarm/scaling)."""

    pool: str
    at: float
    current: int
    desired: int
    #: step 1's raw recommendation, which the stabilisation windows remember
    recommended: int
    reason: str
    observed: Observation
    #: the steps that moved the value after step 1 ("tolerance", "max", "budget: ...")
    limited_by: tuple[str, ...] = ()
    pinned: int | None = None

    @property
    def change(self) -> int:
        return self.desired - self.current

    def wire(self) -> dict[str, JSON]:
        return {"pool": self.pool, "at": iso(self.at), "current": self.current,
                "desired": self.desired, "recommended": self.recommended,
                "reason": self.reason, "limited_by": list(self.limited_by),
                "pinned": self.pinned, "observed": asdict(self.observed)}


@dataclass(slots=True)
class History:
    """The recommendations of the last window seconds, oldest first: (at, value)."""

    seen: list[tuple[float, int]] = field(default_factory=list)

    def add(self, at: float, value: int, keep: float) -> None:
        self.seen.append((at, value))
        self.seen = [(t, v) for t, v in self.seen if t >= at - keep]

    def since(self, start: float) -> list[int]:
        return [v for t, v in self.seen if t >= start]


def recommend(policy: Policy, obs: Observation) -> tuple[int, str]:
    """Step 1: the size the pool's work calls for now, and why."""
    work = obs.work_s
    if obs.ready and not obs.idle:
        by_count = obs.ready > policy.up_ready
        by_work = work is not None and work > policy.drain_s
        if by_count or by_work:
            fresh = max(1, obs.ready // policy.tasks_per_session)
            if work is not None:
                fresh = max(fresh, math.ceil(work / policy.drain_s))
            fresh = min(fresh, obs.ready)
            why = (f"{obs.ready} ready (more than {policy.up_ready})" if by_count else
                   f"{obs.ready} ready, ~{work:.0f} s of work (more than {policy.drain_s:g} s)")
            return obs.busy + max(fresh, obs.starting), f"{why} and none idle"
    if not obs.ready and obs.idle > policy.idle_limit:
        return (obs.busy + obs.starting,
                f"nothing ready and {obs.idle} idle (more than {policy.idle_limit})")
    if obs.ready and obs.idle:
        return obs.current, f"{obs.ready} ready, {obs.idle} idle to take it"
    if obs.ready:
        return obs.current, f"{obs.ready} ready: not enough to grow for"
    return obs.current, f"nothing ready, {obs.idle} idle"


def decide(name: str, policy: Policy, obs: Observation, history: History, now: float,
           *, pinned: int | None = None) -> Decision:
    """Steps 1-5 for one pool, but the budget (`capped`). Records the recommendation in
    `history` (the only thing it changes)."""
    current = obs.current
    raw, reason = recommend(policy, obs)
    history.add(now, raw, policy.window)
    notes: list[str] = []
    if pinned is not None:
        value, reason = pinned, f"pinned to {pinned} by the operator"
    else:
        value = _stabilise(policy, current, raw, history, now, notes)
    value = _clamp(policy, value, notes)
    return Decision(name, now, current, value, raw, reason, obs, tuple(notes), pinned)


def capped(decision: Decision, cap: Cap) -> Decision:
    """Step 5's last word: the budget's cap, which wins even over `min`."""
    if cap.sessions is None or decision.desired <= cap.sessions:
        return decision
    return replace(decision, desired=cap.sessions,
                   limited_by=(*decision.limited_by, f"budget: {cap.why}"))


def _stabilise(policy: Policy, current: int, raw: int, history: History, now: float,
               notes: list[str]) -> int:
    """Steps 2-4: tolerance, the rate limit, the stabilisation windows."""
    if raw != current and abs(raw - current) <= policy.tolerance * current:
        notes.append(f"tolerance: {raw} is within {policy.tolerance:.0%} of {current}")
        return current
    if raw > current:
        limit = current + max(RATE_UP, current)
        if raw > limit:
            notes.append(f"rate: at most {limit} in one decision")
            raw = limit
        agreed = min(min(history.since(now - policy.up_window)), raw)
        if agreed < raw:
            notes.append(f"up window: {agreed} is what the last {policy.up_window:g} s agree")
        return max(current, agreed)
    if raw < current:
        agreed = max(history.since(now - policy.down_window))
        if agreed > raw:
            notes.append(f"down window: the last {policy.down_window:g} s asked for "
                         f"{agreed}")
        return min(current, agreed)
    return current


def _clamp(policy: Policy, value: int, notes: list[str]) -> int:
    if value < policy.min:
        notes.append(f"min {policy.min}")
        return policy.min
    if value > policy.max:
        notes.append(f"max {policy.max}")
        return policy.max
    return value


@dataclass(frozen=True, slots=True)
class Budget:
    """What every pool together may spend. None: no limit."""

    max_sessions: int | None = None
    max_cost_per_hour: float | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """A pool's request to the budget: its floor, what it wants, what a session costs."""

    pool: str
    min: int
    wanted: int
    cost_per_hour: float | None = None


def allocate(budget: Budget, claims: Sequence[Claim]) -> dict[str, Cap]:
    """Share the budget: every pool's `min` first (in order), then what each wants beyond
    it (in order). A pool whose cost is unknown is held only to `max_sessions`."""
    if budget.max_sessions is None and budget.max_cost_per_hour is None:
        return {c.pool: Cap() for c in claims}
    sessions = budget.max_sessions if budget.max_sessions is not None else math.inf
    money = budget.max_cost_per_hour if budget.max_cost_per_hour is not None else math.inf
    granted = dict.fromkeys((c.pool for c in claims), 0)
    for floor_pass in (True, False):
        for c in claims:
            want = min(c.min, c.wanted) if floor_pass else c.wanted
            more = max(0, want - granted[c.pool])
            rate = c.cost_per_hour or 0.0
            affordable = math.floor(money / rate) if rate > 0 else math.inf
            add = int(min(more, sessions, affordable))
            granted[c.pool] += add
            sessions -= add
            money -= add * rate
    return {c.pool: Cap(granted[c.pool], _why(budget, c)) for c in claims}


def _why(budget: Budget, claim: Claim) -> str:
    parts = []
    if budget.max_sessions is not None:
        parts.append(f"max_sessions {budget.max_sessions} across pools")
    if budget.max_cost_per_hour is not None and claim.cost_per_hour:
        parts.append(f"max_cost_per_hour {budget.max_cost_per_hour:g} at "
                     f"{claim.cost_per_hour:.4g}/h a session")
    return ", ".join(parts) or "no budget applies"
