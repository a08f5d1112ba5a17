"""The learned scheduler through the Orchestrator, on both stores, with a hand-moved clock:
it learns who is fast from real outcomes, sends work to the fast session, routes around a
failing one and lets it back after a probe, and reports what it predicts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from unified_swarm.config import Settings
from unified_swarm.core.orchestrator import Orchestrator, SessionSpec
from unified_swarm.errors import InvalidInput
from unified_swarm.models import Session, TaskSpec
from unified_swarm.store.base import Store

from .test_orchestrator import Clock


@pytest.fixture
async def orch(store: Store, store_settings: Settings) -> AsyncIterator[Orchestrator]:
    o = Orchestrator(store, store_settings, "op-token", Clock())
    await o.start(run_loop=False)
    yield o
    await o.stop()


def move(o: Orchestrator, seconds: float) -> None:
    assert isinstance(o.clock, Clock)
    o.clock.now += seconds


async def join(o: Orchestrator, sid: str, caps: list[str] | None = None) -> Session:
    s, _ = await o.register(SessionSpec(caps or ["build"], id=sid, heartbeat_interval=1000))
    return s


async def run(o: Orchestrator, s: Session, seconds: float, ok: bool = True) -> str:
    """The session asks for work, works `seconds` of clock time, reports."""
    got = await o.request_work(s, 0)
    assert got is not None, f"{s.id} got nothing"
    move(o, seconds)
    if ok:
        await o.complete(s, got.task.id, got.lease.fencing_token, {"by": s.id})
    else:
        await o.fail(s, got.task.id, got.lease.fencing_token, "boom", True)
    return got.task.id


async def train(o: Orchestrator, speeds: dict[str, float], rounds: int) -> None:
    sessions = {sid: await join(o, sid) for sid in speeds}
    for r in range(rounds):
        await o.add_tasks([TaskSpec("build", id=f"warm-{r}-{sid}") for sid in speeds])
        for sid, seconds in speeds.items():
            await run(o, sessions[sid], seconds)


async def test_it_learns_who_is_fast_and_sends_work_there(orch: Orchestrator) -> None:
    await train(orch, {"fast": 10.0, "slow": 40.0}, rounds=5)
    fast, slow = await orch.get_session("fast"), await orch.get_session("slow")
    assert fast.stats["build"]["speed"] > 1.5 > slow.stats["build"]["speed"]
    assert fast.stats["build"]["attempts"] == 5
    assert 8 < fast.stats["build"]["duration_p50"] < 12
    # both wait; one task comes: the fast session gets it, the slow one is left waiting
    waits = [asyncio.create_task(orch.request_work(s, 2)) for s in (slow, fast)]
    await asyncio.sleep(0.05)
    await orch.add_tasks([TaskSpec("build", id="prize")])
    got_slow, got_fast = await asyncio.wait_for(asyncio.gather(*waits), 10)
    assert got_fast is not None and got_fast.task.id == "prize"
    assert got_slow is None
    _, history = await orch.get_task("prize")
    assert history[0].predicted is not None and 8 < history[0].predicted < 13


async def test_the_scheduler_reports_its_predictions(orch: Orchestrator) -> None:
    await train(orch, {"a": 5.0}, rounds=4)
    view = orch.scheduler_view()
    assert view["policy"] == "learned" and view["prior"] is None
    assert view["prediction_error"]["predictions"] == 4
    assert view["decision_latency_ms"]["p99"] >= view["decision_latency_ms"]["p50"] >= 0
    assert view["decisions"] >= 4


async def test_a_failing_session_is_quarantined_then_restored_after_a_probe(
        orch: Orchestrator) -> None:
    bad, good = await join(orch, "bad"), await join(orch, "good")
    for n in range(orch.brain.params.breaker.threshold):
        await orch.add_tasks([TaskSpec("build", id=f"f{n}", max_attempts=10)])
        await run(orch, bad, 1.0, ok=False)
        # what it failed went back; the good session takes it
        await run(orch, good, 1.0)
    seen = await orch.get_session("bad")
    assert seen.quarantined_until is not None
    await orch.add_tasks([TaskSpec("build", id="after")])
    assert await orch.request_work(bad, 0) is None  # a healthy session can do it
    await run(orch, good, 1.0)
    move(orch, orch.brain.params.breaker.base)  # the ejection ends: half-open
    await orch.add_tasks([TaskSpec("build", id="probe")])
    assert await run(orch, bad, 1.0) == "probe"
    assert (await orch.get_session("bad")).quarantined_until is None
    types = [e.type for e in await orch.events_after(0, 10_000)]
    assert types.count("session.quarantined") == 2  # the session, and it on build
    assert types.count("session.restored") == 2


async def test_a_session_without_capabilities_shows_what_it_is_good_at(
        orch: Orchestrator) -> None:
    s, _ = await orch.register(SessionSpec([], id="any", heartbeat_interval=1000))
    for n in range(6):
        await orch.add_tasks([TaskSpec("research", id=f"r{n}")])
        await run(orch, s, 3.0)
    assert (await orch.get_session("any")).detected_capabilities == ["research"]


async def test_fifo_keeps_phase_one_order(store: Store, store_settings: Settings) -> None:
    o = Orchestrator(store, store_settings.replace(scheduler="fifo"), "op", Clock())
    await o.start(run_loop=False)
    try:
        s = await join(o, "w")
        await o.add_tasks([TaskSpec("build", id="old"), TaskSpec("build", id="head"),
                           TaskSpec("build", id="tail", dependencies=["head"])])
        assert (await o.request_work(s, 0)) is not None
        assert o.scheduler_view()["policy"] == "fifo"
        _, history = await o.get_task("old")
        assert history and history[0].session_id == "w"  # oldest first, not the chain's head
    finally:
        await o.stop()


async def test_learned_starts_the_critical_path(orch: Orchestrator) -> None:
    s = await join(orch, "w")
    await orch.add_tasks([TaskSpec("build", id="old"), TaskSpec("build", id="head"),
                          TaskSpec("build", id="tail", dependencies=["head"])])
    got = await orch.request_work(s, 0)
    assert got is not None and got.task.id == "head"


async def test_a_prior_makes_the_oracle(store: Store, store_settings: Settings,
                                       tmp_path: Path) -> None:
    prior = tmp_path / "prior.json"
    prior.write_text('{"sessions": {"fast": {"build": 5}, "slow": {"build": 50}}}')
    o = Orchestrator(store, store_settings.replace(scheduler_prior=str(prior)), "op", Clock())
    await o.start(run_loop=False)
    try:
        fast, slow = await join(o, "fast"), await join(o, "slow")
        waits = [asyncio.create_task(o.request_work(s, 2)) for s in (slow, fast)]
        await asyncio.sleep(0.05)
        await o.add_tasks([TaskSpec("build", id="t")])
        got_slow, got_fast = await asyncio.wait_for(asyncio.gather(*waits), 10)
        assert got_fast is not None and got_slow is None
        assert o.scheduler_view()["prior"]["pairs"] == 2
    finally:
        await o.stop()


def test_a_bad_prior_is_refused_clearly(tmp_path: Path) -> None:
    from unified_swarm.core.learned import load_prior

    bad = tmp_path / "prior.json"
    bad.write_text('{"sessions": {"a": {"build": -1}}}')
    with pytest.raises(InvalidInput, match="SWARM_SCHEDULER_PRIOR"):
        load_prior(str(bad))
    with pytest.raises(InvalidInput, match="scheduler must be one of"):
        Settings(scheduler="random").validate()
