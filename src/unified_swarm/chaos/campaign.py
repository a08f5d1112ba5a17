"""The campaign: a real swarm (servers, workers, Redis) under a seeded nemesis, then the
checker over every journal, the effect log and a final dump of the store.

    run(Profile.named("ci"), store="redis", workdir=Path("/tmp/chaos"), seed=7)
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from ..client import Client
from ..client.base import RetryPolicy
from ..client.types import TaskIn
from ..errors import AlreadyExists, StaleVersion, SwarmError
from ..procs import Proc, RedisServer, SwarmServer, swarm_worker, wait_until
from . import checker
from .dump import dump_store
from .effects import ENV as EFFECTS_ENV
from .effects import read_effects
from .history import read_histories
from .journal import JOURNAL_ENV, ClientJournal
from .nemesis import Nemesis

TOKEN = "chaos-operator-token"
PERSISTENT = RetryPolicy(attempts=60, backoff=0.1, max_backoff=1.0, budget=60.0)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    tasks: int
    min_faults: int
    workers: int = 6
    per_worker: int = 4
    heartbeat: float = 1.0
    batch: int = 200
    in_flight: int = 800
    fault_every: float = 0.15
    #: every n-th fault hits the infrastructure (orchestrator, Redis, leader replica)
    infra_every: int = 25
    time_limit: float = 600.0

    @classmethod
    def named(cls, name: str) -> Profile:
        return {
            "ci": cls("ci", tasks=10_000, min_faults=100),
            "soak": cls("soak", tasks=100_000, min_faults=1000, time_limit=7200),
            "selftest": cls("selftest", tasks=600, min_faults=24, workers=4, batch=100,
                            in_flight=300, infra_every=8, time_limit=180),
        }[name]


@dataclass
class Report:
    store: str
    seed: int
    profile: Profile
    results: list[checker.Result]
    faults: dict[str, int]
    seconds: float
    tasks: int
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def render(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        head = (f"chaos campaign: store={self.store} profile={self.profile.name} "
                f"seed={self.seed} tasks={self.tasks} faults={sum(self.faults.values())} "
                f"({faults}) in {self.seconds:.0f}s")
        return "\n".join([head, checker.table(self.results), *self.notes])


class Swarm:
    """The processes of one campaign and the knobs to start them."""

    def __init__(self, store: str, workdir: Path, profile: Profile,
                 external_redis: str | None = None, prefix: str | None = None) -> None:
        self.workdir, self.profile = workdir, profile
        self.journal_dir, self.effects_dir = workdir / "journal", workdir / "effects"
        for d in (self.journal_dir, self.effects_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix or f"chaos-{os.getpid()}-{random.randrange(1 << 30)}"
        (workdir / "prefix").write_text(self.prefix)  # so a selftest can clean up after
        self.redis: RedisServer | None = None
        self.kind = "redis" if store.startswith("redis") else "sqlite"
        if self.kind == "redis" and external_redis is None:
            self.redis = RedisServer(workdir / "redis")
        self.store_url = external_redis or "sqlite"
        self.servers: list[SwarmServer] = []
        self.workers: list[Proc] = []
        self._serial = 0

    def start(self) -> None:
        if self.redis is not None:
            self.redis.start()
            self.store_url = self.redis.url
        replicas = 2 if self.kind == "redis" else 1
        env = {"SWARM_REDIS_PREFIX": self.prefix, "SWARM_HEARTBEAT_INTERVAL":
               str(self.profile.heartbeat)}
        for n in range(replicas):
            name = f"replica-{n}"
            server = SwarmServer(name, store=self.store_url, data_dir=self.workdir / "data",
                                 token=TOKEN, log=self.workdir / "logs" / f"{name}.log",
                                 env={**env, "SWARM_RATE_LIMIT": "0", "SWARM_REPLICA_ID": name})
            self.servers.append(server.start())
        self.workers = [self.new_worker(n) for n in range(self.profile.workers)]

    def new_worker(self, slot: int) -> Proc:
        self._serial += 1
        name = f"w{slot}-{self._serial}"
        server = self.servers[slot % len(self.servers)]
        env = {JOURNAL_ENV: str(self.journal_dir), EFFECTS_ENV: str(self.effects_dir)}
        args = ["-c", "chaos", "--executor", "python", "--function",
                "unified_swarm.chaos.effects:run", "--max-tasks", str(self.profile.per_worker),
                "--heartbeat-interval", str(self.profile.heartbeat), "--wait", "2",
                "--log-level", "warning"]
        return swarm_worker(name, server.url, TOKEN, args, self.workdir / "logs" / f"{name}.log",
                            env).start()

    def infra_faults(self) -> tuple[str, ...]:
        if self.kind == "sqlite":
            return ("server_kill",)
        return ("leader_kill", "redis_kill") if self.redis is not None else ("leader_kill",)

    def replace(self, dead: Proc) -> Proc:
        return self.new_worker(int(dead.name[1:].split("-")[0]))

    def client(self, n: int = 0) -> Client:
        server = self.servers[n % len(self.servers)]
        return Client(server.url, TOKEN, retry=PERSISTENT, timeout=10,
                      on_call=ClientJournal.in_dir(str(self.journal_dir)))

    def stop(self) -> None:
        for w in self.workers:
            w.stop(grace=15)
        for s in self.servers:
            s.stop()

    def kill_all(self) -> None:
        for p in [*self.workers, *self.servers, *([self.redis] if self.redis else [])]:
            if p.alive:
                p.kill()


def _tasks(start: int, count: int, rng: random.Random) -> list[dict[str, object]]:
    """A batch: mostly short no-ops, a few long ones (so pauses catch work in flight), and
    dependency chains inside the batch."""
    out: list[dict[str, object]] = []
    for n in range(start, start + count):
        ms = rng.randint(800, 2000) if rng.random() < 0.02 else rng.randint(0, 30)
        task: dict[str, object] = {"id": f"c{n:07d}", "type": "chaos", "input": {"ms": ms},
                                   "max_attempts": 50, "priority": rng.randint(1, 10)}
        if n > start and rng.random() < 0.1:
            task["dependencies"] = [f"c{rng.randint(start, n - 1):07d}"]
        out.append(task)
    return out


def _submit(swarm: Swarm, profile: Profile, rng: random.Random, done: threading.Event,
            deadline: float) -> None:
    with swarm.client() as c:
        for start in range(0, profile.tasks, profile.batch):
            batch = _tasks(start, min(profile.batch, profile.tasks - start), rng)
            while time.monotonic() < deadline:
                status = c.status()
                open_ = status["tasks_total"] - status["tasks_completed"] - status["tasks_failed"]
                if open_ < profile.in_flight:
                    break
                time.sleep(0.05)
            # AlreadyExists: an earlier try whose answer was lost did add it (all or nothing)
            with contextlib.suppress(AlreadyExists):
                c.add_tasks(cast(list[TaskIn], batch))
    done.set()


def _write_knowledge(swarm: Swarm, stop: threading.Event, rng: random.Random) -> None:
    """Compare-and-set increments on a few topics; every acknowledged version must stay."""
    with swarm.client(1) as c:
        for n in range(100_000):
            if stop.wait(0.05):
                return
            topic = f"chaos/topic-{rng.randint(0, 4)}"
            try:
                current = c.get_knowledge(topic)["version"]
            except SwarmError:
                current = 0
            try:
                c.put_knowledge(topic, {"n": n}, expected_version=current)
            except (StaleVersion, SwarmError):
                continue


def _held_by(swarm: Swarm, margin: float) -> Callable[[str], dict[str, int]]:
    """The leases a session holds with more than `margin` seconds left (a lease about to
    run out anyway, say of a worker just back from a long pause, proves nothing)."""
    def held(session: str) -> dict[str, int]:
        out: dict[str, int] = {}
        with swarm.client() as c:
            try:
                for tid in c.session(session)["current_tasks"]:
                    task = c.get_task(tid)["task"]
                    expires = checker.ts(task["lease_expires_at"])
                    if (task["status"] == "in_progress" and expires is not None
                            and expires - time.time() > margin):
                        out[tid] = task["fencing_token"]
            except SwarmError:
                return {}
        return out
    return held


@contextmanager
def _always_cleaned(swarm: Swarm) -> Iterator[Swarm]:
    try:
        yield swarm
    finally:
        swarm.kill_all()


def run(profile: Profile, store: str, workdir: Path, seed: int | None = None,
        external_redis: str | None = None) -> Report:
    """Run one campaign and check it. `external_redis`: a Redis the campaign must not kill
    (swarm selftest); its keys get a prefix of their own."""
    seed = random.randrange(1 << 31) if seed is None else seed
    rng = random.Random(seed)
    swarm = Swarm(store, workdir, profile, external_redis)
    t0 = time.monotonic()
    deadline = t0 + profile.time_limit
    with ExitStack() as stack:
        stack.enter_context(_always_cleaned(swarm))
        swarm.start()
        lease = 3 * profile.heartbeat
        nemesis = Nemesis(rng.randrange(1 << 31), lease, swarm.workers, swarm.servers,
                          swarm.redis, swarm.replace,
                          _held_by(swarm, lease / 4 + profile.heartbeat),
                          swarm.infra_faults(),
                          profile.infra_every)
        submitted, stop_writer = threading.Event(), threading.Event()
        threads = [threading.Thread(target=_submit, args=(swarm, profile, rng, submitted,
                                                          deadline), daemon=True),
                   threading.Thread(target=_write_knowledge,
                                    args=(swarm, stop_writer, random.Random(seed + 1)),
                                    daemon=True)]
        for t in threads:
            t.start()
        while time.monotonic() < deadline and not (
                submitted.is_set() and len(nemesis.faults) >= profile.min_faults):
            nemesis.step()
            time.sleep(profile.fault_every)
        nemesis.heal()
        stop_writer.set()
        _settle(swarm, deadline)
        for t in threads:
            t.join(30)
        swarm.stop()
        dump = dump_store(swarm.store_url, swarm.prefix, workdir / "data")
        dump.outages = nemesis.outages
    results = checker.check(read_histories(swarm.journal_dir), read_effects(swarm.effects_dir),
                            dump)
    results.append(short_pauses_kept(nemesis, dump))
    return Report(swarm.kind, seed, profile, results, dict(nemesis.counts),
                  time.monotonic() - t0, len(dump.tasks))


def _settle(swarm: Swarm, deadline: float) -> None:
    """Wait (bounded) until no task is open; then the checker sees final states."""
    def quiet() -> bool:
        try:
            with swarm.client() as c:
                s = c.status()
        except SwarmError:
            return False
        return (s["tasks_pending"] + s["tasks_ready"] + s["tasks_assigned"]
                + s["tasks_in_progress"]) == 0
    with contextlib.suppress(TimeoutError):  # the checker reports what is still open as lost
        wait_until(quiet, max(30.0, deadline - time.monotonic()), "every task to finish", 0.2)


def short_pauses_kept(nemesis: Nemesis, dump: checker.Dump) -> checker.Result:
    """A pause shorter than the lease must not cost the lease.

    An expiry is the pause's fault only if the lease was never renewed after the pause
    (its final deadline is within one lease of the pause's end) and nothing else hit that
    worker before the expiry: a later kill or long pause of the same worker, or an
    infrastructure outage within a lease of the pause, explains it instead (counted).
    """
    bad = []
    checked = excused = 0
    lease = nemesis.lease
    for exp in nemesis.expectations:
        if any(a - lease <= exp.end and exp.start <= b + lease
               for a, b in nemesis.disruptions):
            excused += len(exp.held)
            continue
        for task, token in exp.held.items():
            checked += 1
            att = next((a for a in dump.history.get(task, [])
                        if a["fencing_token"] == token), None)
            if att is None or att["outcome"] != "expired":
                continue
            deadline, ended = checker.ts(att["lease_expires_at"]), checker.ts(att["ended_at"])
            renewed_after = deadline is not None and deadline > exp.end + lease
            later_fault = any(f.target == exp.session and exp.end < f.at <= (ended or f.at)
                              for f in nemesis.faults)
            if renewed_after or later_fault:
                excused += 1
                continue
            bad.append(f"{task}: {exp.session} lost its lease to a short pause")
    return checker.Result("short pause keeps the lease", checked, bad,
                          f"{excused} excused: another fault explains it" if excused else "")
