"""The campaign: a real swarm (servers, workers, Redis) under a seeded nemesis, then the
checker over every journal, the effect log and the final state, as the server answers it
and as the store holds it.

    run(Profile.named("ci"), store="redis", workdir=Path("/tmp/chaos"), seed=7)

Faults are tied to progress, not to the clock: `faults_per_100` for every hundred tasks
completed (at most one each `min_gap` seconds), so a slow machine gets the same campaign,
slower. The operator's operations (operator.py: emergencies with and without interrupt,
preemptions honoured or revoked past the grace, releases) follow progress the same way,
`ops_per_100` for every hundred tasks completed, from a thread of their own. The workload
goes on past `tasks` until the nemesis has injected `min_faults` and the operator has made
one operation of each kind.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SwarmError
from . import checker
from .dump import dump_http, dump_store, same_state
from .effects import read_effects
from .history import read_histories
from .nemesis import WORKER_FAULTS, Nemesis
from .operator import OPERATIONS, Operator
from .swarm import (
    GRACE_BEATS,
    MAX_PREEMPTIONS,
    Swarm,
    held_by,
    open_tasks,
    settle,
    submit,
    write_knowledge,
)


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
    #: faults per hundred completed tasks (a slow machine gets them as slowly as progress)
    faults_per_100: float = 1.5
    #: seconds between two faults at least, so each takes hold before the next
    min_gap: float = 0.15
    #: every n-th fault hits the infrastructure (orchestrator, Redis, leader replica)
    infra_every: int = 25
    #: operator operations (operator.OPERATIONS, one of each per round) per hundred
    #: completed tasks
    ops_per_100: float = 0.3
    #: a bound on the whole run, far past what a loaded machine needs (the CI profile runs
    #: in 2-5 minutes, under load too)
    time_limit: float = 1800.0
    #: no task completed for this long while tasks were open: the run stops there and says
    #: what the swarm looked like (a stall is a failure, not a slow machine: a loaded one
    #: still completes a task every few seconds)
    stall_after: float = 300.0

    @classmethod
    def named(cls, name: str) -> Profile:
        return {
            "ci": cls("ci", tasks=10_000, min_faults=100),
            "soak": cls("soak", tasks=100_000, min_faults=1000, time_limit=6 * 3600.0),
            "selftest": cls("selftest", tasks=600, min_faults=24, workers=4, batch=100,
                            in_flight=300, faults_per_100=6.0, infra_every=8,
                            ops_per_100=1.5, time_limit=1800.0),
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
    #: the fault kinds this run could inject (a Redis it does not own is never killed)
    kinds: tuple[str, ...] = WORKER_FAULTS
    notes: list[str] = field(default_factory=list)
    #: the operator's operations, by kind and by what came of them
    operations: dict[str, int] = field(default_factory=dict)
    #: why the run stopped early, with what the swarm looked like then ('' : it did not)
    stalled: str = ""

    @property
    def ok(self) -> bool:
        """Every invariant holds, none excusing more than it checked."""
        return all(r.ok for r in self.results)

    def shortfalls(self) -> list[str]:
        """Why the run proves less than its profile promises (empty: it proves it all)."""
        short = [f"the run stalled: {self.stalled}"] if self.stalled else []
        if self.tasks < self.profile.tasks:
            short.append(f"only {self.tasks} of {self.profile.tasks} tasks ran")
        if sum(self.faults.values()) < self.profile.min_faults:
            short.append(f"only {sum(self.faults.values())} of {self.profile.min_faults} "
                         "faults were injected")
        short += [f"no {kind} fault was injected" for kind in self.kinds
                  if not self.faults.get(kind)]
        short += [f"no {kind} operation was made" for kind in OPERATIONS
                  if not self.operations.get(kind)]
        once = next((r for r in self.results if r.name.startswith("every task completed")),
                    None)
        if once is None or once.checked < self.profile.tasks:
            short.append("the exactly-once line did not check every task")
        return short

    @property
    def passed(self) -> bool:
        return self.ok and not self.shortfalls()

    def render(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        head = (f"chaos campaign: store={self.store} profile={self.profile.name} "
                f"seed={self.seed} tasks={self.tasks} faults={sum(self.faults.values())} "
                f"({faults}) in {self.seconds:.0f}s")
        ops = ", ".join(f"{k} {v}" for k, v in sorted(self.operations.items()))
        lines = [head, f"operations: {ops or 'none'}", checker.table(self.results),
                 *self.notes]
        lines += [f"SHORT: {s}" for s in self.shortfalls()]
        return "\n".join(lines)


def run(profile: Profile, store: str, workdir: Path, seed: int | None = None,
        external_redis: str | None = None) -> Report:
    """Run one campaign and check it. `external_redis`: a Redis the campaign must not kill
    (swarm selftest); its keys get a prefix of their own."""
    seed = random.randrange(1 << 31) if seed is None else seed
    rng = random.Random(seed)
    swarm = Swarm(store, workdir, profile.workers, profile.per_worker, profile.heartbeat,
                  external_redis)
    t0 = time.monotonic()
    deadline = t0 + profile.time_limit
    try:
        swarm.start()
        lease = 3 * profile.heartbeat
        nemesis = Nemesis(rng.randrange(1 << 31), lease, profile.heartbeat, swarm.workers,
                          swarm.servers, swarm.redis, swarm.replace,
                          held_by(swarm), swarm.infra_faults(),
                          profile.infra_every)
        operator = Operator(swarm, rng.randrange(1 << 31), GRACE_BEATS * profile.heartbeat)
        watch = Watchdog(profile.stall_after)
        submitted = _drive(swarm, profile, nemesis, operator, rng, seed, deadline, watch)
        stalled = _stall_report(swarm, watch) if watch.stalled else ""
        nemesis.heal()
        _keep_faults(workdir, nemesis, lease, profile.heartbeat, swarm.attached)
        ran = time.monotonic()
        settle(swarm, deadline if not stalled else time.monotonic() + 30)
        settled = time.monotonic()
        view = dump_http(swarm.servers[0].url, swarm.token)
        served = time.monotonic()
        codes = swarm.stop()
        stored = dump_store(swarm.store_url, swarm.prefix, workdir / "data")
        read = time.monotonic()
    finally:
        swarm.kill_all()
    view.event_seqs, view.outages = stored.event_seqs, nemesis.outages
    view.faults, view.lease, view.heartbeat = nemesis.windows(), lease, profile.heartbeat
    view.attached, view.max_preemptions = swarm.attached, MAX_PREEMPTIONS
    view.interrupt = stored.interrupt
    results = checker.check(read_histories(swarm.journal_dir),
                            read_effects(swarm.effects_dir), view)
    results.append(same_state(view, stored))
    report = Report(swarm.kind, seed, profile, results, dict(nemesis.counts),
                    time.monotonic() - t0, len(view.tasks),
                    (*WORKER_FAULTS, *swarm.infra_faults()), operations=dict(operator.counts),
                    stalled=stalled)
    report.notes += _notes(workdir, results, codes, submitted)
    report.notes.append(f"phases: ran {ran - t0:.0f} s, settled {settled - ran:.0f} s, read "
                        f"over HTTP {served - settled:.0f} s, stopped and read the store "
                        f"{read - served:.0f} s, checked {time.monotonic() - read:.0f} s")
    return report


class Watchdog:
    """Tells a stall from a slow run: the count of completed tasks has not moved for
    `after` seconds while tasks were still open."""

    def __init__(self, after: float) -> None:
        self.after = after
        self.completed = -1
        self.since = time.monotonic()
        self.stalled = False

    def saw(self, status: Mapping[str, Any]) -> bool:
        """Whether the run stalled, given the status just read."""
        now = time.monotonic()
        if status["tasks_completed"] != self.completed or not open_tasks(status):
            self.completed, self.since = status["tasks_completed"], now
        self.stalled = now - self.since >= self.after
        return self.stalled


def _drive(swarm: Swarm, profile: Profile, nemesis: Nemesis, operator: Operator,
           rng: random.Random, seed: int, deadline: float, watch: Watchdog) -> int:
    """Submit the workload, inject faults and make the operator's operations as it
    completes; returns tasks submitted."""
    submitted, stop_writer = threading.Event(), threading.Event()
    count: list[int] = []

    def enough() -> bool:  # the workload goes on until the fault floor is reached, and
        # one round of operations (each kind once) was made
        return (len(nemesis.faults) >= profile.min_faults
                and operator.done >= len(OPERATIONS))

    def ops_due() -> float:
        with swarm.client() as c:
            return c.status()["tasks_completed"] * profile.ops_per_100 / 100

    threads = [threading.Thread(target=submit, args=(swarm, profile.tasks, profile.batch,
                                                     profile.in_flight, rng, enough,
                                                     submitted, deadline, count),
                                daemon=True),
               threading.Thread(target=write_knowledge,
                                args=(swarm, stop_writer, random.Random(seed + 1)),
                                daemon=True),
               threading.Thread(target=operator.run, args=(ops_due, stop_writer), daemon=True)]
    for t in threads:
        t.start()
    last = 0.0
    with swarm.client() as c:
        while time.monotonic() < deadline and not (submitted.is_set() and enough()):
            status = c.status()
            if watch.saw(status):
                break
            due = status["tasks_completed"] * profile.faults_per_100 / 100
            if (len(nemesis.faults) < due and time.monotonic() - last >= profile.min_gap
                    and nemesis.step()):
                last = time.monotonic()
            time.sleep(0.05)
    stop_writer.set()
    for t in threads:
        t.join(30)
    return sum(count)


def _stall_report(swarm: Swarm, watch: Watchdog) -> str:
    """What a stalled swarm looked like: each replica's counts, the sessions, a few open
    tasks and the last warnings of each replica's log (CI keeps no work directory)."""
    lines = [f"no task completed for {watch.after:.0f} s after {watch.completed}"]
    for n, server in enumerate(swarm.servers):
        try:
            with swarm.client(n) as c:
                s = c.status()
                sessions = c.sessions()
                ready = c.list_tasks(status="ready", limit=5)["tasks"]
                held = c.list_tasks(status="in_progress", limit=5)["tasks"]
        except SwarmError as exc:
            lines.append(f"{server.name}: unreadable ({exc.message})")
            continue
        counts = " ".join(f"{k}={v}" for k, v in sorted(s.items())
                          if k.startswith(("tasks_", "sessions")))
        by_status = Counter(str(x["status"]) for x in sessions)
        holding = sum(len(x["current_tasks"]) for x in sessions)
        lines.append(f"{server.name}: {counts}; sessions {dict(by_status)}, holding "
                     f"{holding}; ready {[t['id'] for t in ready]}; in progress "
                     f"{[(t['id'], t['assigned_to']) for t in held]}")
    logs = swarm.workdir / "logs"
    replicas = sorted(logs.glob("replica-*.log"))
    workers = [logs / f"{p.name}.log" for p in swarm.workers]
    for files, last in ((replicas, 8), (workers, 2)):
        for log in files:
            text = log.read_text(errors="replace") if log.exists() else ""
            warned = [ln for ln in text.splitlines()
                      if "WARNING" in ln or "ERROR" in ln or "Traceback" in ln]
            lines += [f"{log.stem}: {ln[:300]}" for ln in warned[-last:]]
    return "\n  ".join(lines)


def _keep_faults(workdir: Path, nemesis: Nemesis, lease: float, heartbeat: float,
                 attached: dict[str, str]) -> None:
    """What the nemesis did, beside the journals and the store, as soon as it is done: the
    run can be checked again from its directory alone."""
    record = {"faults": [dataclasses.asdict(f) for f in nemesis.windows()],
              "outages": nemesis.outages, "lease": lease, "heartbeat": heartbeat,
              "attached": attached, "max_preemptions": MAX_PREEMPTIONS}
    (workdir / "faults.json").write_text(json.dumps(record))


def _notes(workdir: Path, results: list[checker.Result], codes: Counter[int],
           submitted: int) -> list[str]:
    excuses = [f"{r.name}: {e}" for r in results for e in r.excuses]
    (workdir / "excuses.txt").write_text("\n".join(excuses) + "\n")
    exits = ", ".join(f"{n} exited {code}" for code, n in sorted(codes.items()))
    lost = sorted(line.split("] ", 1)[-1].strip() for log in (workdir / "logs").glob("w*.log")
                  for line in log.read_text(errors="replace").splitlines()
                  if "could not be recorded" in line)
    return [f"workers at the end: {exits or 'none'} (3: a result could not be recorded)",
            *[f"  worker error: {line}" for line in lost[:5]],
            f"{submitted} tasks submitted; every excuse, with the fault that explains it: "
            f"{workdir / 'excuses.txt'}"]
