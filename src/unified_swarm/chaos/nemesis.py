"""The nemesis: seeded faults against real processes. The seed is printed, so a failing run
can be replayed with the same choices (timing on a shared machine still varies).

Worker faults aim at work in progress: a kill, a long pause or a short pause picks a worker
that holds a lease (a fault on an idle worker proves nothing and is not injected). They come
in rounds of one of each kind, in a seeded order, so even a short run has every kind. A short
pause lasts between one heartbeat and half a lease, so the worker's leases survive only if
its heartbeat renews them promptly once it runs again: a broken renewal path fails the
check. Infrastructure faults (the orchestrator, Redis, the leader replica) run one at a
time; the time from the kill until the swarm coordinates again is an outage: a lease that
expires while nobody can reap it is judged from the end of the outage.

Every fault is recorded with its target and its window (checker.FaultWindow), which is all
the checker may use to excuse a lost lease.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..procs import Proc, RedisServer, SwarmServer, wait_until
from .checker import FaultWindow

WORKER_FAULTS = ("worker_kill", "worker_pause_long", "worker_pause_short")
#: how many running workers a worker fault asks about before it gives up finding a busy one
PROBES = 4


@dataclass(slots=True)
class Fault:
    kind: str
    target: str
    at: float
    end: float
    pid: int | None = None
    held: dict[str, int] = field(default_factory=dict)
    detail: str = ""

    def window(self) -> FaultWindow:
        return FaultWindow(self.kind, self.target, self.at, self.end, self.pid,
                           tuple(sorted(self.held.items())))


@dataclass
class Nemesis:
    seed: int
    lease: float
    heartbeat: float
    workers: list[Proc]
    servers: list[SwarmServer]
    redis: RedisServer | None
    replace_worker: Callable[[Proc], Proc]
    #: the leases a session holds now (task -> fencing token) with more than the given
    #: seconds left
    held_by: Callable[[str, float], dict[str, int]]
    #: the infrastructure faults allowed (none against a Redis the campaign does not own)
    infra: tuple[str, ...] = ()
    infra_every: int = 25
    faults: list[Fault] = field(default_factory=list)
    outages: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._kinds: list[str] = []  # the worker faults of this round still to come
        self._pending: list[tuple[threading.Timer, Callable[[], None]]] = []
        self._lock = threading.Lock()

    @property
    def counts(self) -> Counter[str]:
        return Counter(f.kind for f in self.faults)

    def windows(self) -> list[FaultWindow]:
        with self._lock:
            return [f.window() for f in self.faults]

    def step(self) -> bool:
        """Inject one fault; every `infra_every`-th is an infrastructure fault (each kind
        in turn). False when no worker held work to aim at (nothing was injected)."""
        if self.infra and self.faults and len(self.faults) % self.infra_every == 0:
            # in turn, not at random: every run hits every kind of infrastructure
            done = sum(f.kind in self.infra for f in self.faults)
            return bool(getattr(self, self.infra[done % len(self.infra)])())
        running = [w for w in self.workers if w.alive and not w.paused]
        if len(running) <= len(self.workers) // 2:
            return False  # keep half the workers able to work
        if not self._kinds:  # rounds of one of each, in a seeded order: every kind comes
            self._kinds = self.rng.sample(WORKER_FAULTS, len(WORKER_FAULTS))
        kind = self._kinds[0]
        busy = self._busy(running, self.healthy if kind == "worker_pause_short" else 0.0)
        if busy is None:
            return False
        getattr(self, kind)(*busy)
        self._kinds.pop(0)
        return True

    @property
    def healthy(self) -> float:
        """Time left on a lease renewed within the last heartbeat interval: the leases a
        short pause must not cost (an older one may be in trouble already)."""
        return self.lease - self.heartbeat

    def _busy(self, running: list[Proc], margin: float) -> tuple[Proc, dict[str, int]] | None:
        """A running worker that holds work (with `margin` seconds left on it), and what it
        holds; None if a few asked hold nothing."""
        for w in self.rng.sample(running, min(PROBES, len(running))):
            held = self.held_by(w.name, margin)
            if held:
                return w, held
        return None

    # -- worker faults -------------------------------------------------------------------

    def worker_kill(self, w: Proc, held: dict[str, int]) -> None:
        at, pid = time.time(), w.pid
        w.kill()  # sent, then reaped: the process died between `at` and now
        self._record(Fault("worker_kill", w.name, at, time.time(), pid, held))
        self.workers[self.workers.index(w)] = self.replace_worker(w)

    def worker_pause_long(self, w: Proc, held: dict[str, int]) -> None:
        self._pause(w, held, "worker_pause_long", self.lease + self.rng.uniform(0.5, 1.5))

    def worker_pause_short(self, w: Proc, held: dict[str, int]) -> None:
        """Between one heartbeat and half a lease: the lease must survive it."""
        self._pause(w, held, "worker_pause_short",
                    self.rng.uniform(self.heartbeat, self.lease / 2))

    def _pause(self, w: Proc, held: dict[str, int], kind: str, seconds: float) -> None:
        at = time.time()
        w.pause()
        fault = Fault(kind, w.name, at, at + seconds, w.pid, held, f"{seconds:.2f}s")
        self._record(fault)
        once = threading.Lock()

        def resume() -> None:  # from the timer, or from heal(): whichever comes first
            if once.acquire(blocking=False):
                w.resume()
                fault.end = time.time()  # the pause as it was, not as it was meant

        self._later(seconds, resume)

    # -- infrastructure faults -----------------------------------------------------------

    def server_kill(self) -> bool:
        server = self.rng.choice(self.servers)
        t0 = time.time()
        server.kill()
        time.sleep(self.rng.uniform(0.2, 1.0))
        server.start()
        self._outage(Fault("server_kill", server.name, t0, time.time()))
        return True

    def leader_kill(self) -> bool:
        leaders = [s for s in self.servers if (s.health() or {}).get("leader")]
        if not leaders:
            return False
        victim = leaders[0]
        others = [s for s in self.servers if s is not victim]
        t0 = time.time()
        victim.kill()
        wait_until(lambda: any((s.health() or {}).get("leader") for s in others), 30,
                   "another replica to take the lead")
        led = time.time()
        victim.start()  # its workers could not reach anyone until now
        self._outage(Fault("leader_kill", victim.name, t0, time.time()), led)
        return True

    def redis_kill(self) -> bool:
        assert self.redis is not None
        t0 = time.time()
        self.redis.kill()
        time.sleep(self.rng.uniform(0.2, 1.0))
        self.redis.start()
        wait_until(lambda: any((s.health() or {}).get("leader") for s in self.servers), 30,
                   "a leader after the Redis restart")
        self._outage(Fault("redis_kill", "redis", t0, time.time()))
        return True

    # -- plumbing ------------------------------------------------------------------------

    def _outage(self, fault: Fault, coordinating_again: float | None = None) -> None:
        self._record(fault)
        with self._lock:
            self.outages.append((fault.at, coordinating_again or fault.end))

    def _record(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        timer = threading.Timer(delay, fn)
        timer.daemon = True
        self._pending.append((timer, fn))
        timer.start()

    def heal(self, now: bool = False) -> None:
        """Stop injecting: let every pause run its course (at most a lease and a half), so
        each keeps the window it was recorded with; `now` ends them at once (recorded)."""
        for timer, resume in self._pending:
            if now:
                timer.cancel()
            else:
                timer.join()
            resume()
        self._pending.clear()
