"""Split parents (POST /work/{id}/split), judged from the final state: a parent's one split
attempt is its last (no lease after it: a `waiting` parent is never held), and it ended as
its subtasks did: completed only once every subtask completed, and not before the last of
them, with exactly their results merged as the split asked (a `list` in subtask order, an
`object` by subtask id, or the merge task's result): each distinct subtask's result once,
no other, so a merge that counted completion events instead of subtasks (Celery chord's
early merge) shows; failed only when one of them could not complete, cancelled with none
of them left open; still waiting only while a subtask may yet complete.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .checker import SLACK, Dump, Result, ts
from .history import Op

#: statuses a subtask may still leave (so its parent may still be waiting)
OPEN = frozenset({"pending", "ready", "assigned", "in_progress", "waiting", "input_required"})
DEAD = frozenset({"failed", "cancelled", "blocked"})


def _asked(ops: list[Op]) -> dict[str, tuple[list[str], Any]]:
    """Each parent's split as sent (its last one answered or unanswered): the subtask ids in
    order, and the merge (None: not journaled)."""
    return {str(o.task): (list(o.data.get("ids", [])), o.data.get("merge"))
            for o in ops if o.op == "split" and o.outcome in ("ok", "info") and o.task}


def split_parents(ops: list[Op], __: list[dict[str, Any]], dump: Dump) -> Result:
    asked = _asked(ops)
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
        if parent["status"] == "completed":
            bad += _merged(pid, parent, kids, asked.get(pid), dump)
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


def _merged(pid: str, parent: dict[str, Any], kids: list[str],
            asked: tuple[list[str], Any] | None, dump: Dump) -> list[str]:
    """The completed parent's result is exactly its subtasks' results, merged as asked. A
    split whose merge the journal does not say is judged by the shape of the result (a list
    in the order sent, or id order when the split itself is not in the journal)."""
    ids, merge = asked if asked is not None else (sorted(kids), None)
    merge = _shape(parent["result"]) if merge is None else merge
    results = {k: dump.tasks[k].get("result") for k in kids}
    if isinstance(merge, dict):  # a merge task: the subtask the split did not name
        extra = [k for k in kids if k not in ids]
        if len(extra) != 1:
            return [f"{pid}: merged by a task, but {len(extra)} subtasks are not named"]
        want: Any = results[extra[0]]
    elif sorted(ids) != sorted(kids):
        return [f"{pid}: split into {sorted(ids)}, but its subtasks are {sorted(kids)}"]
    elif merge == "object":
        want = {k: results[k] for k in ids}
    else:
        want = [results[k] for k in ids]
    if parent["result"] != want:
        return [f"{pid}: merged result {_brief(parent['result'])} is not its "
                f"{len(ids)} subtasks' results merged as {merge!r}"]
    return []


def _shape(result: Any) -> str:
    return "object" if isinstance(result, dict) else "list"


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
