"""The scaler over a real store with a hand-moved clock: what it observes per pool (only its
own sessions, only ready work its capabilities take), the learned-duration estimate, the
cost the Claude executor records capping the pool through the budget, and a follower that
decides but never acts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from unified_swarm.config import Settings
from unified_swarm.core.autoscale import Budget, Decision, Policy
from unified_swarm.core.orchestrator import Orchestrator, SessionSpec
from unified_swarm.models import TaskSpec
from unified_swarm.scaling.pools import Pool, Pools
from unified_swarm.scaling.scaler import Scaler
from unified_swarm.scaling.spawner import Acted, Drain, PoolView
from unified_swarm.store.base import Store

from ..conftest import T0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Recording:
    """A spawner that records what it was asked (the real ones have their own tests)."""

    kind = "recording"

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.asked: list[Decision] = []

    async def observe(self, view: PoolView, now: float) -> int:
        return 0

    async def scale(self, decision: Decision, view: PoolView, drain: Drain,
                    now: float) -> Acted:
        self.asked.append(decision)
        return Acted(replicas=decision.desired)

    def status(self) -> dict[str, Any]:
        return {}

    async def close(self, on_exit: str, drain: Drain, within: float) -> None:
        return None


@pytest.fixture
async def orch(store: Store, store_settings: Settings) -> AsyncIterator[Orchestrator]:
    o = Orchestrator(store, store_settings, "op-token", Clock())
    await o.start(run_loop=False)
    yield o
    await o.stop()


def scaler(orch: Orchestrator, *pools: Pool, budget: Budget | None = None) -> Scaler:
    spawners: dict[str, Any] = {p.name: Recording() for p in pools}
    return Scaler(orch, Pools(pools, budget or Budget()), spawners, clock=orch.clock)


def pool(name: str, caps: tuple[str, ...] = (), **policy: Any) -> Pool:
    return Pool(name=name, policy=Policy(**{"min": 0, "max": 10, **policy}),
                capabilities=caps, spawner="none", interval=1.0)


async def session(orch: Orchestrator, sid: str, pool_name: str | None,
                  caps: list[str]) -> None:
    """A session of the pool; its leases last 3 hours, past every clock move here."""
    meta: dict[str, Any] = {"pool": pool_name} if pool_name else {}
    await orch.register(SessionSpec(capabilities=caps, id=sid, metadata=meta,
                                    heartbeat_interval=3600))


async def test_each_pool_sees_its_own_sessions_and_work(orch: Orchestrator) -> None:
    await orch.add_tasks([TaskSpec(type="build") for _ in range(12)]
                         + [TaskSpec(type="research") for _ in range(3)])
    await orch.add_tasks([TaskSpec(type="build", id="first"),
                          TaskSpec(type="build", id="waits", dependencies=["first"])])
    await session(orch, "b1", "build", ["build"])
    await session(orch, "stranger", None, ["build"])  # not the pool's: not counted
    await session(orch, "r1", "research", ["research"])
    s = scaler(orch, pool("build", ("build",)), pool("research", ("research",)),
               pool("anything"))
    by_pool = {d.pool: d for d in await s.step(T0)}
    build = by_pool["build"].observed
    # 13 ready build tasks ("waits" is pending on "first": not ready, not counted)
    assert (build.ready, build.idle, build.busy) == (13, 1, 0)
    research = by_pool["research"].observed
    assert (research.ready, research.idle) == (3, 1)
    assert by_pool["anything"].observed.ready == 16  # no capabilities: any ready task


async def test_learned_durations_size_the_growth(orch: Orchestrator) -> None:
    clock = orch.clock
    assert isinstance(clock, Clock)
    await session(orch, "b1", "build", ["build"])
    b1 = await orch.get_session("b1")
    # one completed task of 600 s teaches the default estimate (the swarm's average)
    await orch.add_tasks([TaskSpec(type="build", id="done")])
    got = await orch.request_work(b1, 0)
    assert got is not None
    clock.now = T0 + 600
    await orch.complete(b1, "done", got.lease.fencing_token, None)
    await orch.add_tasks([TaskSpec(type="build") for _ in range(4)])
    got = await orch.request_work(b1, 0)  # b1 busy: none idle, 3 ready of ~600 s each
    assert got is not None
    s = scaler(orch, pool("build", ("build",), drain_s=300.0))
    (d,) = await s.step(clock.now)
    assert d.observed.work_s == pytest.approx(3 * 600.0)
    assert "s of work" in d.reason
    assert d.desired == 1 + 3  # busy one + one per ready task (the work asks for 6)


async def test_a_recorded_cost_caps_the_pool(orch: Orchestrator) -> None:
    clock = orch.clock
    assert isinstance(clock, Clock)
    await session(orch, "b1", "build", ["build"])
    b1 = await orch.get_session("b1")
    s = scaler(orch, pool("build", ("build",)), budget=Budget(max_cost_per_hour=50.0))
    await s.step(clock.now)  # learns that b1 is the pool's
    await orch.add_tasks([TaskSpec(type="build", id="paid")])
    got = await orch.request_work(b1, 0)
    assert got is not None
    clock.now += 60
    # what the Claude executor reports: $0.20 for a minute of work (a failed run) ...
    await orch.fail(b1, "paid", got.lease.fencing_token, "tests fail", True,
                    usage={"cost_usd": 0.2, "input_tokens": 900})
    got = await orch.request_work(b1, 0)
    assert got is not None
    clock.now += 60
    # ... then $0.40 for another: $0.60 for 2 minutes = $18 a session-hour
    await orch.complete(b1, "paid", got.lease.fencing_token, {"result": "ok"},
                        usage={"cost_usd": 0.4})
    await orch.add_tasks([TaskSpec(type="build") for _ in range(60)])
    got = await orch.request_work(b1, 0)
    assert got is not None
    clock.now += 1
    (d,) = await s.step(clock.now)
    assert d.observed.cost_per_hour == pytest.approx(18.0)
    # $50 an hour buys 2 sessions at $18, though the ready work asks for 12 more
    assert d.desired == 2
    assert any("max_cost_per_hour" in n for n in d.limited_by)


async def test_a_follower_decides_but_does_not_act(orch: Orchestrator) -> None:
    s = scaler(orch, pool("build", ("build",), min=2))
    spawner = s.states["build"].spawner
    assert isinstance(spawner, Recording)
    orch.lease._leading = False  # as a replica whose lease another holds
    (d,) = await s.step(T0)
    assert d.desired == 2 and spawner.asked == []
    orch.lease._leading, orch.lease._until = True, float("inf")  # now it leads
    (d,) = await s.step(T0 + 1)
    assert [a.desired for a in spawner.asked] == [2]
    events = [e for e in await orch.store.events_after(0, 100) if e.type == "pool.scaled"]
    assert len(events) == 1 and events[0].data["to"] == 2
