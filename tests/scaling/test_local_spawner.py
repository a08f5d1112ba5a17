"""The local spawner on its own, with real child processes and no server: what counts as a
failed start, what does not, scale-in of workers that never registered, a command that
cannot even be started, and the two ways a server stops."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from unified_swarm.core.autoscale import Decision, Observation, Policy
from unified_swarm.models import Session, SessionStatus
from unified_swarm.scaling.local import CRASHLOOP, LocalSpawner
from unified_swarm.scaling.pools import Pool
from unified_swarm.scaling.spawner import PoolView

from .helpers import alive, wait_for


def spawner(tmp_path: Path, *command: str, interval: float = 0.01) -> LocalSpawner:
    pool = Pool(name="p", policy=Policy(min=0, max=4), command=command, interval=interval)
    return LocalSpawner(pool, "http://127.0.0.1:1", "token", tmp_path / "pools")


def to(current: int, desired: int) -> Decision:
    return Decision("p", 0.0, current, desired, desired, "test",
                    Observation(ready=0, idle=0, busy=current))


async def nothing(sid: str) -> None:
    raise AssertionError(f"no session should be drained here ({sid})")


async def settle(sp: LocalSpawner) -> int:
    """Observe until every child that is going to exit has been reaped."""
    for _ in range(500):
        starting = await sp.observe(PoolView(), time.time())
        if all(c.process.alive for c in sp.children.values()):
            return starting
        await asyncio.sleep(0.02)
    raise AssertionError("children did not settle")


async def test_exit_zero_unasked_is_no_failure_but_a_crash_is(tmp_path: Path) -> None:
    sp = spawner(tmp_path, "sh", "-c", "exit 0")
    acted = await sp.scale(to(0, 2), PoolView(), nothing, time.time())
    assert len(acted.started) == 2
    wait_for(lambda: all(not c.process.alive for c in sp.children.values()), "exits")
    assert await settle(sp) == 0
    assert sp.backoff.failures == 0 and [c.exit_code for c in sp.exited] == [0, 0]

    sp = spawner(tmp_path, "sh", "-c", "exit 7")
    for _ in range(CRASHLOOP):
        await sp.scale(to(0, 1), PoolView(), nothing, sp.backoff.until)
        wait_for(lambda: all(not c.process.alive for c in sp.children.values()),
                 "an exit")
        await settle(sp)
    assert sp.backoff.failures == CRASHLOOP and sp.backoff.last_exit_code == 7
    assert [t for t, _ in sp.events] == ["pool.backoff"]
    # backing off: a decision before `until` starts nothing
    acted = await sp.scale(to(0, 1), PoolView(), nothing, sp.backoff.until - 0.001)
    assert not acted.started and "backing off" in acted.note


async def test_a_session_seen_ends_the_streak(tmp_path: Path) -> None:
    sp = spawner(tmp_path, "sleep", "30")
    sp.backoff.failures = 3
    acted = await sp.scale(to(0, 3), PoolView(), nothing, time.time())
    assert len(acted.started) == 1  # one probe at a time while starts keep failing
    (sid,) = acted.started
    assert (await sp.scale(to(1, 3), PoolView(), nothing, time.time())).started == []
    registered = Session(id=sid, name=sid, capabilities=[], status=SessionStatus.IDLE,
                         max_concurrent_tasks=1, heartbeat_interval=1, last_heartbeat=0,
                         registered_at=0, metadata={"pool": "p"})
    assert await sp.observe(PoolView([registered]), time.time()) == 0
    assert sp.backoff.failures == 0

    drained: list[str] = []

    async def drain(session_id: str) -> None:
        """The orchestrator's drain; the worker then leaves (here: SIGTERM stands in)."""
        drained.append(session_id)
        sp.children[session_id].process.signal(signal.SIGTERM)

    await sp.close("drain", drain, 30)  # a registered worker is drained, not signalled
    assert drained == [sid] and not sp.children[sid].process.alive


async def test_scale_in_never_signals_a_starting_worker(tmp_path: Path) -> None:
    sp = spawner(tmp_path, "sleep", "30")
    await sp.scale(to(0, 3), PoolView(), nothing, time.time())
    pids = [c.process.pid for c in sp.children.values()]
    assert await sp.observe(PoolView(), time.time()) == 3
    acted = await sp.scale(to(3, 1), PoolView(), nothing, time.time())
    assert not acted and "drained once they register" in acted.note
    assert all(alive(pid) for pid in pids)
    await sp.close("leave", nothing, 0)
    assert all(alive(pid) for pid in pids)
    await sp.close("drain", nothing, 30)  # never registered: SIGTERM, then waited for
    assert not any(alive(pid) for pid in pids)
    assert await settle(sp) == 0 and sp.backoff.failures == 0  # asked to stop: no failure


async def test_a_command_that_cannot_start(tmp_path: Path) -> None:
    sp = spawner(tmp_path, str(tmp_path / "no-such-program"))
    for _ in range(CRASHLOOP):
        acted = await sp.scale(to(0, 1), PoolView(), nothing, sp.backoff.until)
        assert not acted.started and acted.note == "the command could not start"
    assert sp.backoff.failures == CRASHLOOP and sp.backoff.last_exit_code is None
    ((kind, data),) = sp.events
    assert kind == "pool.backoff" and "no-such-program" in data["error"]
