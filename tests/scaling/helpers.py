"""Shared by the autoscaling tests: a pools file, a `swarm server` that scales it, waiting on
its state (by progress, with generous bounds for a loaded machine), and its events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect

from unified_swarm.client import Client
from unified_swarm.procs import SwarmServer

TOKEN = "scaling-operator"
#: generous: a worker process starting on a loaded 2-core machine takes seconds
STARTUP = 90.0


def write_pools(path: Path, pools: dict[str, dict[str, Any]]) -> Path:
    """A TOML pools file from plain values (strings, numbers, lists of strings)."""
    lines = []
    for name, keys in pools.items():
        lines.append(f"[pools.{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def worker_command(effects: Path, seconds: float = 0.3, heartbeat: float = 0.5) -> list[str]:
    """A `swarm worker` whose task writes a start and a done line (task, session) to
    `effects`: a task started twice, or a worker killed mid-task, shows there."""
    script = (f'echo "$SWARM_TASK_ID $SWARM_SESSION_ID start" >> {effects}; '
              f"sleep {seconds}; "
              f'echo "$SWARM_TASK_ID $SWARM_SESSION_ID done" >> {effects}')
    return ["swarm", "worker", "-c", "build", "--heartbeat-interval", str(heartbeat),
            "--wait", "5", "--command", f"sh -c '{script}'"]


def start_server(tmp: Path, name: str, pools: Path, store: str = "sqlite",
                 extra: dict[str, str] | None = None) -> SwarmServer:
    env = {"SWARM_POOLS": str(pools), "SWARM_REPLICA_ID": name, "SWARM_RATE_LIMIT": "0",
           **(extra or {})}
    return SwarmServer(name, data_dir=tmp / f"data-{name}", token=TOKEN,
                       log=tmp / f"{name}.log", store=store, env=env).start()


def wait_for(check: Callable[[], Any], what: str, within: float = STARTUP,
             every: float = 0.1) -> Any:
    """Until `check()` is truthy; returns it. A bound for a stuck run, not a speed claim."""
    deadline = time.monotonic() + within
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        time.sleep(every)


def pool(op: Client, name: str) -> dict[str, Any]:
    view: dict[str, Any] = op.scaling()["pools"][name]
    return view


def events(url: str, prefix: str = "pool") -> list[dict[str, Any]]:
    """Every event of the swarm so far whose type starts with `prefix`."""
    with Client(url, TOKEN) as op:
        last = op.status()["last_event_seq"]

    async def read() -> list[dict[str, Any]]:
        ws_url = url.replace("http://", "ws://") + f"/swarm/realtime?after=0&token={TOKEN}"
        seen: list[dict[str, Any]] = []
        async with connect(ws_url, open_timeout=30) as ws:
            seq = 0
            while seq < last:
                ev = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
                seq = ev["seq"]
                if ev["type"].startswith(prefix):
                    seen.append(ev)
        return seen

    return asyncio.run(read())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill 0: look at its state
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


@contextlib.contextmanager
def reaping(pids: set[int]) -> Iterator[set[int]]:
    """Kill (at the end) the worker processes a test collected that may outlive their
    server: a test never leaves processes behind."""
    try:
        yield pids
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, 9)


@contextlib.contextmanager
def stopping(server: SwarmServer) -> Iterator[SwarmServer]:
    """Kill the server at the end if the test left it running (a failed assertion)."""
    try:
        yield server
    finally:
        if server.alive:
            server.kill()
