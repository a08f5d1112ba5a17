"""The nemesis: seeded faults against real processes. The seed is printed, so a failing run
can be replayed with the same choices (timing on a shared machine still varies).

Worker faults are quick and may overlap; infrastructure faults (the orchestrator, Redis,
the leader replica) run one at a time, and the time from the kill until the swarm
coordinates again is recorded as an outage: a lease that expires while nobody can reap it
is judged from the end of the outage, not from its deadline.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..procs import Proc, RedisServer, SwarmServer, wait_until

WORKER_FAULTS = ("worker_kill", "worker_pause_long", "worker_pause_short")


@dataclass(slots=True)
class Fault:
    kind: str
    target: str
    at: float
    detail: str = ""


@dataclass(slots=True)
class Expectation:
    """A short pause must not cost the paused worker its lease."""

    session: str
    held: dict[str, int]  # task id -> fencing token at the pause
    start: float
    end: float


@dataclass
class Nemesis:
    seed: int
    lease: float
    workers: list[Proc]
    servers: list[SwarmServer]
    redis: RedisServer | None
    replace_worker: Callable[[Proc], Proc]
    held_by: Callable[[str], dict[str, int]]
    #: the infrastructure faults allowed (none against a Redis the campaign does not own)
    infra: tuple[str, ...] = ()
    infra_every: int = 25
    faults: list[Fault] = field(default_factory=list)
    outages: list[tuple[float, float]] = field(default_factory=list)
    #: kill -> the killed process serves again (a worker of a killed replica cannot heartbeat
    #: until then, pause or no pause)
    disruptions: list[tuple[float, float]] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()

    @property
    def counts(self) -> Counter[str]:
        return Counter(f.kind for f in self.faults)

    def step(self) -> None:
        """Inject one fault; every `infra_every`-th is an infrastructure fault (each kind
        in turn)."""
        if self.infra and self.faults and len(self.faults) % self.infra_every == 0:
            # in turn, not at random: every run hits every kind of infrastructure
            done = sum(f.kind in self.infra for f in self.faults)
            getattr(self, self.infra[done % len(self.infra)])()
            return
        running = [w for w in self.workers if w.alive and not w.paused]
        if len(running) <= len(self.workers) // 2:
            return  # keep half the workers able to work
        victim = self.rng.choice(running)
        getattr(self, self.rng.choice(WORKER_FAULTS))(victim)

    # -- worker faults -------------------------------------------------------------------

    def worker_kill(self, w: Proc) -> None:
        w.kill()
        self._record("worker_kill", w.name)
        self.workers[self.workers.index(w)] = self.replace_worker(w)

    def worker_pause_long(self, w: Proc) -> None:
        pause = self.lease + self.rng.uniform(0.5, 1.5)
        w.pause()
        self._record("worker_pause_long", w.name, f"{pause:.2f}s")
        self._later(pause, w.resume)

    def worker_pause_short(self, w: Proc) -> None:
        """Prefer a worker that holds work: the point is that its lease survives."""
        pause = self.rng.uniform(0.1, self.lease / 4)
        candidates = [x for x in self.workers if x.alive and not x.paused]
        self.rng.shuffle(candidates)
        for x in [w, *candidates[:3]]:
            held = self.held_by(x.name)
            if held:
                w = x
                break
        w.pause()
        now = time.time()
        self.expectations.append(Expectation(w.name, held, now, now + pause))
        self._record("worker_pause_short", w.name, f"{pause:.2f}s, {len(held)} held")
        self._later(pause, w.resume)

    # -- infrastructure faults -----------------------------------------------------------

    def server_kill(self) -> None:
        server = self.rng.choice(self.servers)
        t0 = time.time()
        server.kill()
        self._record("server_kill", server.name)
        time.sleep(self.rng.uniform(0.2, 1.0))
        server.start()
        self.outages.append((t0, time.time()))
        self.disruptions.append((t0, time.time()))

    def leader_kill(self) -> None:
        leaders = [s for s in self.servers if (s.health() or {}).get("leader")]
        if not leaders:
            return
        victim = leaders[0]
        others = [s for s in self.servers if s is not victim]
        t0 = time.time()
        victim.kill()
        self._record("leader_kill", victim.name)
        wait_until(lambda: any((s.health() or {}).get("leader") for s in others), 30,
                   "another replica to take the lead")
        self.outages.append((t0, time.time()))
        victim.start()
        self.disruptions.append((t0, time.time()))

    def redis_kill(self) -> None:
        assert self.redis is not None
        t0 = time.time()
        self.redis.kill()
        self._record("redis_kill", "redis")
        time.sleep(self.rng.uniform(0.2, 1.0))
        self.redis.start()
        wait_until(lambda: any((s.health() or {}).get("leader") for s in self.servers), 30,
                   "a leader after the Redis restart")
        self.outages.append((t0, time.time()))
        self.disruptions.append((t0, time.time()))

    # -- plumbing ------------------------------------------------------------------------

    def _record(self, kind: str, target: str, detail: str = "") -> None:
        with self._lock:
            self.faults.append(Fault(kind, target, time.time(), detail))

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        timer = threading.Timer(delay, fn)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def heal(self) -> None:
        """Stop injecting: fire every pending continue now."""
        for timer in self._timers:
            timer.cancel()
        for w in self.workers:
            if w.paused:
                w.resume()
