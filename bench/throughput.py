"""Throughput and submit->start latency of the orchestrator over real HTTP.

Starts a real server (uvicorn, separate process) on a free loopback port, on the chosen
store; N worker processes (one keep-alive connection each, like the workers of a job queue)
claim and complete M no-op tasks (the clock starts when every worker is up);
then one idle long-polling worker measures submit->start latency over K single tasks (the
submitter and the worker on stdlib http.client too; `--latency-client httpx`: on the SDK's
httpx, whose own time per call the figure then includes).
With `--repeat R` the whole run (fresh server, fresh store) happens R times and the table
shows the median rate and latencies. Prints one table.

    python bench/throughput.py --store sqlite --workers 8 --tasks 5000
    python bench/throughput.py --store redis --appendfsync always --repeat 3
    python bench/throughput.py --store sqlite --batch 4
    python bench/throughput.py --store redis --scheduler fifo --profile /tmp/server.prof
    python bench/throughput.py --store sqlite --src /tmp/before   # another commit's tree
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import httpx

from unified_swarm.procs import Proc, RedisServer, free_port, swarm_env, wait_until

TOKEN = "bench-operator-token"
#: `--profile PATH`: run the server under cProfile and write its stats to PATH
PROFILE: dict[str, str] = {}
#: `--scheduler NAME`: the server's SWARM_SCHEDULER (its own default when not given)
SERVER_ENV: dict[str, str] = {}
#: `--latency-client`: what the latency probe's submitter and worker talk HTTP with
LATENCY_CLIENT: dict[str, str] = {"name": "stdlib"}


@dataclass
class Server:
    proc: Proc
    url: str

    def stop(self) -> None:
        self.proc.stop()


def start_server(store: str, data_dir: Path, src: Path | None = None,
                 prefix: str | None = None) -> Server:
    """The orchestrator under uvicorn in a process of its own (access log off, as a
    production server behind a proxy would run it); `src`: a source tree to run instead of
    the installed package (a before/after comparison)."""
    port = free_port()
    env = swarm_env(SWARM_TOKEN=TOKEN, SWARM_DATA_DIR=str(data_dir), SWARM_STORE=store,
                    SWARM_RATE_LIMIT="0", SWARM_PORT=str(port),
                    SWARM_REDIS_PREFIX=prefix or f"bench{port}", **SERVER_ENV)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    code = ("import uvicorn\n"
            "from unified_swarm.app import create_app\n"
            "from unified_swarm.config import Settings\n"
            "s = Settings.from_env()\n"
            "run = lambda: uvicorn.run(create_app(s), host='127.0.0.1', port=s.port,"
            " log_level='warning', access_log=False)\n")
    if PROFILE.get("path"):  # --profile: the server under cProfile, its stats kept at exit
        # uvicorn re-raises the SIGTERM it caught once it has shut down, with the handler
        # it found: so that handler writes the stats
        code += ("import cProfile, signal, sys\n"
                 "import time\n"
                 "prof = cProfile.Profile(time.thread_time)  # the event loop's own CPU\n"
                 "def done(*_):\n"
                 "    prof.disable()\n"
                 "    prof.dump_stats(" + repr(PROFILE["path"]) + ")\n"
                 "    sys.exit(0)\n"
                 "signal.signal(signal.SIGTERM, done)\n"
                 "prof.enable()\n"
                 "run()\n"
                 "done()\n")
    else:
        code += "run()\n"
    proc = Proc("server", [sys.executable, "-c", code], env, data_dir.parent / "server.log")
    server = Server(proc.start(), f"http://127.0.0.1:{port}")
    with suppress(TimeoutError):
        wait_until(lambda: not proc.alive or healthy(server.url), 20, "the server")
    if not healthy(server.url):
        proc.stop()
        raise SystemExit(f"the server on {store.split(':')[0]} did not start:\n{proc.tail()}")
    return server


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


async def register(http: httpx.AsyncClient, sid: str, slots: int = 1) -> dict[str, str]:
    r = await http.post("/session/register", json={"id": sid, "capabilities": ["noop"],
                                                   "max_concurrent_tasks": slots},
                        headers={"authorization": f"Bearer {TOKEN}"})
    r.raise_for_status()
    return {"authorization": f"Bearer {r.json()['token']}"}


async def add_tasks(http: httpx.AsyncClient, prefix: str, n: int) -> None:
    op = {"authorization": f"Bearer {TOKEN}"}
    for start in range(0, n, 1000):
        stop = min(n, start + 1000)
        batch = [{"id": f"{prefix}-{i}", "type": "noop"} for i in range(start, stop)]
        (await http.post("/work", json={"tasks": batch}, headers=op)).raise_for_status()


def _worker_proc(url: str, token: str, deadline_s: float, gate: Any, out: Queue[int],
                 batch: int = 0) -> None:
    """One worker process: a keep-alive stdlib HTTP connection. `batch` 0: phase 1's two
    calls per task (GET /work/request, then POST /work/complete); `batch` K: up to K tasks
    claimed at once (`max=K`), their outcomes sent in one complete that claims the next K
    (one request per K tasks while the queue lasts)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    h = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    def call(method: str, path: str, body: object = None) -> tuple[int, Any]:
        return _stdlib_call(conn, method, path, h, body, (200, 204))

    def done_of(c: dict[str, Any]) -> dict[str, Any]:
        return {"task_id": c["task"]["id"], "fencing_token": c["lease"]["fencing_token"]}

    done = 0
    gate.wait()  # every worker is up: start together
    stop_at = time.monotonic() + deadline_s
    held: list[dict[str, Any]] = []
    while time.monotonic() < stop_at:
        if batch == 0:
            status, got = call("GET", "/work/request")
            if status == 204:
                break
            call("POST", "/work/complete", done_of(got))
            done += 1
            continue
        if not held:
            status, got = call("GET", f"/work/request?max={batch}")
            if status == 204:
                break
            held = got["claimed"]
        _, rec = call("POST", "/work/complete",
                      {"outcomes": [done_of(c) for c in held], "max": batch})
        if any("error" in r for r in rec["results"]):
            raise SystemExit(f"an outcome was refused: {rec['results']}")
        done += len(held)
        held = rec["claimed"]
    out.put(done)


async def _prepare(url: str, workers: int, tasks: int, batch: int = 0) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        tokens = []
        for i in range(workers):
            h = await register(http, f"tp-{i}", max(1, batch))
            tokens.append(h["authorization"].removeprefix("Bearer "))
        await add_tasks(http, "tp", tasks)
        return tokens


def throughput(urls: list[str], workers: int, tasks: int, deadline_s: float,
               batch: int = 0) -> tuple[float, int]:
    """Claim+complete rate of `workers` separate processes over `tasks` queued no-ops (worker
    i talks to server i mod len(urls)), and how many ran (fewer than `tasks` when the
    deadline cut the run short)."""
    tokens = asyncio.run(_prepare(urls[0], workers, tasks, batch))
    ctx = multiprocessing.get_context("spawn")
    out: Queue[int] = ctx.Queue()
    gate = ctx.Barrier(len(tokens) + 1)
    procs = [ctx.Process(target=_worker_proc,
                         args=(urls[i % len(urls)], tok, deadline_s, gate, out, batch))
             for i, tok in enumerate(tokens)]
    try:
        for p in procs:
            p.start()
        gate.wait(60)
        t0 = time.perf_counter()
        done = sum(out.get(timeout=deadline_s + 30) for _ in procs)
        elapsed = time.perf_counter() - t0
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    return done / elapsed, done


def latency(url: str, samples: int, gap_s: float = 0.005, client: str = "stdlib") -> list[float]:
    """Submit one task at a time to an idle long-polling worker; time submit -> claimed.
    `client` "stdlib": the submitter and the worker each on one keep-alive http.client
    connection, as the throughput workers talk (the time is the server's and the wire's);
    "httpx": both on httpx's AsyncClient, as the SDK talks (its own time per call on top)."""
    if client == "httpx":
        return asyncio.run(_latency_httpx(url, samples, gap_s))
    host, port = url.removeprefix("http://").split(":")
    submitter = http.client.HTTPConnection(host, int(port), timeout=60)
    worker = http.client.HTTPConnection(host, int(port), timeout=60)
    op = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    _, reg = _stdlib_call(submitter, "POST", "/session/register", op, {
        "id": "lat", "capabilities": ["noop"], "max_concurrent_tasks": 1})
    me = {"authorization": f"Bearer {reg['token']}", "content-type": "application/json"}
    out: list[float] = []
    for i in range(samples):
        got: list[Any] = []
        poll = threading.Thread(target=_park, args=(worker, me, got))
        poll.start()
        time.sleep(gap_s)  # let the poll park on the server
        t0 = time.perf_counter()
        _stdlib_call(submitter, "POST", "/work", op, {"id": f"lat-{i}", "type": "noop"})
        poll.join(60)
        if not got:
            raise SystemExit(f"latency sample {i}: the worker's long-poll did not answer")
        claimed, at = got[0]
        out.append(at - t0)
        _stdlib_call(worker, "POST", "/work/complete", me, {
            "task_id": claimed["task"]["id"], "fencing_token": claimed["lease"]["fencing_token"]})
    submitter.close()
    worker.close()
    return out


def _park(worker: http.client.HTTPConnection, me: dict[str, str], got: list[Any]) -> None:
    """The worker's long-poll: the task it was handed, and when it arrived."""
    got.append((_stdlib_call(worker, "GET", "/work/request?wait=10", me)[1],
                time.perf_counter()))


def _stdlib_call(conn: http.client.HTTPConnection, method: str, path: str,
                 headers: dict[str, str], body: object = None,
                 ok: tuple[int, ...] = (200, 201)) -> tuple[int, Any]:
    """One call on a keep-alive stdlib connection: its status and JSON body (None when
    empty); any status but `ok` ends the run."""
    conn.request(method, path, headers=headers,
                 body=None if body is None else json.dumps(body))
    r = conn.getresponse()
    raw = r.read()
    if r.status not in ok:
        raise SystemExit(f"{method} {path} answered {r.status}: {raw[:200]!r}")
    return r.status, (json.loads(raw) if raw else None)


async def _latency_httpx(url: str, samples: int, gap_s: float) -> list[float]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        h = await register(http, "lat")
        op = {"authorization": f"Bearer {TOKEN}"}
        out: list[float] = []
        for i in range(samples):
            poll = asyncio.create_task(http.get("/work/request", params={"wait": 10}, headers=h))
            await asyncio.sleep(gap_s)  # let the poll park on the server
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


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so every `finally` stops the processes it started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


@dataclass
class Result:
    """One measured run (or the median of several): tasks/s, tasks run, latencies in s."""

    rate: float
    done: int
    p50: float
    p99: float


@contextmanager
def swarm_server(store: str, appendfsync: str = "always", src: Path | None = None,
                 servers: int = 1) -> Iterator[list[Server]]:
    """Servers on a fresh store ("sqlite" or "redis", then with its own redis-server; there,
    `servers` replicas share it, as `swarm server` processes on one Redis do)."""
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp:
        redis = None
        url = "sqlite"
        started: list[Server] = []
        try:
            if store == "redis":
                redis = RedisServer(Path(tmp) / "redis", appendfsync=appendfsync).start()
                url = redis.url
            for n in range(servers if store == "redis" else 1):
                started.append(start_server(url, Path(tmp) / f"swarm{n}", src,
                                            prefix="bench"))
            yield started
        finally:
            for server in started:
                server.stop()
            if redis is not None:
                redis.stop()


def measure(store: str, workers: int, tasks: int, samples: int, max_seconds: float,
            appendfsync: str = "always", repeat: int = 1, gap_s: float = 0.005,
            src: Path | None = None, batch: int = 0, servers: int = 1) -> Result:
    """Throughput, then idle latency, `repeat` times on fresh stores; medians of each."""
    runs: list[Result] = []
    for _ in range(repeat):
        with swarm_server(store, appendfsync, src, servers) as started:
            rate, done = throughput([s.url for s in started], workers, tasks, max_seconds,
                                    batch)
            lat = latency(started[0].url, samples, gap_s, LATENCY_CLIENT["name"])
        runs.append(Result(rate, done, statistics.median(lat), pct(lat, 99)))
    return Result(statistics.median(r.rate for r in runs), min(r.done for r in runs),
                  statistics.median(r.p50 for r in runs), statistics.median(r.p99 for r in runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--latency-samples", type=int, default=300)
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--appendfsync", choices=["always", "everysec", "no"], default="always",
                    help="the private redis-server's AOF fsync policy (--store redis)")
    ap.add_argument("--repeat", type=int, default=1, help="runs; the table shows medians")
    ap.add_argument("--batch", type=int, default=0,
                    help="0: two calls per task (request, complete); K: claim K at a time and "
                         "complete them in one call that claims the next K (1: one call per "
                         "task)")
    ap.add_argument("--profile", metavar="PATH",
                    help="run the server under cProfile; its stats go to PATH (read them with "
                         "python -m pstats PATH, or bench/profile_top.py)")
    ap.add_argument("--servers", type=int, default=1,
                    help="--store redis: this many server processes (replicas) on the one "
                         "redis-server; the workers spread over them")
    ap.add_argument("--src", type=Path, metavar="DIR",
                    help="run the server from the source tree DIR (DIR/src/unified_swarm: a "
                         "checkout or `git archive` of another commit) instead of this one")
    ap.add_argument("--latency-client", choices=["stdlib", "httpx"], default="stdlib",
                    help="the latency probe's HTTP client: stdlib http.client, as the "
                         "throughput workers (default), or httpx's AsyncClient, as the SDK")
    ap.add_argument("--scheduler", choices=["learned", "fifo"],
                    help="the server's SWARM_SCHEDULER (default: the server's own default)")
    args = ap.parse_args()
    exit_on_sigterm()
    if args.profile:
        PROFILE["path"] = str(Path(args.profile).resolve())
    if args.scheduler:
        SERVER_ENV["SWARM_SCHEDULER"] = args.scheduler
    LATENCY_CLIENT["name"] = args.latency_client
    src = None if args.src is None else (args.src / "src").resolve()
    if src is not None and not (src / "unified_swarm").is_dir():
        raise SystemExit(f"--src {args.src}: no src/unified_swarm in it")
    r = measure(args.store, args.workers, args.tasks, args.latency_samples, args.max_seconds,
                args.appendfsync, args.repeat, src=src, batch=args.batch,
                servers=args.servers)
    store = args.store if args.store == "sqlite" else f"redis/{args.appendfsync}"
    print(f"{'system':<22} {'store':<15} {'workers':>7} {'tasks':>7} {'done':>7} "
          f"{'tasks/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'unified-swarm':<22} {store:<15} {args.workers:>7} {args.tasks:>7} {r.done:>7} "
          f"{r.rate:>9.0f} {r.p50 * 1000:>8.2f} {r.p99 * 1000:>8.2f}")
    if args.repeat > 1:
        print(f"(medians of {args.repeat} runs)")


if __name__ == "__main__":
    main()
