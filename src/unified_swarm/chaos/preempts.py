"""Emergencies, preemptions and releases (the operator's operations, operator.py), judged
from the journal, the side-effect log and the final state:

- every emergency task (`POST /swarm/emergency` answered 201, or unanswered and in the
  store) is in the emergency class and completed exactly once, and its interrupt did not
  outlive it; a task it preempted was
  marked (`preemptions` > 0) and completed later, exactly once; no task was preempted more
  often than the run's `max_preemptions`;
- every attempt given back (released by choice, for a preemption, or revoked past the
  grace) ended `released`, no outcome of it was accepted afterwards (a late result is
  refused, never applied: the stored result is not the one it printed), and it does not
  count: the task's `attempts` leaves it out, and no task failed because of one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .. import lifecycle
from ..jsonutil import digest
from .checker import SLACK, Dump, Result, ended_by_split, ts
from .history import Op

#: the errors of an attempt given back, by its holder or by the grace running out
GIVEN_BACK = frozenset({lifecycle.RELEASED_BY_CHOICE, lifecycle.RELEASED_PREEMPTED,
                        lifecycle.REVOKED})
#: outcome calls that may never be accepted for an attempt given back
OUTCOMES = frozenset({"complete", "fail", "split"})


def given_back(att: dict[str, Any]) -> bool:
    return att.get("error") in GIVEN_BACK


def _completed_once(tid: str, dump: Dump) -> str | None:
    """Why `tid` is not completed exactly once (None: it is)."""
    task = dump.tasks.get(tid)
    if task is None:
        return f"{tid}: missing"
    attempts = dump.history.get(tid, [])
    n = sum(a["outcome"] == "completed" for a in attempts)
    if task["status"] == "completed" and (n == 1 or ended_by_split(attempts)):
        return None  # completed by its one attempt, or by the merge of its subtasks
    return f"{tid}: {task['status']} with {n} completed attempts"


def emergencies_once(ops: list[Op], _: list[dict[str, Any]], dump: Dump) -> Result:
    sent = [o for o in ops if o.op == "emergency" and o.outcome in ("ok", "info") and o.task]
    bad: list[str] = []
    ways: Counter[str] = Counter()
    for o in sent:
        tid = str(o.task)
        task = dump.tasks.get(tid)
        if task is None and o.outcome == "info":
            ways["unanswered, not added"] += 1
            continue  # an emergency with no answer may not have landed (once.py checks)
        if task is not None and task["priority"] != lifecycle.EMERGENCY_PRIORITY:
            bad.append(f"{tid}: an emergency with priority {task['priority']}")
        if (why := _completed_once(tid, dump)) is not None:
            bad.append(f"emergency {why}")
        ways["with interrupt" if o.data.get("interrupt") else "without interrupt"] += 1
        victim = o.data.get("preempted")
        if isinstance(victim, dict):
            ways["preempted"] += 1
            bad += _victim(str(victim.get("task_id")), str(victim.get("session_id")), o, dump)
        elif o.data.get("assigned_to"):
            ways["offered to an idle session"] += 1
    if dump.max_preemptions:
        bad += [f"{tid}: preempted {t.get('preemptions')} times, over the run's limit of "
                f"{dump.max_preemptions}" for tid, t in sorted(dump.tasks.items())
                if (t.get("preemptions") or 0) > dump.max_preemptions]
    bad += _outlived(dump)
    note = ", ".join(f"{n} {w}" for w, n in sorted(ways.items())) or "no emergency was sent"
    return Result("emergencies complete once, victims too", len(sent), bad, note)


def _outlived(dump: Dump) -> list[str]:
    """An emergency's interrupt ends with its task: one still in force at the end, for a
    task that ended, would have kept the swarm from taking any other work."""
    tid = (dump.interrupt or {}).get("task_id")
    task = dump.tasks.get(str(tid)) if tid is not None else None
    if task is not None and task["status"] in lifecycle.FINAL:
        return [f"the interrupt of emergency {tid} outlived its task ({task['status']})"]
    return []


def _victim(tid: str, session: str, o: Op, dump: Dump) -> list[str]:
    """The task an emergency preempted: it was marked, the holder named held an attempt of
    it then, and it still completed, exactly once."""
    task = dump.tasks.get(tid)
    if task is None:
        return [f"{tid}: preempted for {o.task}, but not in the store"]
    bad = []
    if not task.get("preemptions"):
        bad.append(f"{tid}: preempted for {o.task}, but its preemptions count is 0")
    held = [a for a in dump.history.get(tid, []) if a["session_id"] == session
            and (ts(a["started_at"]) or 0.0) <= o.complete + SLACK
            and (a["ended_at"] is None or (ts(a["ended_at"]) or 0.0) >= o.invoke - SLACK)]
    if not held:
        bad.append(f"{tid}: preempted for {o.task}, but {session} held no attempt of it then")
    if (why := _completed_once(tid, dump)) is not None:
        bad.append(f"preempted {why}")
    return bad


def given_back_not_counted(ops: list[Op], effects: list[dict[str, Any]],
                           dump: Dump) -> Result:
    printed = {(e["task"], e["token"]): e.get("result_digest") for e in effects
               if e["phase"] == "end"}
    by_attempt: dict[tuple[str, int | None], list[Op]] = {}
    for o in ops:
        if o.task and o.op in (*OUTCOMES, "progress"):
            by_attempt.setdefault((o.task, o.token), []).append(o)
    bad: list[str] = []
    ways: Counter[str] = Counter()
    refused = checked = 0
    for tid, attempts in sorted(dump.history.items()):
        back = [a for a in attempts if given_back(a)]
        if not back:
            continue
        task = dump.tasks[tid]
        for a in back:
            checked += 1
            ways[a["error"]] += 1
            calls = by_attempt.get((tid, a["fencing_token"]), [])
            refused += sum(o.outcome == "fail" and o.op in OUTCOMES for o in calls)
            bad += _one_given_back(tid, task, a, calls, printed)
        counted = sum(1 for a in attempts if a["ended_at"] is None
                      or lifecycle.counted(a.get("error")))
        if task["attempts"] != counted:
            bad.append(f"{tid}: attempts {task['attempts']}, but only {counted} count "
                       f"({len(back)} given back)")
        if task["status"] == "failed" and given_back(attempts[-1]):
            bad.append(f"{tid}: failed when its last attempt was given back")
    note = ", ".join(f"{n} {w}" for w, n in sorted(ways.items()))
    note = (note + f"; {refused} late outcomes refused") if checked else "none given back"
    return Result("given back: not counted, late refused", checked, bad, note)


def _one_given_back(tid: str, task: dict[str, Any], a: dict[str, Any], calls: list[Op],
                    printed: dict[tuple[str, int], str | None]) -> list[str]:
    token, end = a["fencing_token"], ts(a["ended_at"])
    bad = []
    if a["outcome"] != "released" or end is None:
        bad.append(f"{tid}: token {token} given back ({a['error']}) but {a['outcome']}")
    for o in calls:
        if o.outcome != "ok":
            continue
        if o.op in OUTCOMES:
            bad.append(f"{tid}: {o.op} with token {token} accepted, yet it was given back")
        elif end is not None and o.invoke > end + SLACK:
            bad.append(f"{tid}: progress with token {token} accepted after it was given back")
    mine = printed.get((tid, token))
    if task["status"] == "completed" and mine is not None and mine == digest(task["result"]):
        bad.append(f"{tid}: the stored result is the one token {token} printed after it "
                   "was given back")
    return bad
