"""The processes of bench/swarm.py and what one round of one policy measured.

`Swarm` is a real `swarm server` (its own temporary data dir, SQLite unless told otherwise,
a free loopback port) and one real `swarm worker` per hidden worker, whose shell executor
runs bench/swarm_task.py with that worker's slowness in its environment; or, for the `loose`
policy, the same server with no workers, and bench/swarm_loose.py sessions instead.
Everything it starts runs in its own process group and is stopped by `Swarm.stop`.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from swarm_workloads import Profile
from unified_swarm import procs
from unified_swarm.core.bounds import Node

BENCH = Path(__file__).resolve().parent
TASK_COMMAND = shlex.join([sys.executable, "-S", "-E", str(BENCH / "swarm_task.py")])
TOKEN = "bench-operator-token"
OP = {"authorization": f"Bearer {TOKEN}"}
TERMINAL = ("tasks_completed", "tasks_failed", "tasks_blocked", "tasks_cancelled")


@dataclass(frozen=True)
class Knobs:
    """What every run of one benchmark invocation shares."""

    seed: int
    sigma: float
    store: str = "sqlite"
    loose_poll: float = 0.05
    max_seconds: float = 300.0
    estimates: bool = True


@dataclass
class Outcome:
    """One round of one policy on one DAG. Times in seconds; `makespan` is None when some
    task never completed within the round's time bound."""

    policy: str
    round: int
    tasks: int
    done: int
    makespan: float | None
    busy: float
    executions: int
    duplicates: int
    wasted: int
    p99: float | None
    p99_source: str
    extra: dict[str, Any] = field(default_factory=dict)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any SWARM_* variable of the caller's shell (a
    stray SWARM_SCHEDULER or SWARM_HOST would change what is measured), plus `extra`."""
    return {**procs.swarm_env(), **extra}


class Swarm:
    """A server and its workers; see the module docstring."""

    def __init__(self, workdir: Path, profile: Profile, knobs: Knobs, scheduler: str | None,
                 prior: Path | None = None) -> None:
        self.dir, self.profile, self.knobs = workdir, profile, knobs
        self.scheduler_env = scheduler
        self.prior = prior
        self.log = workdir / "side-effects.jsonl"
        self.procs: list[procs.Proc] = []
        self.agents: list[subprocess.Popen[bytes]] = []
        self.url = ""

    def start_server(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        store = "sqlite"
        if self.knobs.store == "redis":
            redis = procs.RedisServer(self.dir / "redis").start()
            self.procs.append(redis)
            store = redis.url
        env = {"SWARM_RATE_LIMIT": "0", "SWARM_REDIS_PREFIX": f"swarmbench{os.getpid()}"}
        env.update({"SWARM_SCHEDULER": self.scheduler_env} if self.scheduler_env else {})
        env.update({"SWARM_SCHEDULER_PRIOR": str(self.prior)} if self.prior else {})
        server = procs.SwarmServer("server", data_dir=self.dir / "data", token=TOKEN,
                                   log=self.dir / "server.log", store=store, env=env,
                                   args=["--log-level", "warning"])
        self.procs.append(server)
        server.start()
        self.url = server.url

    def start_workers(self) -> None:
        for w in self.profile.workers:
            worker = procs.swarm_worker(
                w, self.url, TOKEN, ["--command", TASK_COMMAND, "--heartbeat-interval", "5",
                                     "--log-level", "warning"],
                self.dir / f"{w}.log", env=self.task_env(w))
            self.procs.append(worker.start())
        want = set(self.profile.workers)
        self._wait(lambda: want <= self._online(), "the workers did not register", 60)

    def task_env(self, worker: str) -> dict[str, str]:
        """What a worker's environment tells the task script (never the server)."""
        return {"BENCH_FACTORS": json.dumps(self.profile.factors[worker]),
                "BENCH_FAIL": str(self.profile.fail[worker]),
                "BENCH_SIGMA": str(self.knobs.sigma), "BENCH_SEED": str(self.knobs.seed),
                "BENCH_LOG": str(self.log)}

    def _wait(self, ready: Any, what: str, seconds: float) -> None:
        stop_at = time.monotonic() + seconds
        while time.monotonic() < stop_at:
            try:
                if ready():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{what} within {seconds:g} s (logs in {self.dir})")

    def _online(self) -> set[str]:
        r = httpx.get(f"{self.url}/sessions", headers=OP, timeout=5).raise_for_status()
        return {s["id"] for s in r.json()["sessions"] if s["status"] != "offline"}

    def stop(self) -> None:
        """Loose sessions and workers first (SIGTERM drains a worker), then the server,
        then Redis."""
        for agent in self.agents:
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait(10)
        self.agents.clear()
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    def scheduler(self) -> dict[str, Any] | None:
        """GET /swarm/scheduler, or None when this server has no such endpoint."""
        r = httpx.get(f"{self.url}/swarm/scheduler", headers=OP, timeout=10)
        if r.status_code in (404, 405):
            return None
        body: dict[str, Any] = r.raise_for_status().json()
        return body

    def submit(self, nodes: Sequence[Node], rnd: int) -> float:
        """Add the round's DAG in one batch; returns the wall-clock time just before."""
        batch = [self.task_spec(n, rnd) for n in nodes]
        t0 = time.time()
        with httpx.Client(base_url=self.url, headers=OP, timeout=60) as http:
            for i in range(0, len(batch), 1000):
                http.post("/work", json={"tasks": batch[i:i + 1000]}).raise_for_status()
        return t0

    def task_spec(self, n: Node, rnd: int) -> dict[str, Any]:
        spec: dict[str, Any] = {"id": f"r{rnd}-{n.id}", "type": n.type,
                                "input": {"base": n.work, "key": n.id},
                                "dependencies": [f"r{rnd}-{d}" for d in n.deps]}
        if self.knobs.estimates:  # the submitter's size estimate: base work, no speed in it
            spec["estimated_hours"] = n.work / 3600
        return spec

    def wait_done(self, deadline: float) -> bool:
        """Until every task on the server is in a final state, or the deadline passes."""
        while time.monotonic() < deadline:
            s = httpx.get(f"{self.url}/swarm/status", headers=OP, timeout=10).json()
            if sum(s.get(k, 0) for k in TERMINAL) >= s["tasks_total"]:
                return True
            time.sleep(0.1)
        return False

    def histories(self, nodes: Sequence[Node], rnd: int) -> dict[str, dict[str, Any]]:
        """GET /work/{id} for each task of the round: {"task", "history"}."""
        with httpx.Client(base_url=self.url, headers=OP, timeout=30) as http:
            return {n.id: http.get(f"/work/r{rnd}-{n.id}").raise_for_status().json()
                    for n in nodes}

    def run_loose(self, nodes: Sequence[Node], rnd: int) -> tuple[float, list[dict[str, Any]]]:
        """Start one loose session per worker, submit, wait for them all; their reports."""
        agents = []
        for w in self.profile.workers:
            env = clean_env(**self.task_env(w), SWARM_TOKEN=TOKEN)
            argv = [sys.executable, str(BENCH / "swarm_loose.py"), "--url", self.url,
                    "--round", str(rnd), "--session", w, "--poll", str(self.knobs.loose_poll),
                    "--deadline-s", str(self.knobs.max_seconds)]
            agents.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                           stdin=subprocess.DEVNULL, start_new_session=True))
        self.agents.extend(agents)
        t0 = self.submit(nodes, rnd)
        reports = []
        for a in agents:
            out, _ = a.communicate(timeout=self.knobs.max_seconds + 60)
            reports.append(json.loads(out.decode().strip().splitlines()[-1]))
        return t0, reports


def side_effects(log: Path, rnd: int) -> dict[str, list[dict[str, Any]]]:
    """The task script's log lines of this round, by DAG task id, in order of start."""
    runs: dict[str, list[dict[str, Any]]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            head, _, key = rec["task"].partition("-")
            if head == f"r{rnd}":
                runs.setdefault(key, []).append(rec)
    for v in runs.values():
        v.sort(key=lambda r: r["start"])
    return runs


def outcome(policy: str, rnd: int, nodes: Sequence[Node], t0: float,
            runs: dict[str, list[dict[str, Any]]], latency: tuple[float | None, str]
            ) -> Outcome:
    """What the side effects say: makespan (submit -> the last task's first successful
    run ends), busy seconds of every run, duplicates (tasks that ran to success more than
    once) and wasted runs (every run but each task's first success)."""
    firsts = [min(r["end"] for r in runs[n.id] if r["ok"]) for n in nodes
              if any(r["ok"] for r in runs.get(n.id, []))]
    every = [r for v in runs.values() for r in v]
    oks = {k: sum(r["ok"] for r in v) for k, v in runs.items()}
    done = len(firsts)
    return Outcome(
        policy=policy, round=rnd, tasks=len(nodes), done=done,
        makespan=(max(firsts) - t0) if done == len(nodes) else None,
        busy=sum(r["end"] - r["start"] for r in every), executions=len(every),
        duplicates=sum(1 for c in oks.values() if c > 1), wasted=len(every) - done,
        p99=latency[0], p99_source=latency[1])


def ts(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def claim_gaps(nodes: Sequence[Node], details: dict[str, dict[str, Any]]) -> list[float]:
    """Workers' side decision latency from the server's attempt history: for each worker,
    the time from ending one attempt to starting its next, counted only when some task was
    ready and unclaimed from that moment until that next start (else the worker was waiting
    for work, not for a decision: the task that was ready went to another worker)."""
    ready = _ready_windows(nodes, details)
    per_session: dict[str, list[tuple[float, float]]] = {}
    for d in details.values():
        for a in d["history"]:
            start, end = ts(a["started_at"]), ts(a["ended_at"])
            if start is not None and end is not None:
                per_session.setdefault(a["session_id"], []).append((start, end))
    gaps = []
    for spans in per_session.values():
        spans.sort()
        for (_, end), (nxt, _) in itertools.pairwise(spans):
            if any(lo <= end and hi >= nxt for lo, hi in ready):
                gaps.append(max(0.0, nxt - end))
    return gaps


def overheads(details: dict[str, dict[str, Any]], runs: dict[str, list[dict[str, Any]]]
              ) -> list[float]:
    """Seconds each completed attempt lasted on the server beyond the task's own run
    (claim reply, starting the task process, recording the outcome)."""
    out = []
    for key, d in details.items():
        mine = [r for r in runs.get(key, []) if r["ok"]]
        for a in d["history"]:
            if a["outcome"] != "completed" or a.get("duration") is None:
                continue
            run = next((r for r in mine if r["session"] == a["session_id"]), None)
            if run is not None:
                out.append(a["duration"] - (run["end"] - run["start"]))
    return out


def _ready_windows(nodes: Sequence[Node], details: dict[str, dict[str, Any]]
                   ) -> list[tuple[float, float]]:
    """(ready since, claimed at) for every attempt of every task."""
    done = {k: ts(d["task"]["completed_at"]) for k, d in details.items()}
    out = []
    for n in nodes:
        d = details[n.id]
        since = max([ts(d["task"]["created_at"]) or 0.0]
                    + [done[x] or 0.0 for x in n.deps])
        for a in sorted(d["history"], key=lambda a: a["attempt"]):
            start = ts(a["started_at"])
            if start is not None:
                out.append((since, start))
                since = ts(a["ended_at"]) or start
    return out


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def reported_p99(info: dict[str, Any] | None) -> float | None:
    """The decision latency p99, in seconds, from a GET /swarm/scheduler answer: the first
    object under a key naming "latency" that holds `p99_ms`, `p99_s` or `p99` (seconds)."""
    if not isinstance(info, dict):
        return None
    for key, value in info.items():
        if "latency" in key and isinstance(value, dict):
            for name, scale in (("p99_ms", 1e-3), ("p99_s", 1.0), ("p99", 1.0)):
                if isinstance(value.get(name), int | float):
                    return float(value[name]) * (1e-3 if key.endswith("_ms") else scale)
        found = reported_p99(value) if isinstance(value, dict) else None
        if found is not None:
            return found
    return None
