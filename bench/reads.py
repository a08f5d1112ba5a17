"""Reads at depth: a store holding N finished tasks (1,000,000 by default), read through a
real server over HTTP: the task list (`GET /work`, paged, unfiltered and filtered by
status, capability and session), `GET /swarm/status` and one task with its history
(`GET /work/ID`). p50 and p99 of each. Prints one table.

The store is filled through the Store API before the server starts, as a swarm would fill
it, only faster: batches planned and inserted (`planning.add_tasks`), claimed a batch at
a time by a few sessions (`claim_many`) and completed one by one, many steps in flight so
the SQLite writer commits them in groups. So the rows, the attempts, the per-status
counts and the indexes are the ones a real run leaves. Redis runs its own redis-server on
a free port (`appendfsync always` by default), never the system one.

    python bench/reads.py --store sqlite --tasks 1000000
    python bench/reads.py --store redis --tasks 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

import throughput as tp
from sessions import git_head
from unified_swarm.config import Settings
from unified_swarm.core import planning
from unified_swarm.models import Claimed, Session, SessionStatus, TaskSpec
from unified_swarm.procs import RedisServer
from unified_swarm.store import make_store
from unified_swarm.store.base import Store
from unified_swarm.tokens import hash_token

#: tasks planned and inserted per batch (and claimed, then completed, per round);
#: `--batch` sets it (Redis: smaller, one script per batch must answer within the store's
#: 1 s socket timeout while fsyncing every write)
BATCH = 1000
#: task types (capabilities) and sessions the fill spreads over
TYPES = 20
SESSIONS = 50
#: batches in flight at once while filling, and store steps (completes) in flight: more
#: than the Redis store's connection pool (64) only queue, and time out
IN_FLIGHT = 8
STEPS = 64
PREFIX = "bench"


def settings_for(store_url: str, data_dir: Path) -> Settings:
    """The settings the server will run with (bench/throughput.py's environment)."""
    return Settings(data_dir=data_dir, store=store_url, redis_prefix=PREFIX, token=tp.TOKEN,
                    rate_limit=0)


async def fill(store: Store, settings: Settings, n: int, progress: bool) -> float:
    """n tasks, each added, claimed and completed by one of SESSIONS sessions; seconds."""
    started = time.monotonic()
    t0 = time.time()
    sessions = [f"w{i}" for i in range(SESSIONS)]
    for sid in sessions:
        await store.register_session(Session(
            sid, sid, [f"type-{j}" for j in range(TYPES)], SessionStatus.IDLE, BATCH, 3600.0,
            t0, t0), hash_token(sid), t0)
    gate = asyncio.Semaphore(IN_FLIGHT)
    steps = asyncio.Semaphore(STEPS)
    done = 0

    async def complete(sid: str, c: Claimed, i: int, end: float) -> None:
        async with steps:
            await store.complete(sid, c.task.id, c.lease.fencing_token, {"ok": True, "n": i},
                                 end)

    async def one_batch(b: int) -> None:
        nonlocal done
        async with gate:
            count = min(BATCH, n - b * BATCH)
            specs = [TaskSpec(type=f"type-{(b * BATCH + i) % TYPES}", id=f"t{b * BATCH + i}",
                              title=f"task {b * BATCH + i}", input={"n": b * BATCH + i},
                              priority=1 + i % 9) for i in range(count)]
            now = time.time()
            tasks = await planning.add_tasks(store, specs, lambda: now, settings)
            sid = sessions[b % SESSIONS]
            claims = await store.claim_many(sid, [(t.id, None) for t in tasks], time.time())
            end = time.time()
            await asyncio.gather(*(complete(sid, c, i, end) for i, c in enumerate(claims)))
            done += len(claims)
            if progress and b % 50 == 0:
                rate = done / (time.monotonic() - started)
                print(f"  filled {done:,} of {n:,} ({rate:,.0f}/s)", file=sys.stderr)

    await asyncio.gather(*(one_batch(b) for b in range((n + BATCH - 1) // BATCH)))
    return time.monotonic() - started


@contextmanager
def filled_server(kind: str, n: int, appendfsync: str,
                  progress: bool) -> Iterator[tuple[tp.Server, float]]:
    """A server on a store holding n finished tasks; also the fill's seconds."""
    with tempfile.TemporaryDirectory(prefix="swarm-reads-") as tmp:
        redis = None
        try:
            url = "sqlite"
            if kind == "redis":
                redis = RedisServer(Path(tmp) / "redis", appendfsync=appendfsync).start()
                url = redis.url
            data = Path(tmp) / "swarm0"
            fill_s = asyncio.run(_fill(settings_for(url, data), n, progress))
            server = tp.start_server(url, data, prefix=PREFIX)
            try:
                yield server, fill_s
            finally:
                server.stop()
        finally:
            if redis is not None:
                redis.stop()


async def _fill(settings: Settings, n: int, progress: bool) -> float:
    store = make_store(settings)
    await store.open()
    try:
        return await fill(store, settings, n, progress)
    finally:
        await store.close()


def timed(http: httpx.Client, samples: int, path: Callable[[int], str],
          check: Callable[[httpx.Response], int]) -> tuple[list[float], int]:
    """`samples` GETs of path(k); latencies (s) and the rows the last answer had."""
    out: list[float] = []
    rows = 0
    for k in range(samples):
        t0 = time.perf_counter()
        r = http.get(path(k))
        out.append(time.perf_counter() - t0)
        r.raise_for_status()
        rows = check(r)
    return out, rows


def measure(url: str, n: int, samples: int) -> list[tuple[str, list[float], int]]:
    rng = random.Random(3)
    ids = [f"t{rng.randrange(n)}" for _ in range(samples)]
    pages: dict[str, str | None] = {}
    owners = min(SESSIONS, (n + BATCH - 1) // BATCH)  # the sessions that ran a batch

    def tasks_of(r: httpx.Response) -> int:
        return len(r.json()["tasks"])

    def paged(query: str) -> Callable[[int], str]:
        """Page after page of one listing (its cursor kept), from the start again at the
        end: deep pages cost what the first does, or the table shows it."""
        def path(_: int) -> str:
            cursor = pages.get(query)
            return f"/work?limit=100&{query}" + (f"&cursor={cursor}" if cursor else "")
        return path

    def keep_cursor(query: str) -> Callable[[httpx.Response], int]:
        def check(r: httpx.Response) -> int:
            pages[query] = r.json().get("next_cursor")
            return tasks_of(r)
        return check

    cases: list[tuple[str, Callable[[int], str], Callable[[httpx.Response], int]]] = [
        ("list, first page", lambda k: "/work?limit=100", tasks_of),
        ("list, paging on", paged(""), keep_cursor("")),
        ("list status=completed", paged("status=completed"), keep_cursor("status=completed")),
        ("list status=ready (0)", lambda k: "/work?limit=100&status=ready", tasks_of),
        ("list capability=", lambda k: f"/work?limit=100&capability=type-{k % TYPES}",
         tasks_of),
        ("list session=", lambda k: f"/work?limit=100&session=w{k % owners}", tasks_of),
        ("status", lambda k: "/swarm/status", lambda r: int(r.json()["tasks_total"])),
        ("task + history", lambda k: f"/work/{ids[k]}",
         lambda r: len(r.json()["history"])),
    ]
    out = []
    with httpx.Client(base_url=url, timeout=60,
                      headers={"authorization": f"Bearer {tp.TOKEN}"}) as http:
        for name, path, check in cases:
            timed(http, 3, path, check)  # warm: the first call pays imports and caches
            lat, rows = timed(http, samples, path, check)
            out.append((name, lat, rows))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    ap.add_argument("--appendfsync", choices=["always", "everysec", "no"], default="always")
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--samples", type=int, default=200, help="timed reads per case")
    ap.add_argument("--batch", type=int, help="tasks per fill batch (1000 on SQLite, 200 on "
                                               "Redis)")
    ap.add_argument("--quiet", action="store_true", help="no fill progress on stderr")
    args = ap.parse_args()
    global BATCH
    BATCH = args.batch or (1000 if args.store == "sqlite" else 200)
    tp.exit_on_sigterm()
    commit, load0 = git_head(), os.getloadavg()[0]  # at the start: the tree may move
    with filled_server(args.store, args.tasks, args.appendfsync, not args.quiet) as (
            server, fill_s):
        rows = measure(server.url, args.tasks, args.samples)
        rss = tp_rss(server.proc.pid)
    store = args.store if args.store == "sqlite" else f"redis/{args.appendfsync}"
    print("command: " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    print(f"store {store}, {args.tasks:,} finished tasks (filled in {fill_s:.0f} s, "
          f"batches of {BATCH}, "
          f"{args.tasks / fill_s:,.0f}/s), {args.samples} samples per read; server RSS "
          f"{rss:.0f} MiB; commit {commit}, load {load0:.2f} at start, "
          f"{os.getloadavg()[0]:.2f} at end")
    print(f"{'read':<24} {'rows':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, lat, n in rows:
        print(f"{name:<24} {n:>6} {statistics.median(lat) * 1e3:>8.1f} "
              f"{tp.pct(lat, 99) * 1e3:>8.1f} {max(lat) * 1e3:>8.1f}")


def tp_rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    main()
