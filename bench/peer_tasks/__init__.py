"""The same no-op task for every peer queue, and the tiny CLI that submits it.

Each peer module (celery_app, rq_jobs, huey_app, dramatiq_actors) declares the task on the
broker named by `BENCH_BROKER_URL` and calls `cli()`:

    python -m peer_tasks.huey_app enqueue 5000     # queue 5000 no-ops, return at once
    python -m peer_tasks.huey_app latency 200 5    # 200 single submits, 5 ms apart: JSON out

The task body only reports to a *second*, non-persistent Redis (`BENCH_COUNTER_URL`): one
INCR per task (plus one SET for the first and the last), so counting never writes to the
broker's fsync'd AOF. In latency mode it RPUSHes start - submit (time.monotonic is
system-wide on Linux, so the submitting process and the worker share the clock).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

import redis

BROKER_ENV = "BENCH_BROKER_URL"
COUNTER_ENV = "BENCH_COUNTER_URL"
TOTAL_ENV = "BENCH_TOTAL"

DONE_KEY = "bench:done"  # INCR per task run
FIRST_KEY = "bench:first"  # monotonic start of the first task run
LAST_KEY = "bench:last"  # monotonic end of task number BENCH_TOTAL
LATENCY_KEY = "bench:latency"  # list of start - submit, seconds

_client: redis.Redis | None = None


def broker_url() -> str:
    return os.environ[BROKER_ENV]


def counter() -> redis.Redis:
    """This process's connection to the counting Redis (redis-py reconnects after fork)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ[COUNTER_ENV])
    return _client


def record(submitted: float | None = None) -> None:
    """The no-op task body: count the run, or report its submit -> start latency."""
    started = time.monotonic()
    c = counter()
    if submitted is not None:
        c.rpush(LATENCY_KEY, started - submitted)
        return
    n = c.incr(DONE_KEY)
    if n == 1:
        c.set(FIRST_KEY, started)
    if n == int(os.environ.get(TOTAL_ENV, "0")):
        c.set(LAST_KEY, time.monotonic())


def latencies(submit: Callable[[float], None], samples: int, gap_s: float) -> list[float]:
    """Submit one task at a time to an idle worker and wait for it to start.

    The first submit only waits for the worker to be up (30 s at most) and is not counted.
    """
    c = counter()
    c.delete(LATENCY_KEY)
    out: list[float] = []
    for i in range(samples + 1):
        time.sleep(gap_s)
        submit(time.monotonic())
        got = c.blpop([LATENCY_KEY], timeout=30 if i == 0 else 10)
        if got is None:
            raise SystemExit(f"no task started within the timeout (sample {i})")
        if i:
            out.append(float(got[1]))
    return out


def cli(submit: Callable[[float | None], None], enqueue_many: Callable[[int], None]) -> None:
    """`enqueue N` or `latency N GAP_MS` (prints the latencies as a JSON list)."""
    cmd, n = sys.argv[1], int(sys.argv[2])
    if cmd == "enqueue":
        enqueue_many(n)
    elif cmd == "latency":
        gap_ms = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
        print(json.dumps(latencies(submit, n, gap_ms / 1000)))
    else:
        raise SystemExit(f"unknown command {cmd!r}: enqueue N | latency N [GAP_MS]")
