"""The scaler: every `interval` seconds per pool, observe the store, take the pure decision
of core/autoscale.py, and, on the leader only, hand it to the pool's spawner.

Every replica observes and decides, so GET /swarm/scaling answers the same on each (KEDA
may poll any replica behind a Service); only the replica holding the leader lease (the one
running the coordination loop, core/leader.py) starts or drains workers and records
`pool.scaled`. Every decision, with its inputs, is kept for GET /swarm/scaling (the last
DECISIONS per pool) and logged: at INFO when it changes something or its reason changes,
else at DEBUG.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.autoscale import Claim, Decision, History, Observation, allocate, capped, decide
from ..core.orchestrator import Orchestrator
from ..errors import InvalidInput, NotFound, SwarmError
from ..models import Counts, Session, iso
from .cost import CostMeter
from .pools import Pool, Pools
from .spawner import Acted, PoolView, Spawner

log = logging.getLogger("unified_swarm.scaling")
DECISIONS = 20
#: expected seconds of one task needing a capability (None: any); None when unknown
Estimator = Callable[[str | None], float | None]


@dataclass(slots=True)
class AverageDuration:
    """The default estimate until the learned model is wired in: the swarm's average
    completed task time (GET /swarm/status's avg_task_time), for every capability."""

    seconds: float | None = None

    def update(self, counts: Counts) -> None:
        if counts.completed_total:
            self.seconds = counts.duration_sum / counts.completed_total

    def __call__(self, capability: str | None) -> float | None:
        return self.seconds


@dataclass(slots=True)
class PoolState:
    pool: Pool
    spawner: Spawner
    history: History = field(default_factory=History)
    decisions: deque[Decision] = field(default_factory=lambda: deque(maxlen=DECISIONS))
    next_at: float = 0.0
    acted: Acted | None = None
    acted_at: float | None = None
    view: PoolView = field(default_factory=PoolView)

    @property
    def last(self) -> Decision | None:
        return self.decisions[-1] if self.decisions else None


@dataclass(slots=True)
class Snapshot:
    """What one step read from the store, shared by every pool decided in it."""

    by_pool: dict[str, list[Session]]
    counts: Counts
    ready: dict[str, int]
    pins: dict[str, int]


class Scaler:
    """Runs the pools' decisions; see the module docstring."""

    def __init__(self, orch: Orchestrator, pools: Pools, spawners: dict[str, Spawner], *,
                 estimate: Estimator | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.orch, self.pools, self.clock = orch, pools, clock
        self.states = {p.name: PoolState(p, spawners[p.name]) for p in pools.pools}
        self.estimate: Estimator = estimate or AverageDuration()
        self.meter = CostMeter()
        orch.store.add_listener(self.meter.on_events)
        self._poke = asyncio.Event()
        self._stepping = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="swarm-scaler")

    async def close(self, *, cancelled: Callable[[], bool] = lambda: False) -> None:
        """The server stops (while it still serves, so drained workers can finish): stop
        deciding, then drain or leave every pool's workers as `--on-exit` says."""
        await self._stop_loop()
        if self._closed:
            return
        self._closed = True
        settings = self.orch.settings
        closing = asyncio.gather(*(s.spawner.close(settings.on_exit, self._drain,
                                                   settings.on_exit_timeout)
                                   for s in self.states.values()))
        while not closing.done():
            await asyncio.wait({closing}, timeout=0.1)
            if cancelled() and not closing.done():
                log.warning("stopping now: the workers still draining are left running")
                closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing

    async def stop(self) -> None:
        """The lifespan ends: if `close` did not run, ask the workers to drain without
        waiting (the server no longer serves them)."""
        await self._stop_loop()
        if not self._closed:
            self._closed = True
            for state in self.states.values():
                await state.spawner.close(self.orch.settings.on_exit, self._drain, 0.0)

    async def _stop_loop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            self._poke.clear()
            try:
                await self.step(self.clock())
            except SwarmError as exc:
                log.warning("scaling step failed, retrying in 1 s: %s", exc.message)
                await asyncio.sleep(1.0)
                continue
            except Exception:  # a bug must not stop the scaling for good: say it, go on
                log.exception("scaling step failed, retrying in 1 s")
                await asyncio.sleep(1.0)
                continue
            delay = min(s.next_at for s in self.states.values()) - self.clock()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), max(delay, 0.01))

    # -- one step ------------------------------------------------------------------------

    async def step(self, now: float, *, force: bool = False) -> list[Decision]:
        """Decide every pool that is due (every pool with `force`), then act as leader.
        One step at a time: two overlapping steps would both see the pool short and both
        start the workers it lacks."""
        async with self._stepping:
            return await self._step(now, force)

    async def _step(self, now: float, force: bool) -> list[Decision]:
        due = [s for s in self.states.values() if force or s.next_at <= now]
        if not due:
            return []
        snap = await self._snapshot(due)
        decided = []
        for state in due:
            try:
                decided.append((state, await self._decide(state, snap, now)))
            except SwarmError as exc:  # its spawner cannot see (a cluster API down)
                log.warning("pool %s: no decision, retrying next interval: %s",
                            state.pool.name, exc.message)
                state.next_at = now + state.pool.interval
        due = [state for state, _ in decided]
        decisions = self._budget([d for _, d in decided], now)
        leading = self.orch.leader
        for state, decision in zip(due, decisions, strict=True):
            state.decisions.append(decision)
            state.next_at = now + state.pool.interval
            self._log(state, decision, leading)
            if leading:
                await self._act(state, decision, now)
        await self._record_spawner_events(now)
        return decisions

    async def _snapshot(self, due: Sequence[PoolState]) -> Snapshot:
        store = self.orch.store
        by_pool: dict[str, list[Session]] = {s.pool.name: [] for s in due}
        pool_of: dict[str, str] = {}
        for session in await store.list_sessions():
            pool = session.metadata.get("pool")
            if session.status.value != "offline" and isinstance(pool, str):
                pool_of[session.id] = pool
                if pool in by_pool:
                    by_pool[pool].append(session)
        self.meter.pool_of = pool_of
        counts = await store.counts()
        if isinstance(self.estimate, AverageDuration):
            self.estimate.update(counts)
        caps = sorted({c for s in due for c in s.pool.capabilities})
        ready = await store.ready_counts(caps) if caps else {}
        return Snapshot(by_pool, counts, ready, await store.pool_pins())

    async def _decide(self, state: PoolState, snap: Snapshot, now: float) -> Decision:
        pool = state.pool
        state.view = view = PoolView(snap.by_pool[pool.name])
        starting = await state.spawner.observe(view, now)
        per_cap: dict[str | None, int] = {c: snap.ready.get(c, 0) for c in pool.capabilities}
        if not pool.capabilities:  # a pool without capabilities takes any task
            per_cap[None] = snap.counts.tasks.get("ready", 0)
        obs = Observation(
            ready=sum(per_cap.values()), idle=len(view.idle), busy=len(view.busy),
            starting=starting, work_s=self._work(per_cap),
            cost_per_hour=self.meter.rate(pool.name, now) or pool.cost_per_hour)
        return decide(pool.name, pool.policy, obs, state.history, now,
                      pinned=snap.pins.get(pool.name))

    def _work(self, per_cap: dict[str | None, int]) -> float | None:
        """Expected seconds of the ready work, from the estimates known."""
        known = [(n, self.estimate(cap)) for cap, n in per_cap.items() if n]
        seconds = [n * est for n, est in known if est is not None]
        return sum(seconds) if seconds else None

    def _budget(self, decisions: list[Decision], now: float) -> list[Decision]:
        budget = self.pools.budget
        if budget.max_sessions is None and budget.max_cost_per_hour is None:
            return decisions
        fresh = {d.pool: d for d in decisions}
        claims = []
        for name, state in self.states.items():
            d = fresh.get(name) or state.last
            wanted = d.desired if d is not None else state.pool.policy.min
            cost = d.observed.cost_per_hour if d is not None else state.pool.cost_per_hour
            claims.append(Claim(name, state.pool.policy.min, wanted, cost))
        caps = allocate(budget, claims)
        return [capped(d, caps[d.pool]) for d in decisions]

    async def _act(self, state: PoolState, decision: Decision, now: float) -> None:
        try:
            acted = await state.spawner.scale(decision, state.view, self._drain, now)
        except SwarmError as exc:
            log.warning("pool %s: the %s spawner failed: %s", state.pool.name,
                        state.spawner.kind, exc.message)
            acted = Acted(note=f"failed: {exc.message}")
        state.acted, state.acted_at = acted, now
        if acted:
            log.info("pool %s scaled %d -> %d (%s): %s", state.pool.name, decision.current,
                     decision.desired, decision.reason, _summary(acted))
            await self.orch.store.record_event("pool.scaled", {
                "pool": state.pool.name, "from": decision.current, "to": decision.desired,
                "reason": decision.reason, "limited_by": list(decision.limited_by),
                "spawner": state.spawner.kind, "replica_id": self.orch.settings.replica_id,
                **acted.wire()}, now)

    async def _drain(self, session_id: str) -> None:
        with contextlib.suppress(NotFound):  # it left meanwhile: nothing to drain
            await self.orch.drain(session_id)

    async def _record_spawner_events(self, now: float) -> None:
        for state in self.states.values():
            events = state.spawner.events
            while events:
                type_, data = events.pop(0)
                await self.orch.store.record_event(type_, data, now)

    def _log(self, state: PoolState, d: Decision, leading: bool) -> None:
        previous = state.decisions[-2] if len(state.decisions) > 1 else None
        quiet = d.change == 0 and previous is not None and previous.reason == d.reason
        level = logging.DEBUG if quiet or not leading else logging.INFO
        log.log(level, "pool %s: %d -> %d: %s%s [ready %d, idle %d, busy %d, starting %d, "
                "work %s s, cost/h %s]", d.pool, d.current, d.desired, d.reason,
                f" ({'; '.join(d.limited_by)})" if d.limited_by else "", d.observed.ready,
                d.observed.idle, d.observed.busy, d.observed.starting,
                _fmt(d.observed.work_s), _fmt(d.observed.cost_per_hour))

    # -- the operator --------------------------------------------------------------------

    async def pin(self, name: str, desired: int | None) -> dict[str, Any]:
        """Pin a pool's size within [min, max] (None lifts the pin); the next decision
        applies it (at once on this replica)."""
        state = self.states.get(name)
        if state is None:
            raise NotFound(f"no pool named {name!r} (pools: "
                           f"{', '.join(self.states) or 'none'})")
        policy = state.pool.policy
        if desired is not None and not policy.min <= desired <= policy.max:
            raise InvalidInput(f"pool {name!r} runs {policy.min}..{policy.max} sessions "
                               f"(its min and max); {desired} is outside")
        await self.orch.store.set_pool_pin(name, desired, self.clock())
        await self.step(self.clock(), force=True)
        return self.view()["pools"][name]  # type: ignore[no-any-return]

    def view(self) -> dict[str, Any]:
        """GET /swarm/scaling: `pools.<name>.desired` is what KEDA's metrics-api reads."""
        budget = self.pools.budget
        return {"leader": self.orch.leader, "replica_id": self.orch.settings.replica_id,
                "at": iso(self.clock()), "source": self.pools.source,
                "budget": {"max_sessions": budget.max_sessions,
                           "max_cost_per_hour": budget.max_cost_per_hour},
                "pools": {name: _pool_view(s) for name, s in self.states.items()}}


def _pool_view(state: PoolState) -> dict[str, Any]:
    d = state.last
    view = state.view
    return {
        **state.pool.wire(),
        "current": d.current if d else None,
        "desired": d.desired if d else state.pool.policy.min,
        "reason": d.reason if d else "no decision yet",
        "limited_by": list(d.limited_by) if d else [],
        "pinned": d.pinned if d else None,
        "sessions": {"idle": len(view.idle), "busy": len(view.busy),
                     "draining": len(view.draining),
                     "starting": d.observed.starting if d else 0},
        "ready": d.observed.ready if d else None,
        "work_s": d.observed.work_s if d else None,
        "cost_per_hour": d.observed.cost_per_hour if d else state.pool.cost_per_hour,
        "decided_at": iso(d.at) if d else None,
        "next_decision_at": iso(state.next_at) if state.next_at else None,
        "last_action": None if state.acted is None else {"at": iso(state.acted_at),
                                                         **state.acted.wire()},
        "spawner_status": state.spawner.status(),
        "decisions": [x.wire() for x in state.decisions],
    }


def _summary(acted: Acted) -> str:
    parts = []
    if acted.started:
        parts.append(f"started {', '.join(acted.started)}")
    if acted.drained:
        parts.append(f"drained {', '.join(acted.drained)}")
    if acted.replicas is not None:
        parts.append(f"replicas set to {acted.replicas}")
    return "; ".join(parts) or acted.note


def _fmt(x: float | None) -> str:
    return "?" if x is None else f"{x:.4g}"
