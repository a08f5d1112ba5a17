"""A local pool with real processes: `swarm server --pools` starting `swarm worker`s.

A burst of ready work grows the pool from min 1 to max 4 in ONE decision; once the queue
is empty it shrinks back to 1 by drain only: every task completes exactly once (one
attempt each, one start and one finish in the side-effect file), no worker is killed
mid-task (no expired or released attempt), every drained worker exits 0. A command that
dies at start backs off (doubling waits, a `pool.backoff` event); the server stopping
drains or leaves its workers as `--on-exit` says.

Bounds are progress (which decision did what, which attempt ended how); the time limits are
only there to stop a stuck run.
"""

from __future__ import annotations

import collections
import itertools
import signal
from datetime import datetime
from pathlib import Path

import pytest

from unified_swarm.client import Client

from .helpers import (
    TOKEN,
    alive,
    events,
    pool,
    reaping,
    start_server,
    stopping,
    wait_for,
    worker_command,
    write_pools,
)

pytestmark = pytest.mark.slow
BURST = 40


def test_burst_grows_to_max_in_one_decision_then_drains_back(tmp_path: Path) -> None:
    effects = tmp_path / "effects"
    pools = write_pools(tmp_path / "pools.toml", {"build": {
        "capabilities": ["build"], "min": 1, "max": 4, "interval": 0.5,
        "scale_down_window": 1, "command": worker_command(effects)}})
    server = start_server(tmp_path, "one", pools)
    pids: set[int] = set()
    with reaping(pids), stopping(server), Client(server.url, TOKEN) as op:
        first = wait_for(lambda: pool(op, "build")["sessions"]["idle"] == 1 and
                         pool(op, "build"), "the min worker to register")
        pids.update(w["pid"] for w in first["spawner_status"]["workers"])
        before = op.status()["last_event_seq"]
        op.add_tasks([{"id": f"t{i}", "type": "build"} for i in range(BURST)])

        grown = wait_for(lambda: (p := pool(op, "build"))["sessions"]["idle"]
                         + p["sessions"]["busy"] == 4 and p, "four registered sessions")
        pids.update(w["pid"] for w in grown["spawner_status"]["workers"])
        scaled = [e for e in events(server.url) if e["type"] == "pool.scaled"]
        after_burst = [e for e in scaled if e["seq"] > before]
        # the first decision that saw the burst asked for all of it: 1 -> 4 at once
        assert after_burst[0]["data"]["from"] == 1 and after_burst[0]["data"]["to"] == 4
        assert len(after_burst[0]["data"]["started"]) == 3

        wait_for(lambda: op.status()["tasks_completed"] == BURST, "the burst to complete")
        shrunk = wait_for(lambda: (p := pool(op, "build"))["current"] == 1
                          and len(p["spawner_status"]["exited"]) == 3 and p,
                          "the pool to drain back to 1")
        scaled = [e["data"] for e in events(server.url) if e["type"] == "pool.scaled"]
        down = [d for d in scaled if d["to"] < d["from"]]
        # shrunk by drain only (as sessions went idle with nothing ready), down to min 1
        assert down and down[-1]["to"] == 1 and scaled[-1] == down[-1]
        drained = [sid for d in down for sid in d["drained"]]
        assert len(drained) == 3 and all(d["started"] == [] for d in down)
        exited = shrunk["spawner_status"]["exited"]
        assert [w["exit_code"] for w in exited] == [0, 0, 0]
        assert {w["session_id"] for w in exited} == set(drained)

        # every task: one attempt, completed; no expired or released attempt anywhere
        for i in range(BURST):
            history = op.get_task(f"t{i}")["history"]
            assert [a["outcome"] for a in history] == ["completed"], (i, history)
        sessions = {s["id"]: s for s in op.sessions()}
        for sid in drained:
            assert sessions[sid]["status"] == "offline"  # left by itself after the drain

        last = shrunk["spawner_status"]["workers"][0]["pid"]
        server.stop(grace=60)  # --on-exit drain (the default): the last worker drains
        assert not alive(last)

    lines = collections.Counter(tuple(line.split()) for line in effects.read_text().splitlines())
    per_task = collections.Counter(task for task, _, _ in lines)
    assert per_task == {f"t{i}": 2 for i in range(BURST)}  # one start and one done each
    for (task, session, what), n in lines.items():
        assert n == 1 and (task, session, "done" if what == "start" else "start") in lines
    log = (tmp_path / "data-one" / "pools" / "build.log").read_text()
    assert log.count("deregistered session") == 4


def test_a_crash_looping_command_backs_off(tmp_path: Path) -> None:
    interval = 0.1
    pools = write_pools(tmp_path / "pools.toml", {"broken": {
        "min": 1, "max": 2, "interval": interval, "command": ["sh", "-c", "exit 3"]}})
    server = start_server(tmp_path, "crash", pools)
    with stopping(server), Client(server.url, TOKEN) as op:
        view = wait_for(lambda: (p := pool(op, "broken"))["spawner_status"]["spawned"]
                        >= 7 and p, "seven failed starts", within=120)
        status = view["spawner_status"]
        assert status["backoff"]["crashlooping"] is True
        assert status["backoff"]["last_exit_code"] == 3
        exits = sorted(status["exited"], key=lambda w: w["started_at"])
        assert all(w["exit_code"] == 3 for w in exits)
        starts = [datetime.fromisoformat(w["started_at"]) for w in exits]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
        # after the k-th failure in a row the next start waits interval x 2^(k-1): never
        # a hot loop (the clock is the server's, ms precision)
        for k, gap in enumerate(gaps, start=1):
            assert gap >= interval * 2 ** (k - 1) - 0.002, (k, gaps)
        # one start at a time while failing: never two workers of a broken pool
        assert len(status["workers"]) <= 1
        backoff = [e["data"] for e in events(server.url) if e["type"] == "pool.backoff"]
        assert len(backoff) == 1
        assert backoff[0]["failures"] == 5 and backoff[0]["exit_code"] == 3
        assert backoff[0]["retry_in"] == pytest.approx(interval * 2 ** 4)


def test_on_exit_leave_keeps_the_workers(tmp_path: Path) -> None:
    pools = write_pools(tmp_path / "pools.toml", {"build": {
        "capabilities": ["build"], "min": 2, "max": 2, "interval": 0.5,
        "command": worker_command(tmp_path / "effects")}})
    server = start_server(tmp_path, "leave", pools, extra={"SWARM_ON_EXIT": "leave"})
    pids: set[int] = set()
    with reaping(pids), stopping(server), Client(server.url, TOKEN) as op:
        view = wait_for(lambda: (p := pool(op, "build"))["sessions"]["idle"] == 2 and p,
                        "two idle workers")
        pids.update(w["pid"] for w in view["spawner_status"]["workers"])
        assert len(pids) == 2
        server.signal(signal.SIGTERM)
        assert server.popen is not None
        # uvicorn re-raises the signal it shut down for: the server ends by SIGTERM
        assert server.popen.wait(60) in (0, -signal.SIGTERM)
        assert all(alive(pid) for pid in pids)  # left running, as asked
