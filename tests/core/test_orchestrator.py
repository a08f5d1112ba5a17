"""Orchestrator use-cases over real stores, with a hand-moved clock (no sleeping for time)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from unified_swarm.config import Settings
from unified_swarm.core.orchestrator import Orchestrator, SessionSpec
from unified_swarm.errors import InvalidInput, NotClaimable, Unauthorized
from unified_swarm.models import Session, TaskSpec, TaskStatus
from unified_swarm.store.base import Store

from ..conftest import T0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def orch(store: Store, store_settings: Settings) -> AsyncIterator[Orchestrator]:
    o = Orchestrator(store, store_settings.replace(idle_threshold=120), "op-token", Clock())
    await o.start(run_loop=False)
    yield o
    await o.stop()


def clock(o: Orchestrator) -> Clock:
    assert isinstance(o.clock, Clock)
    return o.clock


async def join(o: Orchestrator, sid: str, caps: list[str], **kw: object) -> Session:
    s, _ = await o.register(SessionSpec(capabilities=caps, id=sid, **kw))  # type: ignore[arg-type]
    return s


async def test_authenticate(orch: Orchestrator) -> None:
    assert (await orch.authenticate("op-token")).role == "operator"
    _s, token = await orch.register(SessionSpec(capabilities=["build"], id="w1"))
    p = await orch.authenticate(token)
    assert p.role == "session" and p.session_id == "w1"
    for bad in (None, "", "op-token ", "nope"):
        with pytest.raises(Unauthorized):
            await orch.authenticate(bad)
    assert len(token) >= 43  # 256 bits, url-safe


async def test_register_validates(orch: Orchestrator) -> None:
    with pytest.raises(InvalidInput):
        await join(orch, "bad id", ["build"])
    with pytest.raises(InvalidInput):
        await join(orch, "w1", ["not a capability!"])


async def test_long_poll_is_woken_by_a_new_task(orch: Orchestrator) -> None:
    s = await join(orch, "w1", ["build"])
    waiting = asyncio.create_task(orch.request_work(s, 10))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    loop = asyncio.get_running_loop()
    added_at = loop.time()
    await orch.add_tasks([TaskSpec("build", id="a")])
    got = await asyncio.wait_for(waiting, 5)
    assert got is not None and got.task.id == "a"
    assert loop.time() - added_at < 2  # woken, not timed out


async def test_long_poll_times_out_empty(orch: Orchestrator) -> None:
    s = await join(orch, "w1", ["build"])
    assert await orch.request_work(s, 0.05) is None
    await orch.add_tasks([TaskSpec("research", id="r")])  # not for this session
    assert await orch.request_work(s, 0.05) is None


async def test_many_waiters_no_lost_wakeup(orch: Orchestrator) -> None:
    sessions = [await join(orch, f"w{i}", ["build"]) for i in range(12)]
    waits = [asyncio.create_task(orch.request_work(s, 10)) for s in sessions]
    await asyncio.sleep(0.05)
    for i in range(12):
        await orch.add_tasks([TaskSpec("build", id=f"t{i}")])
    got = await asyncio.wait_for(asyncio.gather(*waits), 8)
    assert sorted(c.task.id for c in got if c) == sorted(f"t{i}" for i in range(12))


async def test_wake_up_is_passed_on(orch: Orchestrator) -> None:
    """A waiter woken for `research` that takes a better `build` task passes the wake on."""
    both = await join(orch, "both", ["build", "research"])
    researcher = await join(orch, "researcher", ["research"])
    w_both = asyncio.create_task(orch.request_work(both, 10))
    await asyncio.sleep(0.02)
    w_res = asyncio.create_task(orch.request_work(researcher, 10))
    await asyncio.sleep(0.02)
    await orch.add_tasks([TaskSpec("build", id="b", priority=9),
                          TaskSpec("research", id="r", priority=1)])
    got_both, got_res = await asyncio.wait_for(asyncio.gather(w_both, w_res), 5)
    assert got_both is not None and got_both.task.id == "b"
    assert got_res is not None and got_res.task.id == "r"


async def test_interrupt_holds_work_until_lifted(orch: Orchestrator) -> None:
    s = await join(orch, "w1", ["build"])
    await orch.add_tasks([TaskSpec("build", id="a")])
    await orch.set_interrupt("deploy freeze", "operator")
    assert await orch.request_work(s, 0.05) is None
    with pytest.raises(NotClaimable):
        await orch.claim(s, "a")
    _, directives = await orch.heartbeat("w1", None)
    assert directives.interrupt is not None and directives.interrupt.reason == "deploy freeze"
    waiting = asyncio.create_task(orch.request_work(s, 10))
    await asyncio.sleep(0.05)
    await orch.set_interrupt(None, "operator")
    got = await asyncio.wait_for(waiting, 5)
    assert got is not None and got.task.id == "a"


async def test_tick_reaps_with_the_injected_clock(orch: Orchestrator) -> None:
    s = await join(orch, "w1", ["build"], heartbeat_interval=10.0)
    await orch.add_tasks([TaskSpec("build", id="a")])
    c = await orch.request_work(s, 0)
    assert c is not None
    clock(orch).now = T0 + 29
    assert await orch.tick(clock(orch).now) == pytest.approx(T0 + 30)
    t, _ = await orch.get_task("a")
    assert t.status == TaskStatus.IN_PROGRESS
    clock(orch).now = T0 + 30
    await orch.tick(clock(orch).now)
    t, history = await orch.get_task("a")
    assert t.status == TaskStatus.READY and history[0].outcome is not None


async def test_matcher_offers_work_to_long_idle_sessions(orch: Orchestrator) -> None:
    await join(orch, "idle", ["build"])
    await orch.add_tasks([TaskSpec("build", id="a")])
    await orch.tick(T0 + 60)  # idle, but not past idle_threshold (120 s)
    t, _ = await orch.get_task("a")
    assert t.status == TaskStatus.READY
    clock(orch).now = T0 + 121
    await orch.heartbeat("idle", None)
    await orch.tick(T0 + 121)
    beat, directives = await orch.heartbeat("idle", None)
    assert [t.id for t in directives.assignments] == ["a"]
    assert beat.session.id == "idle"


async def test_drain_directive(orch: Orchestrator) -> None:
    await join(orch, "w1", ["build"])
    await orch.drain("w1")
    _, directives = await orch.heartbeat("w1", None)
    assert directives.drain


async def test_status_view(orch: Orchestrator) -> None:
    s = await join(orch, "w1", ["build"])
    await join(orch, "w2", ["build"])
    await orch.add_tasks([TaskSpec("build", id="a"), TaskSpec("build", id="b")])
    c = await orch.request_work(s, 0)
    assert c is not None
    clock(orch).now = T0 + 2
    await orch.complete(s, c.task.id, c.lease.fencing_token, "ok")
    await orch.request_work(s, 0)
    st = await orch.status()
    assert st["total_sessions"] == 2 and st["busy_sessions"] == 1 and st["idle_sessions"] == 1
    assert st["tasks_completed"] == 1 and st["tasks_in_progress"] == 1
    assert st["avg_task_time"] == pytest.approx(2.0) and st["utilization"] == 0.5
