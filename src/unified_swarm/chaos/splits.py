"""Split parents (POST /work/{id}/split), judged from the final state: a parent's one split
attempt is its last (no lease after it: a `waiting` parent is never held), and it ended as
its subtasks did: completed only once every subtask completed, and not before the last of
them; failed only when one of them could not complete, cancelled with none of them left
open; still waiting only while a subtask may yet complete.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .checker import SLACK, Dump, Result, ts
from .history import Op

#: statuses a subtask may still leave (so its parent may still be waiting)
OPEN = frozenset({"pending", "ready", "assigned", "in_progress", "waiting", "input_required"})
DEAD = frozenset({"failed", "cancelled", "blocked"})


def split_parents(_: list[Op], __: list[dict[str, Any]], dump: Dump) -> Result:
    children: dict[str, list[str]] = defaultdict(list)
    for tid, task in sorted(dump.tasks.items()):
        if task.get("parent_id"):
            children[task["parent_id"]].append(tid)
    split = {tid for tid, atts in dump.history.items()
             if any(a["outcome"] == "split" for a in atts)}
    bad = [f"{tid}: split, but no task names it as parent" for tid in sorted(split - set(children))]
    ended: dict[str, int] = defaultdict(int)
    for pid, kids in sorted(children.items()):
        parent = dump.tasks.get(pid)
        if parent is None:
            bad.append(f"{pid}: parent of {kids[0]} is not in the store")
            continue
        bad += _one_parent(pid, parent, [dump.tasks[k] for k in kids], dump)
        ended[parent["status"]] += 1
    note = ", ".join(f"{n} {s}" for s, n in sorted(ended.items())) or "no task was split"
    return Result("split parents merge once, never leased", len(children), bad, note)


def _one_parent(pid: str, parent: dict[str, Any], kids: list[dict[str, Any]],
                dump: Dump) -> list[str]:
    attempts = dump.history.get(pid, [])
    outcomes = [a["outcome"] for a in attempts]
    bad = []
    if outcomes.count("split") != 1 or outcomes[-1] != "split":
        bad.append(f"{pid}: attempts {outcomes}: one split, and no lease after it")
    status, statuses = parent["status"], [k["status"] for k in kids]
    if parent.get("assigned_to") or parent.get("lease_expires_at"):
        bad.append(f"{pid}: {status} parent held by {parent.get('assigned_to')}")
    if status == "completed":
        done = [ts(k.get("completed_at")) or 0.0 for k in kids]
        if any(s != "completed" for s in statuses):
            bad.append(f"{pid}: completed with subtasks {sorted(set(statuses))}")
        elif (ts(parent.get("completed_at")) or 0.0) < max(done) - SLACK:
            bad.append(f"{pid}: completed before its last subtask")
    elif status == "waiting":
        if all(s == "completed" for s in statuses):
            bad.append(f"{pid}: every subtask completed, yet it is still waiting")
        elif any(s in DEAD for s in statuses):
            bad.append(f"{pid}: a subtask ended {sorted(set(statuses) & DEAD)}, yet it waits")
    elif status in ("failed", "cancelled"):
        if status == "failed" and not any(s in DEAD for s in statuses):
            bad.append(f"{pid}: failed while no subtask failed")
        if any(s in OPEN for s in statuses):
            bad.append(f"{pid}: {status} with subtasks still open")
    else:
        bad.append(f"{pid}: {status} after its split")
    return bad
