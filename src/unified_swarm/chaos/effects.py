"""The deterministic test executor: sleep `input.ms`, logging (task, token, pid) before and
after to a side-effect log, so every attempt that really ran is counted even when its result
is refused, and the end line carries the digest of the result it returns (the checker holds
the stored result to it). A task whose input says `"split": n` is split instead into n
subtasks (the second depending on the first; merged as `input.merge` says, "list" or
"object"), which its worker sends as `POST /work/{id}/split`: that attempt logs its start
and no end (it returns no result).
Run it with the python executor: `unified_swarm.chaos.effects:run`.

The log directory comes from `SWARM_CHAOS_EFFECTS` (one file per process).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..client.types import SplitInto
from ..jsonutil import digest

ENV = "SWARM_CHAOS_EFFECTS"


def _log(directory: Path, phase: str, task_id: str, token: int, **extra: Any) -> None:
    line = json.dumps({"task": task_id, "token": token, "pid": os.getpid(), "phase": phase,
                       "t": time.time(), **extra})
    with (directory / f"effects-{os.getpid()}.jsonl").open("a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())  # a SIGKILL right after must not lose the line


def run(task: dict[str, Any]) -> dict[str, Any] | SplitInto:
    """Executor entry point: the task as the server sent it (with its fencing token)."""
    return perform(task, Path(os.environ.get(ENV, ".")))


def perform(task: dict[str, Any], directory: Path) -> dict[str, Any] | SplitInto:
    """Run the task, logging to `directory` (the campaign's operator runs the emergencies
    it takes itself through this)."""
    token = int(task["fencing_token"])
    _log(directory, "start", task["id"], token)
    spec = task.get("input") or {}
    if spec.get("split"):
        return subtasks(task["id"], int(spec["split"]), int(task.get("max_attempts") or 3),
                        str(spec.get("merge") or "list"))
    ms = spec.get("ms", 0)
    time.sleep(max(0.0, float(ms)) / 1000)
    result = {"task": task["id"], "token": token, "pid": os.getpid()}
    _log(directory, "end", task["id"], token, result_digest=digest(result))
    return result


def subtasks(task_id: str, n: int, max_attempts: int, merge: str = "list") -> SplitInto:
    """The split of `task_id`: n short subtasks, the second waiting for the first."""
    ids = [f"{task_id}.s{k}" for k in range(1, n + 1)]
    subs: list[dict[str, Any]] = [{"id": i, "type": "chaos", "input": {"ms": 5},
                                   "max_attempts": max_attempts} for i in ids]
    if n > 1:
        subs[1]["dependencies"] = [ids[0]]
    return SplitInto(subs, merge)


def read_effects(directory: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(directory.glob("effects-*.jsonl")):
        with path.open() as f:
            for raw in f:
                try:
                    out.append(json.loads(raw))
                except json.JSONDecodeError:
                    continue
    return out
