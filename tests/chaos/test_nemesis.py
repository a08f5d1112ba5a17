"""The nemesis aims at work in progress: worker faults hit busy workers only, short pauses
last between one heartbeat and half a lease and only touch leases renewed within the last
interval, a pause's window is the one it really had, and infrastructure faults come in
turn. Processes here are stand-ins that record the signals they get (the campaign test runs
the real ones)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, cast

import pytest

from unified_swarm.chaos.campaign import Profile, Report
from unified_swarm.chaos.checker import Result
from unified_swarm.chaos.nemesis import WORKER_FAULTS, Nemesis
from unified_swarm.chaos.operator import OPERATIONS
from unified_swarm.procs import Proc

LEASE, BEAT = 0.3, 0.1


class FakeProc:
    """What the nemesis uses of a Proc: name, pid, alive/paused, kill/pause/resume."""

    def __init__(self, name: str, pid: int) -> None:
        self.name, self.pid = name, pid
        self.alive, self.paused = True, False
        self.signals: list[tuple[str, float]] = []

    def kill(self) -> None:
        self.alive = False
        self.signals.append(("kill", time.time()))

    def pause(self) -> None:
        self.paused = True
        self.signals.append(("stop", time.time()))

    def resume(self) -> None:
        self.paused = False
        self.signals.append(("cont", time.time()))


class World:
    def __init__(self, busy: dict[str, dict[str, int]], workers: int = 6) -> None:
        self.procs = [FakeProc(f"w{n}-{n + 1}", 100 + n) for n in range(workers)]
        self.busy = busy
        self.asked: list[tuple[str, float]] = []
        self.replaced: list[str] = []

    def held_by(self, session: str, margin: float) -> dict[str, int]:
        """Busy: a session named in `busy`, or the replacement of one (`<name>-new`)."""
        self.asked.append((session, margin))
        return self.busy.get(session.removesuffix("-new"), {})

    def replace(self, dead: Proc) -> Proc:
        self.replaced.append(dead.name)
        return cast(Proc, FakeProc(dead.name + "-new", 999))

    def nemesis(self, seed: int = 1, infra: tuple[str, ...] = ()) -> Nemesis:
        return Nemesis(seed, LEASE, BEAT, cast(list[Proc], self.procs), [], None,
                       self.replace, self.held_by, infra, infra_every=5)


def test_worker_faults_hit_only_busy_workers() -> None:
    world = World({"w2-3": {"t1": 4}})
    nemesis = world.nemesis()
    injected = 0
    for _ in range(60):
        injected += nemesis.step()
        nemesis.heal(now=True)
    assert injected > 0 and {f.target for f in nemesis.faults} <= {"w2-3", "w2-3-new"}
    assert all(f.held == {"t1": 4} for f in nemesis.faults)
    assert set(nemesis.counts) == set(WORKER_FAULTS)
    untouched = [p for p in world.procs if not p.name.startswith("w2-3")]
    assert all(not p.signals for p in untouched)


def test_worker_faults_come_in_rounds_of_one_of_each() -> None:
    world = World({p.name: {"t": 1} for p in World({}).procs})
    nemesis = world.nemesis(seed=5)
    while len(nemesis.faults) < 9:
        nemesis.step()
        nemesis.heal(now=True)
        for p in world.procs:
            p.alive = True
    kinds = [f.kind for f in nemesis.faults]
    for n in range(0, 9, 3):
        assert sorted(kinds[n:n + 3]) == sorted(WORKER_FAULTS), kinds


def test_no_fault_when_nobody_holds_work() -> None:
    world = World({})
    nemesis = world.nemesis()
    assert not any(nemesis.step() for _ in range(20))
    assert nemesis.faults == [] and all(not p.signals for p in world.procs)
    assert world.asked  # it did look


def test_short_pauses_last_between_a_heartbeat_and_half_a_lease() -> None:
    world = World({p: {"t": 1} for p in ("w0-1", "w1-2", "w2-3", "w3-4", "w4-5", "w5-6")})
    nemesis = world.nemesis(seed=3)
    for _ in range(40):
        nemesis.step()
        time.sleep(0.02)
    time.sleep(LEASE)  # let the pauses end by themselves
    nemesis.heal()
    shorts = [f for f in nemesis.faults if f.kind == "worker_pause_short"]
    longs = [f for f in nemesis.faults if f.kind == "worker_pause_long"]
    assert shorts and longs
    for f in shorts:
        assert BEAT - 0.01 <= f.end - f.at <= LEASE / 2 + 0.05, f
    for f in longs:
        assert f.end - f.at >= LEASE, f
    # short pauses only touch leases renewed within the last interval; others any lease
    margins = Counter(round(m, 6) for _, m in world.asked)
    assert set(margins) == {0.0, round(LEASE - BEAT, 6)}


def test_heal_lets_a_pause_run_its_course() -> None:
    world = World({"w0-1": {"t": 1}})
    nemesis = world.nemesis()
    nemesis.worker_pause_short(cast(Proc, world.procs[0]), {"t": 1})
    nemesis.heal()
    (fault,) = nemesis.faults
    assert fault.end - fault.at >= BEAT and not world.procs[0].paused


def test_heal_now_ends_every_pause_and_records_when() -> None:
    world = World({"w0-1": {"t": 1}})
    nemesis = world.nemesis()
    nemesis.worker_pause_long(cast(Proc, world.procs[0]), {"t": 1})
    nemesis.heal(now=True)
    (fault,) = nemesis.faults
    assert not world.procs[0].paused
    assert fault.end - fault.at < LEASE  # ended early: the window says so
    assert [s for s, _ in world.procs[0].signals] == ["stop", "cont"]
    time.sleep(LEASE + 0.7)  # and the timer, had it fired, continues nothing twice
    assert [s for s, _ in world.procs[0].signals] == ["stop", "cont"]


def test_a_killed_worker_is_replaced_and_its_kill_recorded_with_its_pid() -> None:
    world = World({"w1-2": {"t": 2}})
    nemesis = world.nemesis()
    nemesis.worker_kill(cast(Proc, world.procs[1]), {"t": 2})
    (window,) = nemesis.windows()
    assert (window.kind, window.target, window.pid, window.held) == (
        "worker_kill", "w1-2", 101, (("t", 2),))
    assert world.replaced == ["w1-2"] and nemesis.workers[1].name == "w1-2-new"


def test_infrastructure_faults_come_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World({p.name: {"t": 1} for p in World({}).procs})
    nemesis = world.nemesis(infra=("leader_kill", "redis_kill"))
    hits: list[str] = []
    for kind in ("leader_kill", "redis_kill"):
        def fake(kind: str = kind) -> bool:
            nemesis._record(cast(Any, type("F", (), {"kind": kind})))  # counted as a fault
            hits.append(kind)
            return True
        monkeypatch.setattr(nemesis, kind, fake)
    for _ in range(40):
        nemesis.step()
        nemesis.heal(now=True)
    assert hits[:4] == ["leader_kill", "redis_kill", "leader_kill", "redis_kill"]


def report(**over: Any) -> Report:
    profile = Profile.named("selftest")
    once = Result("every task completed exactly once", over.pop("checked", 600), [])
    base: dict[str, Any] = {
        "store": "sqlite", "seed": 1, "profile": profile, "results": [once],
        "faults": {"worker_kill": 9, "worker_pause_long": 9, "worker_pause_short": 9,
                   "server_kill": 3},
        "seconds": 1.0, "tasks": 600,
        "kinds": (*WORKER_FAULTS, "server_kill"),
        "operations": {k: 3 for k in OPERATIONS}}
    base.update(over)
    return Report(**base)


def test_a_report_says_what_it_falls_short_of() -> None:
    assert report().shortfalls() == [] and report().passed
    assert report(tasks=10).shortfalls() == ["only 10 of 600 tasks ran"]
    few = report(faults={"worker_kill": 2, "worker_pause_long": 2, "worker_pause_short": 2,
                         "server_kill": 1})
    assert few.shortfalls() == ["only 7 of 24 faults were injected"]
    no_kind = report(faults={"worker_kill": 20, "worker_pause_long": 10, "server_kill": 1})
    assert no_kind.shortfalls() == ["no worker_pause_short fault was injected"]
    assert report(checked=5).shortfalls() == ["the exactly-once line did not check every task"]
    no_op = report(operations={"emergency": 3, "preempt_release": 3, "preempt_revoke": 3,
                               "release": 3, "emergency_interrupt not answered": 1})
    assert no_op.shortfalls() == ["no emergency_interrupt operation was made"]
    assert not report(results=[]).passed
    assert "SHORT: only 10 of 600 tasks ran" in report(tasks=10).render()


def test_fake_procs_stand_for_real_ones(tmp_path: Path) -> None:
    """The stand-ins offer every Proc member the nemesis uses."""
    used = {"name", "pid", "alive", "paused", "kill", "pause", "resume"}
    assert used <= set(dir(Proc)) | set(vars(Proc("x", ["true"], {}, tmp_path / "log")))
    assert all(hasattr(FakeProc("x", 1), m) for m in used)
