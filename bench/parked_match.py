"""What one ready task costs the learned scheduler when many sessions are parked: S sessions
(session i with its own capability `cap-i`) join and park in the Brain; then, W times, a
task for one random parked session is added and the one-solve match over the parked
sessions runs (what the server does on each ready event). No store, no HTTP: the Brain
alone, each match timed. `--src` runs a source tree's Brain instead (a before/after).

    python bench/parked_match.py --sessions 10000 --wakes 200
    python bench/parked_match.py --sessions 10000 --wakes 5 --src /path/to/old/src
"""

from __future__ import annotations

import argparse
import inspect
import random
import statistics
import sys
import time
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--wakes", type=int, default=200)
    ap.add_argument("--src", help="a source tree's src/ folder to import the Brain from")
    args = ap.parse_args()
    if args.src:
        sys.path.insert(0, args.src)
    from unified_swarm.core.brain import Brain
    from unified_swarm.models import Event

    b: Any = Brain()
    # the Brain before the capability index took the parked sessions as a list
    indexed = "unwoken" in inspect.signature(Brain.match).parameters
    seq = 0

    def apply(type_: str, now: float, **data: Any) -> None:
        nonlocal seq
        seq += 1
        b.apply([Event(seq, type_, now, data)])

    now = 1000.0
    parked = [f"s{i}" for i in range(args.sessions)]
    t0 = time.perf_counter()
    for i, sid in enumerate(parked):
        apply("session.joined", now, session_id=sid, capabilities=[f"cap-{i}"],
              max_concurrent_tasks=1)
        b.waiting.add(sid)
    joined = time.perf_counter() - t0
    rng = random.Random(7)
    took: list[float] = []
    matched = 0
    for k in range(args.wakes):
        i, now = rng.randrange(args.sessions), now + 0.05
        apply("task.added", now, task_id=f"w{k}", required_capability=f"cap-{i}",
              status="ready", priority=5)
        t = time.perf_counter()
        got = b.match(None, now, lambda _: True) if indexed else b.match(parked, now)
        took.append(time.perf_counter() - t)
        matched += got == {f"s{i}": f"w{k}"}
        for sid, tid in got.items():  # it runs and finishes: parked again
            apply("task.claimed", now, task_id=tid, session_id=sid)
            apply("task.completed", now, task_id=tid, session_id=sid)
    took.sort()
    print(f"sessions {args.sessions}, parked {len(parked)}, brain "
          f"{'indexed' if indexed else 'list'} ({args.src or 'installed'}): join+park "
          f"{joined:.2f} s; match x{args.wakes}: p50 {statistics.median(took) * 1e3:.2f} ms, "
          f"max {took[-1] * 1e3:.2f} ms; the one able session chosen {matched}/{args.wakes}")


if __name__ == "__main__":
    main()
