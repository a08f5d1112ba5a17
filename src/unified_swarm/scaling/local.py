"""`spawner = "local"`: the pool's workers are child processes of the server.

Each worker runs the pool's `command` (argv[0] `swarm` means this interpreter's own
`swarm`, so a venv needs no PATH) with `SWARM_URL` and `SWARM_TOKEN` of this server,
`SWARM_POOL` (the worker records it as `metadata.pool`, which is how the scaler counts the
pool's sessions) and `SWARM_WORKER_ID` (its session id, `<pool>-<tag>-<n>`, so the
spawner knows which session is which process); none of the server's own `SWARM_*` settings.
Workers are started through the process module (procs.py): each in its own process group,
so a Ctrl-C at the server's terminal reaches only the server, which then drains or leaves
them (`--on-exit`); the output of all of a pool's workers goes to
`<data dir>/pools/<pool>.log`.

Supervision: a worker that exits without being asked to is replaced at the next decision.
One that exits before its session was ever seen online "died at start"; failures in a row
wait `interval` x 2^(n-1) seconds (at most BACKOFF_MAX) before the next start, and the
fifth in a row records `pool.backoff` and shows on the dashboard. A session seen online
ends the streak.

Scale-in is the orchestrator's drain only, idle sessions first; a worker still starting is
drained by a later decision, once it has registered. Only a stopping server (`--on-exit
drain`) sends SIGTERM, to workers that never registered (`swarm worker` drains on it).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.autoscale import Decision
from ..models import iso
from ..procs import Proc, swarm_argv, swarm_env
from .pools import Pool
from .spawner import Acted, Drain, PoolView, scale_in_order

log = logging.getLogger("unified_swarm.scaling")
BACKOFF_MAX = 300.0
#: failed starts in a row that make a pool "crash-looping" (an event, on the dashboard)
CRASHLOOP = 5
RECENT_EXITS = 20


#: starts a worker (name, argv, env, its log, cwd) and returns it running
Launcher = Callable[[str, Sequence[str], Mapping[str, str], Path, str | None], Proc]


def launch(name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path,
           cwd: str | None) -> Proc:
    """A child of the process module: its own process group, output appended to the log."""
    return Proc(name, argv, env, log_path, Path(cwd) if cwd else None).start()


def worker_argv(command: Sequence[str]) -> list[str]:
    """The pool's command, with `swarm` taken as this interpreter's own."""
    if command and command[0] == "swarm":
        return [*swarm_argv(), *command[1:]]
    return list(command)


@dataclass(slots=True)
class Child:
    session_id: str
    process: Proc
    started_at: float
    #: we asked it to stop (drained its session, or SIGTERM before it registered)
    asked: bool = False
    #: its session was seen online
    seen: bool = False
    exit_code: int | None = None
    ended_at: float | None = None

    @property
    def state(self) -> str:
        if self.exit_code is not None:
            return "exited"
        if self.asked:
            return "draining"
        return "running" if self.seen else "starting"

    def wire(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "pid": self.process.pid, "state": self.state,
                "started_at": iso(self.started_at), "ended_at": iso(self.ended_at),
                "exit_code": self.exit_code, "asked_to_stop": self.asked}


@dataclass(slots=True)
class Backoff:
    """Failed starts in a row and when the next start may be tried."""

    failures: int = 0
    until: float = 0.0
    last_exit_code: int | None = None

    @property
    def crashlooping(self) -> bool:
        return self.failures >= CRASHLOOP

    def failed(self, code: int | None, now: float, interval: float) -> float:
        self.failures += 1
        self.last_exit_code = code
        delay: float = min(interval * 2.0 ** (self.failures - 1), max(BACKOFF_MAX, interval))
        self.until = now + delay
        return delay

    def wire(self, now: float) -> dict[str, Any]:
        return {"failures": self.failures, "crashlooping": self.crashlooping,
                "retry_at": iso(self.until) if self.until > now else None,
                "last_exit_code": self.last_exit_code}


@dataclass(slots=True)
class LocalSpawner:
    """One pool's worker processes on this host. See the module docstring."""

    pool: Pool
    url: str
    token: str
    log_dir: Path
    launcher: Launcher = launch
    kind: str = "local"
    children: dict[str, Child] = field(default_factory=dict)
    exited: deque[Child] = field(default_factory=lambda: deque(maxlen=RECENT_EXITS))
    backoff: Backoff = field(default_factory=Backoff)
    #: events to record (the scaler records them): (type, data)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    spawned: int = 0
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    _now: float = 0.0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.pool.name}.log"

    async def observe(self, view: PoolView, now: float) -> int:
        self._now = now
        self._reap(now)
        online = view.ids
        for child in self.children.values():
            if child.session_id in online and not child.seen:
                child.seen = True
                self.backoff.failures = 0  # a worker came up: the streak is over
        return sum(1 for c in self.children.values() if not (c.seen or c.asked))

    def _reap(self, now: float) -> None:
        for sid, child in list(self.children.items()):
            code = child.process.returncode
            if code is None:
                continue
            child.exit_code, child.ended_at = code, now
            del self.children[sid]
            self.exited.append(child)
            self._judge(child, code, now)

    def _judge(self, child: Child, code: int, now: float) -> None:
        if child.asked or code == 0:
            log.info("pool %s: worker %s (pid %d) exited %d", self.pool.name,
                     child.session_id, child.process.pid, code)
            return
        delay = self.backoff.failed(code, now, self.pool.interval)
        at_start = "at start, " if not child.seen else ""
        log.warning("pool %s: worker %s (pid %d) died %swith status %d (%d in a row); next "
                    "start in %.3g s; see %s", self.pool.name, child.session_id,
                    child.process.pid, at_start, code, self.backoff.failures, delay,
                    self.log_path)
        if self.backoff.failures == CRASHLOOP:
            self.events.append(("pool.backoff", {
                "pool": self.pool.name, "failures": self.backoff.failures,
                "exit_code": code, "retry_in": delay, "log": str(self.log_path)}))

    async def scale(self, decision: Decision, view: PoolView, drain: Drain,
                    now: float) -> Acted:
        if decision.desired > decision.current:
            return self._grow(decision.desired - decision.current, now)
        if decision.desired < decision.current:
            return await self._shrink(decision.current - decision.desired, view, drain)
        return Acted()

    def _grow(self, n: int, now: float) -> Acted:
        if now < self.backoff.until:
            return Acted(note=f"backing off after {self.backoff.failures} failed start(s) "
                              f"until {self.backoff.until - now:.3g} s from now")
        if self.backoff.failures:  # one probe at a time while starts keep failing
            if self._unregistered():
                return Acted(note="waiting for the probe worker to register")
            n = 1
        started = [sid for sid in (self._start(now) for _ in range(n)) if sid is not None]
        return Acted(started=started, note="" if started else "the command could not start")

    def _start(self, now: float) -> str | None:
        self.spawned += 1
        sid = f"{self.pool.name}-{self.tag}-{self.spawned}"
        # the server's own SWARM_* settings stay out of the worker's environment
        env = swarm_env(self.url, self.token, **self.pool.env, SWARM_POOL=self.pool.name,
                        SWARM_WORKER_ID=sid)
        try:
            process = self.launcher(sid, worker_argv(self.pool.command), env, self.log_path,
                                    self.pool.cwd)
        except OSError as exc:  # no such program, not executable, no such cwd
            delay = self.backoff.failed(None, now, self.pool.interval)
            log.error("pool %s: cannot start %s: %s (%d in a row); next try in %.3g s",
                      self.pool.name, self.pool.command[0], exc, self.backoff.failures, delay)
            if self.backoff.failures == CRASHLOOP:
                self.events.append(("pool.backoff", {
                    "pool": self.pool.name, "failures": self.backoff.failures,
                    "exit_code": None, "retry_in": delay, "error": str(exc)}))
            return None
        self.children[sid] = Child(sid, process, now)
        log.info("pool %s: started worker %s (pid %d)", self.pool.name, sid, process.pid)
        return sid

    async def _shrink(self, n: int, view: PoolView, drain: Drain) -> Acted:
        acted = Acted()
        for session in scale_in_order(view)[:n]:
            await drain(session.id)
            acted.drained.append(session.id)
            if session.id in self.children:
                self.children[session.id].asked = True
        waiting = min(n - len(acted.drained), len(self._unregistered()))
        if waiting:
            # never a signal, even to a worker holding nothing yet: it is drained like the
            # others once it has registered (a later decision)
            acted.note = f"{waiting} starting worker(s) are drained once they register"
        return acted

    def _unregistered(self) -> list[Child]:
        waiting = [c for c in self.children.values() if not (c.seen or c.asked)]
        return sorted(waiting, key=lambda c: -c.started_at)

    def _terminate(self, child: Child) -> None:
        child.asked = True
        child.process.signal(signal.SIGTERM)

    def status(self) -> dict[str, Any]:
        return {"workers": [c.wire() for c in self.children.values()],
                "exited": [c.wire() for c in self.exited], "spawned": self.spawned,
                "backoff": self.backoff.wire(self._now), "log": str(self.log_path)}

    async def close(self, on_exit: str, drain: Drain, within: float) -> None:
        """Drain every worker still running and wait for them (up to `within` s), or
        leave them running."""
        alive = [c for c in self.children.values() if c.process.alive]
        if not alive or on_exit == "leave":
            if alive:
                log.info("pool %s: leaving %d worker(s) running (pids %s)", self.pool.name,
                         len(alive), " ".join(str(c.process.pid) for c in alive))
            return
        for child in alive:
            await self._ask_to_stop(child, drain)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        for _ in range(int(within / 0.05) + 1):  # a poll: Popen has no awaitable exit
            if not any(c.process.alive for c in alive) or loop.time() > deadline:
                break
            await asyncio.sleep(0.05)
        left = [c for c in alive if c.process.alive]
        if left:
            log.warning("pool %s: %d worker(s) still draining after %.3g s, left running "
                        "(pids %s)", self.pool.name, len(left), within,
                        " ".join(str(c.process.pid) for c in left))

    async def _ask_to_stop(self, child: Child, drain: Drain) -> None:
        if child.seen:
            try:
                await drain(child.session_id)
                child.asked = True
                return
            except Exception as exc:  # the store may be gone: the signal still drains
                log.info("pool %s: could not drain %s (%s); sending SIGTERM",
                         self.pool.name, child.session_id, exc)
        self._terminate(child)
