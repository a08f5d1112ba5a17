"""The task command of bench/swarm.py: sleep like a worker of hidden speed, record the run.

Run by the shell executor of a real `swarm worker` (and by the loose agents of the "before"
policy) as `python -S -E bench/swarm_task.py`. Standard library only, so it starts in a few
milliseconds.

- From the task (the shell executor's variables): `SWARM_TASK_ID`, `SWARM_TASK_TYPE`,
  `SWARM_TASK_ATTEMPT`, `SWARM_SESSION_ID`, and the input's `base` (seconds) and `key` (the
  task's id in its DAG, the same in every round) as `SWARM_INPUT_BASE` / `SWARM_INPUT_KEY`.
- From the worker's own environment, which the server never sees: `BENCH_FACTORS` (JSON,
  task type -> this worker's slowness factor), `BENCH_FAIL` (probability that an attempt
  fails after it has slept), `BENCH_SIGMA` and `BENCH_SEED` (the noise), `BENCH_LOG` (the
  shared side-effect log).

It sleeps `base x factor x noise`, where the noise is lognormal(0, sigma) drawn from a hash of
(seed, key): the same for every worker and policy, so the harness knows each task's exact
duration on each worker and its lower bounds stay valid. Each run appends one JSON line to
the log (O_APPEND, one write), which is how duplicates are counted: from what ran, not from
what a server says.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time


def uniform(*parts: object) -> float:
    """A number in (0, 1) that depends only on `parts`."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return (int.from_bytes(digest[:8], "big") + 0.5) / 2**64


def noise(seed: int, key: str, sigma: float) -> float:
    """lognormal(0, sigma) for this task key, by Box-Muller on two hashed uniforms."""
    z = math.sqrt(-2 * math.log(uniform(seed, key, "a"))) * math.cos(
        2 * math.pi * uniform(seed, key, "b"))
    return math.exp(sigma * z)


def fails(seed: int, key: str, session: str, attempt: str, p: float) -> bool:
    return p > 0 and uniform(seed, key, session, attempt, "fail") < p


def record(path: str, line: dict[str, object]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def main() -> int:
    env = os.environ
    start = time.time()
    task, kind, key = env["SWARM_TASK_ID"], env["SWARM_TASK_TYPE"], env["SWARM_INPUT_KEY"]
    session, attempt = env["SWARM_SESSION_ID"], env.get("SWARM_TASK_ATTEMPT", "1")
    seed = int(env["BENCH_SEED"])
    factor = json.loads(env["BENCH_FACTORS"])[kind]
    seconds = float(env["SWARM_INPUT_BASE"]) * factor * noise(seed, key, float(env["BENCH_SIGMA"]))
    time.sleep(seconds)
    ok = not fails(seed, key, session, attempt, float(env.get("BENCH_FAIL", "0")))
    record(env["BENCH_LOG"], {"task": task, "session": session, "start": start,
                              "end": time.time(), "ok": ok})
    if not ok:
        print(f"injected failure of {task} on {session}", file=sys.stderr)
        return 1
    print(json.dumps({"slept": round(seconds, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
