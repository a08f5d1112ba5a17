"""The campaign's swarm: its processes (Redis, one or two servers, `swarm worker`s) and the
workload it runs (tasks with dependency chains, knowledge compare-and-set writes)."""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from ..client import Client
from ..client.base import RetryPolicy
from ..client.types import TaskIn
from ..errors import AlreadyExists, SwarmError
from ..procs import Proc, RedisServer, SwarmServer, swarm_worker, wait_until
from .checker import ts
from .effects import ENV as EFFECTS_ENV
from .journal import JOURNAL_ENV, ClientJournal

TOKEN = "chaos-operator-token"
PERSISTENT = RetryPolicy(attempts=60, backoff=0.1, max_backoff=1.0, budget=60.0)
#: no task may run out of attempts to faults alone: each fault costs a task at most one
#: attempt, and no task is hit by a hundred (the most attempts of any task is printed)
MAX_ATTEMPTS = 100
#: the share of tasks their worker splits into subtasks
SPLIT_SHARE = 0.02
#: the capability of the operator's own tasks (operator.py) and of the emergencies it is
#: preempted for: no worker has it (a worker with a free slot would take them at once), so
#: the operator's session is the one victim such an emergency can have, and it runs them
#: all itself; it lacks "chaos", so the workload's emergencies are never offered to it
OPERATOR_CAP = "chaos-operator"
#: a preempted holder's grace, in heartbeats: short, so a paused holder's lease is revoked
#: within the run, and long enough for a running worker's heartbeat to hear the directive
GRACE_BEATS = 2.0
#: the campaign's SWARM_MAX_PREEMPTIONS (the checker holds every task to it)
MAX_PREEMPTIONS = 2


class Swarm:
    """The processes of one campaign and the knobs to start them."""

    def __init__(self, store: str, workdir: Path, workers: int, per_worker: int,
                 heartbeat: float, external_redis: str | None = None) -> None:
        self.workdir, self.heartbeat = workdir, heartbeat
        self.n_workers, self.per_worker = workers, per_worker
        self.token = TOKEN
        self.journal_dir, self.effects_dir = workdir / "journal", workdir / "effects"
        for d in (self.journal_dir, self.effects_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.prefix = f"chaos-{os.getpid()}-{random.randrange(1 << 30)}"
        (workdir / "prefix").write_text(self.prefix)  # so a selftest can clean up after
        self.redis: RedisServer | None = None
        self.kind = "redis" if store.startswith("redis") else "sqlite"
        if self.kind == "redis" and external_redis is None:
            self.redis = RedisServer(workdir / "redis")
        self.store_url = external_redis or "sqlite"
        self.servers: list[SwarmServer] = []
        self.workers: list[Proc] = []
        #: worker session id -> the replica it talks to (an outage of that replica is its)
        self.attached: dict[str, str] = {}
        self._serial = 0

    def start(self) -> None:
        if self.redis is not None:
            self.redis.start()
            self.store_url = self.redis.url
        replicas = 2 if self.kind == "redis" else 1
        env = {"SWARM_REDIS_PREFIX": self.prefix, "SWARM_HEARTBEAT_INTERVAL":
               str(self.heartbeat), "SWARM_PREEMPT_GRACE": str(GRACE_BEATS * self.heartbeat),
               "SWARM_MAX_PREEMPTIONS": str(MAX_PREEMPTIONS)}
        for n in range(replicas):
            name = f"replica-{n}"
            server = SwarmServer(name, store=self.store_url, data_dir=self.workdir / "data",
                                 token=TOKEN, log=self.workdir / "logs" / f"{name}.log",
                                 env={**env, "SWARM_RATE_LIMIT": "0", "SWARM_REPLICA_ID": name})
            self.servers.append(server.start())
        self.workers = [self.new_worker(n) for n in range(self.n_workers)]

    def new_worker(self, slot: int) -> Proc:
        self._serial += 1
        name = f"w{slot}-{self._serial}"
        server = self.servers[slot % len(self.servers)]
        self.attached[name] = server.name
        env = {JOURNAL_ENV: str(self.journal_dir), EFFECTS_ENV: str(self.effects_dir)}
        args = ["-c", "chaos", "--executor", "python", "--function",
                "unified_swarm.chaos.effects:run", "--max-tasks", str(self.per_worker),
                "--heartbeat-interval", str(self.heartbeat), "--wait", "2",
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

    def stop(self) -> Counter[int]:
        """Drain every worker (SIGTERM) and stop the servers; the workers' exit codes."""
        codes: Counter[int] = Counter()
        for w in self.workers:
            w.stop(grace=15)
            if w.returncode is not None:
                codes[w.returncode] += 1
        for s in self.servers:
            s.stop()
        return codes

    def kill_all(self) -> None:
        for p in [*self.workers, *self.servers, *([self.redis] if self.redis else [])]:
            if p.alive:
                p.kill()


def tasks(start: int, count: int, rng: random.Random, lease: float) -> list[dict[str, object]]:
    """A batch: mostly short no-ops; a few long ones (so pauses catch work in flight); a
    few longer than a lease (so every run leans on lease renewal); a few split into
    subtasks by their worker (effects.subtasks), merged as a list or an object; and
    dependency chains inside the batch."""
    out: list[dict[str, object]] = []
    for n in range(start, start + count):
        roll = rng.random()
        if roll < 0.003:
            ms = int(lease * 1000 * rng.uniform(1.2, 1.6))
        elif roll < 0.023:
            ms = rng.randint(800, 2000)
        else:
            ms = rng.randint(0, 30)
        spec: dict[str, object] = {"ms": ms}
        if rng.random() < SPLIT_SHARE:
            spec = {"split": rng.randint(2, 3), "merge": rng.choice(("list", "object"))}
        task: dict[str, object] = {"id": f"c{n:07d}", "type": "chaos", "input": spec,
                                   "max_attempts": MAX_ATTEMPTS,
                                   "priority": rng.randint(1, 10)}
        if n > start and rng.random() < 0.1:
            task["dependencies"] = [f"c{rng.randint(start, n - 1):07d}"]
        out.append(task)
    return out


def submit(swarm: Swarm, total: int, batch: int, in_flight: int, rng: random.Random,
           enough: Callable[[], bool], done: threading.Event, deadline: float,
           count: list[int]) -> None:
    """Add `total` tasks, `batch` at a time with at most `in_flight` open; then keep adding
    until `enough()` (the nemesis reached its fault floor)."""
    start = 0
    with swarm.client() as c:
        while time.monotonic() < deadline and (start < total or not enough()):
            size = min(batch, total - start) if start < total else batch
            while time.monotonic() < deadline:
                status = c.status()
                open_ = (status["tasks_pending"] + status["tasks_ready"]
                         + status["tasks_assigned"] + status["tasks_in_progress"])
                if open_ < in_flight:
                    break
                time.sleep(0.05)
            # AlreadyExists: a try whose answer was lost did add it (all or nothing); the
            # key lets a server that keeps answers by key say so itself
            with contextlib.suppress(AlreadyExists):
                c.add_tasks(cast(list[TaskIn], tasks(start, size, rng, 3 * swarm.heartbeat)),
                            idempotency_key=f"{swarm.prefix}-batch-{start}")
            start += size
            count[:] = [start]
    done.set()


def write_knowledge(swarm: Swarm, stop: threading.Event, rng: random.Random) -> None:
    """Compare-and-set increments on a few topics; every acknowledged version must stay."""
    with swarm.client(1) as c:
        for n in range(1_000_000):
            if stop.wait(0.05):
                return
            topic = f"chaos/topic-{rng.randint(0, 4)}"
            try:
                current = c.get_knowledge(topic)["version"]
            except SwarmError:
                current = 0
            with contextlib.suppress(SwarmError):  # stale, or the server was down
                c.put_knowledge(topic, {"n": n}, expected_version=current)


def held_by(swarm: Swarm) -> Callable[[str, float], dict[str, int]]:
    """The leases a session holds with more than `margin` seconds left (a lease about to
    run out anyway, say of a worker just back from a long pause, proves nothing)."""
    def held(session: str, margin: float) -> dict[str, int]:
        out: dict[str, int] = {}
        with swarm.client() as c:
            try:
                for tid in c.session(session)["current_tasks"]:
                    task = c.get_task(tid)["task"]
                    expires = ts(task["lease_expires_at"])
                    if (task["status"] == "in_progress" and task["assigned_to"] == session
                            and expires is not None and expires - time.time() > margin):
                        out[tid] = task["fencing_token"]
            except SwarmError:
                return {}
        return out
    return held


def open_tasks(status: Mapping[str, Any]) -> int:
    """Tasks not finished yet, by `GET /swarm/status`."""
    return sum(int(status[f"tasks_{s}"]) for s in ("pending", "ready", "assigned",
                                                    "in_progress"))


def settle(swarm: Swarm, deadline: float) -> None:
    """Wait (bounded) until no task is open; then the checker sees final states."""
    def quiet() -> bool:
        try:
            with swarm.client() as c:
                s = c.status()
        except SwarmError:
            return False
        return open_tasks(s) == 0
    with contextlib.suppress(TimeoutError):  # the checker reports what is still open
        wait_until(quiet, max(30.0, deadline - time.monotonic()), "every task to finish", 0.2)
