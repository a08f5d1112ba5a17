"""Throughput and submit->start latency of the orchestrator over real HTTP.

Starts a real server (uvicorn, separate process) on a free loopback port, on the chosen
store; N worker processes (one keep-alive connection each, like the workers of a job queue)
claim and complete M no-op tasks (the clock starts when every worker is up);
then one idle long-polling worker measures submit->start latency over K single tasks.
Prints one table.

    python bench/throughput.py --store sqlite --workers 8 --tasks 5000
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import httpx

TOKEN = "bench-operator-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_server(store: str, data_dir: Path) -> Server:
    port = free_port()
    env = {**os.environ, "SWARM_TOKEN": TOKEN, "SWARM_DATA_DIR": str(data_dir),
           "SWARM_STORE": store, "SWARM_RATE_LIMIT": "0", "SWARM_PORT": str(port),
           "SWARM_REDIS_PREFIX": f"bench{port}"}
    code = ("import uvicorn\n"
            "from unified_swarm.app import create_app\n"
            "from unified_swarm.config import Settings\n"
            "s = Settings.from_env()\n"
            "uvicorn.run(create_app(s), host='127.0.0.1', port=s.port, log_level='warning',"
            " access_log=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return Server(proc, url)
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the server did not start")


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (make system-deps)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "yes", "--appendfsync", "always", "--dir", str(workdir), "--maxmemory-policy",
         "noeviction"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


async def register(http: httpx.AsyncClient, sid: str) -> dict[str, str]:
    r = await http.post("/session/register", json={"id": sid, "capabilities": ["noop"]},
                        headers={"authorization": f"Bearer {TOKEN}"})
    r.raise_for_status()
    return {"authorization": f"Bearer {r.json()['token']}"}


async def add_tasks(http: httpx.AsyncClient, prefix: str, n: int) -> None:
    op = {"authorization": f"Bearer {TOKEN}"}
    for start in range(0, n, 1000):
        stop = min(n, start + 1000)
        batch = [{"id": f"{prefix}-{i}", "type": "noop"} for i in range(start, stop)]
        (await http.post("/work", json={"tasks": batch}, headers=op)).raise_for_status()


def _worker_proc(url: str, token: str, deadline_s: float, gate: Any, out: Queue[int]) -> None:
    """One worker process: a keep-alive stdlib HTTP connection, claim -> complete."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    h = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    done = 0
    gate.wait()  # every worker is up: start together
    stop_at = time.monotonic() + deadline_s
    while time.monotonic() < stop_at:
        conn.request("GET", "/work/request", headers=h)
        r = conn.getresponse()
        body = r.read()
        if r.status == 204:
            break
        got = json.loads(body)
        payload = json.dumps({"task_id": got["task"]["id"],
                              "fencing_token": got["lease"]["fencing_token"]})
        conn.request("POST", "/work/complete", body=payload, headers=h)
        c = conn.getresponse()
        c.read()
        if c.status != 200:
            raise SystemExit(f"complete answered {c.status}")
        done += 1
    out.put(done)


async def _prepare(url: str, workers: int, tasks: int) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        tokens = []
        for i in range(workers):
            h = await register(http, f"tp-{i}")
            tokens.append(h["authorization"].removeprefix("Bearer "))
        await add_tasks(http, "tp", tasks)
        return tokens


def throughput(url: str, workers: int, tasks: int, deadline_s: float) -> float:
    """Claim+complete rate of `workers` separate processes over `tasks` queued no-ops."""
    tokens = asyncio.run(_prepare(url, workers, tasks))
    ctx = multiprocessing.get_context("spawn")
    out: Queue[int] = ctx.Queue()
    gate = ctx.Barrier(len(tokens) + 1)
    procs = [ctx.Process(target=_worker_proc, args=(url, tok, deadline_s, gate, out))
             for tok in tokens]
    for p in procs:
        p.start()
    gate.wait()
    t0 = time.perf_counter()
    done = sum(out.get(timeout=deadline_s + 30) for _ in procs)
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join(10)
    return done / elapsed


async def latency(url: str, samples: int) -> list[float]:
    """Submit one task at a time to an idle long-polling worker; time submit -> claimed."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        h = await register(http, "lat")
        op = {"authorization": f"Bearer {TOKEN}"}
        out: list[float] = []
        for i in range(samples):
            poll = asyncio.create_task(http.get("/work/request", params={"wait": 10}, headers=h))
            await asyncio.sleep(0.005)  # let the poll park on the server
            t0 = time.perf_counter()
            (await http.post("/work", json={"id": f"lat-{i}", "type": "noop"},
                             headers=op)).raise_for_status()
            r = await poll
            out.append(time.perf_counter() - t0)
            body = r.json()
            await http.post("/work/complete", headers=h, json={
                "task_id": body["task"]["id"], "fencing_token": body["lease"]["fencing_token"]})
        return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--latency-samples", type=int, default=300)
    ap.add_argument("--max-seconds", type=float, default=120)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis = None
        store = "sqlite"
        if args.store == "redis":
            redis, store = start_redis(Path(tmp))
        server = start_server(store, Path(tmp) / "swarm")
        try:
            rate = throughput(server.url, args.workers, args.tasks, args.max_seconds)
            lat = asyncio.run(latency(server.url, args.latency_samples))
        finally:
            server.stop()
            if redis is not None:
                redis.terminate()
                redis.wait(10)
    print(f"{'system':<22} {'store':<8} {'workers':>7} {'tasks':>7} {'tasks/s':>9} "
          f"{'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'unified-swarm':<22} {args.store:<8} {args.workers:>7} {args.tasks:>7} "
          f"{rate:>9.0f} {statistics.median(lat) * 1000:>8.2f} {pct(lat, 99) * 1000:>8.2f}")


if __name__ == "__main__":
    main()
