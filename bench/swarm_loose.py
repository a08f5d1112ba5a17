"""One session of the `loose` policy of bench/swarm.py: the seed's "before".

No claims, no leases: the session polls the server's task list (GET /work) until its round's
tasks appear, then works from a shared board kept in the knowledge store, one topic per task
(`loose/<round>/<task>`, tag `loose-<round>`), written with a plain PUT: no
`expected_version`, so no compare-and-set, the last writer wins. It reads the board (one GET
/knowledge?tag=), takes at random a task it believes free (every dependency marked done, the
task itself unmarked or marked failed), marks it started, runs bench/swarm_task.py exactly as
the shell executor would, marks it done (or failed), and looks again at once. With nothing
free it sleeps the poll interval. Two sessions that read the board before either marks the
same task both run it: the duplicates the benchmark counts, from the task script's log.

Bounded: it stops when the board shows every task done, at its deadline, or after
`--max-steps` looks. At the end it prints one JSON line: its decision times (board read to
started mark written, for looks that found a free task) and counts.

    python bench/swarm_loose.py --url URL --round 1 --session w0 --poll 0.05 --deadline-s 300
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

TASK_SCRIPT = Path(__file__).resolve().parent / "swarm_task.py"


class Retrying(httpx.HTTPTransport):
    """Every call here is a read or a plain PUT (idempotent), so one the connection lost is
    sent again: a keep-alive connection the server closed as the agent reused it resets, and
    on a loaded machine that is common enough to kill an agent mid-round."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(5):
            try:
                return super().handle_request(request)
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError):
                if attempt == 4:
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")


def task_list(http: httpx.Client, prefix: str) -> dict[str, dict[str, Any]]:
    """Every task of this round on the server (all of them or none: a batch is atomic)."""
    found: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    for _ in range(1000):  # pages; bounded
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = http.get("/work", params=params).raise_for_status().json()
        found.update({t["id"]: t for t in page["tasks"] if t["id"].startswith(prefix)})
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return found


def board(http: httpx.Client, tag: str) -> dict[str, str]:
    """task id -> its mark ("started", "done" or "failed") as this read sees it."""
    entries = http.get("/knowledge", params={"tag": tag}).raise_for_status().json()["entries"]
    return {e["content"]["task"]: e["content"]["state"] for e in entries
            if isinstance(e.get("content"), dict) and "task" in e["content"]}


def mark(http: httpx.Client, rnd: int, task: str, state: str, session: str) -> None:
    http.put(f"/knowledge/loose/r{rnd}/{task}",
             json={"content": {"task": task, "state": state, "by": session},
                   "tags": [f"loose-r{rnd}"]}).raise_for_status()


def free(tasks: dict[str, dict[str, Any]], marks: dict[str, str]) -> list[str]:
    return sorted(t for t, task in tasks.items() if marks.get(t, "failed") == "failed"
                  and all(marks.get(d) == "done" for d in task["dependencies"]))


def run(task: dict[str, Any], session: str, attempt: int) -> bool:
    """The task script with the variables the shell executor would give it."""
    env = {**os.environ, "SWARM_TASK_ID": task["id"], "SWARM_TASK_TYPE": task["type"],
           "SWARM_SESSION_ID": session, "SWARM_TASK_ATTEMPT": str(attempt),
           "SWARM_INPUT_BASE": str(task["input"]["base"]),
           "SWARM_INPUT_KEY": str(task["input"]["key"])}
    env.pop("SWARM_TOKEN", None)
    done = subprocess.run([sys.executable, "-S", "-E", str(TASK_SCRIPT)], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, check=False)
    return done.returncode == 0


def work(args: argparse.Namespace, http: httpx.Client) -> dict[str, Any]:
    rng = random.Random(f"loose:{args.session}:{args.round}")
    stop_at = time.monotonic() + args.deadline_s
    prefix, tag = f"r{args.round}-", f"loose-r{args.round}"
    tasks: dict[str, dict[str, Any]] = {}
    decisions: list[float] = []
    attempts: dict[str, int] = {}
    looks = ran = 0
    while looks < args.max_steps and time.monotonic() < stop_at:
        looks += 1
        t0 = time.perf_counter()
        tasks = tasks or task_list(http, prefix)
        marks = board(http, tag) if tasks else {}
        if tasks and all(marks.get(t) == "done" for t in tasks):
            break
        options = free(tasks, marks)
        if not options:
            time.sleep(args.poll * rng.uniform(0.8, 1.2))
            continue
        pick = rng.choice(options)
        mark(http, args.round, pick, "started", args.session)
        decisions.append(time.perf_counter() - t0)
        attempts[pick] = attempts.get(pick, 0) + 1
        ok = run(tasks[pick], args.session, attempts[pick])
        mark(http, args.round, pick, "done" if ok else "failed", args.session)
        ran += 1
    return {"session": args.session, "decisions": decisions, "looks": looks, "ran": ran,
            "finished": bool(tasks) and looks < args.max_steps
            and time.monotonic() < stop_at}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--round", type=int, required=True)
    ap.add_argument("--session", required=True)
    ap.add_argument("--poll", type=float, default=0.05, help="seconds between looks when "
                    "nothing is free")
    ap.add_argument("--deadline-s", type=float, default=300)
    ap.add_argument("--max-steps", type=int, default=200_000)
    args = ap.parse_args()
    headers = {"authorization": f"Bearer {os.environ['SWARM_TOKEN']}"}
    with httpx.Client(base_url=args.url, headers=headers, timeout=30,
                      transport=Retrying()) as http:
        print(json.dumps(work(args, http)), flush=True)


if __name__ == "__main__":
    main()
