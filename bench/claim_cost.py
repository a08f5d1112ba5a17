"""What one claim costs the store with 1k, 100k and 1M tasks queued, on both stores.

In-process, through the Store API and core's choice above it (no HTTP): the queue is filled
with planned batches of 1,000, then one session claims its best task (core/scheduling.py:
read the ready candidates, claim the best by compare-and-set) and completes it, K times in
a row at each depth, each call timed alone. The queue is topped up between depths so the
depth is what it says.
Filling stops at `--max-fill-seconds` per store; the table then shows the depth reached.
The Redis store gets a private redis-server (AOF, `appendfsync always`, noeviction) on a
free loopback port. Prints one table.

    python bench/claim_cost.py --depths 1000,100000,1000000 --claims 300
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import throughput as tp  # bench/throughput.py: pct, exit_on_sigterm
from unified_swarm.config import Settings
from unified_swarm.core import planning
from unified_swarm.core.scheduling import Scheduler
from unified_swarm.models import Session, SessionStatus, TaskSpec
from unified_swarm.procs import RedisServer
from unified_swarm.store import make_store
from unified_swarm.store.base import Store

BATCH = 1000
SESSION = "claimer"
SETTINGS = Settings()


@dataclass
class Row:
    store: str
    depth: int
    fill_rate: float  # tasks added per second while filling up to this depth
    claim: list[float]  # seconds per claim (candidates read + compare-and-set)
    complete: list[float]  # seconds per complete
    note: str = ""


async def fill(store: Store, start: int, stop: int, deadline: float) -> int:
    """Add tasks start..stop-1 in batches; returns how far it got before the deadline."""
    for first in range(start, stop, BATCH):
        if time.monotonic() > deadline:
            return first
        specs = [TaskSpec(type="noop", id=f"q-{i}") for i in range(first, min(stop, first + BATCH))]
        await planning.add_tasks(store, specs, time.time, SETTINGS)
    return stop


async def claims(store: Store, count: int) -> tuple[list[float], list[float]]:
    """`count` claim + complete pairs in a row, each call timed alone."""
    claim_s: list[float] = []
    complete_s: list[float] = []
    scheduler, me = Scheduler(store), session(time.time())
    for _ in range(count):
        t0 = time.perf_counter()
        got = await scheduler.claim(me, time.time)
        t1 = time.perf_counter()
        if got is None:
            raise SystemExit("the queue ran dry")
        await store.complete(SESSION, got.task.id, got.lease.fencing_token, None, time.time())
        claim_s.append(t1 - t0)
        complete_s.append(time.perf_counter() - t1)
    return claim_s, complete_s


def session(now: float) -> Session:
    return Session(id=SESSION, name=SESSION, capabilities=["noop"], status=SessionStatus.IDLE,
                   max_concurrent_tasks=1, heartbeat_interval=3600, last_heartbeat=now,
                   registered_at=now)


async def run_store(kind: str, args: argparse.Namespace, tmp: Path) -> list[Row]:
    """Fill one fresh store depth by depth; measure the claims at each depth."""
    async with AsyncExitStack() as stack:
        url = "sqlite"
        if kind == "redis":
            redis = RedisServer(tmp / "redis", appendfsync=args.appendfsync).start()
            stack.callback(redis.stop)
            url = redis.url
        store = make_store(Settings(store=url, data_dir=tmp / "data", redis_prefix="claimcost",
                                    heartbeat_interval=3600))
        await store.open()
        stack.push_async_callback(store.close)
        await store.register_session(session(time.time()), "not-a-token", time.time())
        rows: list[Row] = []
        added = consumed = 0
        deadline = time.monotonic() + args.max_fill_seconds
        for depth in args.depths:
            want = consumed + args.warmup + depth
            t0 = time.perf_counter()
            reached = await fill(store, added, want, deadline)
            rate = (reached - added) / (time.perf_counter() - t0) if reached > added else 0.0
            added = reached
            note = "" if reached == want else f"fill stopped at {args.max_fill_seconds:.0f} s"
            await asyncio.sleep(args.settle)  # let the fill's disk writes drain first
            await claims(store, args.warmup)
            consumed += args.warmup
            queued = added - consumed
            claim_s, complete_s = await claims(store, args.claims)
            consumed += args.claims
            rows.append(Row(kind, queued, rate, claim_s, complete_s, note))
            print(f"  {kind}: {queued:,} queued ({rate:,.0f} added/s), "
                  f"claim p50 {statistics.median(claim_s) * 1e6:,.0f} us", file=sys.stderr)
            if note:
                break
        return rows


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    print(f"{'store':<15} {'depth':>9} {'filled/s':>9} {'claims':>6} {'claim p50':>10} "
          f"{'claim p99':>10} {'compl p50':>10} {'compl p99':>10} {'pairs/s':>8}  note")
    for r in rows:
        store = r.store if r.store == "sqlite" else f"redis/{args.appendfsync}"
        pairs = len(r.claim) / (sum(r.claim) + sum(r.complete))
        print(f"{store:<15} {r.depth:>9,} {r.fill_rate:>9,.0f} {len(r.claim):>6} "
              f"{us(statistics.median(r.claim))} {us(tp.pct(r.claim, 99))} "
              f"{us(statistics.median(r.complete))} {us(tp.pct(r.complete, 99))} "
              f"{pairs:>8,.0f}  {r.note}")
    print("\nclaim/compl: microseconds per claim (Scheduler.claim: Store.ready_candidates, then "
          "the\ncompare-and-set Store.claim) / Store.complete, one at a time (each write is one "
          "durable\nstep: SQLite COMMIT with synchronous=FULL, or one Lua script with AOF "
          f"appendfsync={args.appendfsync});\npairs/s = claim+complete pairs per second, "
          "sequential. depth = ready tasks queued when the claims start.")


def us(seconds: float) -> str:
    return f"{seconds * 1e6:>8,.0f}us"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stores", default="sqlite,redis")
    ap.add_argument("--depths", default="1000,100000,1000000",
                    type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--claims", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20, help="untimed claims before each depth")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds to wait after each fill before claiming")
    ap.add_argument("--max-fill-seconds", type=float, default=600, help="per store")
    ap.add_argument("--appendfsync", choices=["always", "everysec", "no"], default="always")
    args = ap.parse_args()
    tp.exit_on_sigterm()
    rows: list[Row] = []
    for kind in args.stores.split(","):
        with tempfile.TemporaryDirectory(prefix=f"claim-cost-{kind}-") as tmp:
            rows += asyncio.run(run_store(kind, args, Path(tmp)))
    print_table(rows, args)


if __name__ == "__main__":
    main()
