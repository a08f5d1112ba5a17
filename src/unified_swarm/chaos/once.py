"""Exactly once, end to end: every accepted task completed once, with the result that the
attempt holding the completed token printed, having run from start to end; every outcome
recorded inside its attempt's lease; no finished attempt's result dropped by its worker.

Judged from the final state (the server's answers, or a store dump: the same JSON), the
client journals and the executor's side-effect log.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from .. import lifecycle
from ..jsonutil import digest
from .checker import SLACK, Dump, Result, attempt_of, ended_by_split, ok_ops, ts
from .excuses import explain
from .history import Op
from .preempts import GIVEN_BACK

#: the calls that add tasks: a batch, a split's subtasks, an emergency
ADDS = ("add", "split", "emergency")


def _added(ops: list[Op]) -> tuple[set[str], set[str]]:
    """Task ids of adds answered 2xx, and of adds with no answer (they may have landed)."""
    ok = {t for name in ADDS for o in ok_ops(ops, name) for t in o.data.get("ids", [])}
    maybe = {t for o in ops if o.op in ADDS and o.outcome == "info"
             for t in o.data.get("ids", [])}
    return ok, maybe


def _excused_end(tid: str, dump: Dump, seen: dict[str, str | None]) -> str | None:
    """Why a task that did not complete may stand (None: it may not): a failure whose every
    counted attempt a named fault explains (one given back cost nothing: preempts.py holds
    it to that), or a block by such a failure."""
    if tid in seen:
        return seen[tid]
    seen[tid] = None  # a cycle (there is none) must not recurse forever
    task, attempts = dump.tasks[tid], dump.history.get(tid, [])
    why: str | None = None
    counted = [a for a in attempts if lifecycle.counted(a.get("error"))]
    if task["status"] == "failed" and counted:
        faults = [explain(a, dump) for a in counted]
        if all(faults):
            why = f"failed: {len(counted)} attempts, each lost to a fault"
    elif task["status"] == "blocked":
        deps = [d for d in task["dependencies"]
                if d in dump.tasks and dump.tasks[d]["status"] != "completed"]
        if deps and all(_excused_end(d, dump, seen) for d in deps):
            why = f"blocked by {', '.join(deps)}"
    seen[tid] = why
    return why


def completed_exactly_once(ops: list[Op], _: list[dict[str, Any]], dump: Dump) -> Result:
    accepted, maybe = _added(ops)
    bad = [f"{t}: accepted but missing" for t in sorted(accepted - dump.tasks.keys())]
    bad += [f"{t}: in the store but never added" for t in
            sorted(dump.tasks.keys() - accepted - maybe)]
    excuses: list[str] = []
    seen: dict[str, str | None] = {}
    most = 0
    for tid, task in sorted(dump.tasks.items()):
        attempts = dump.history.get(tid, [])
        most = max(most, len(attempts))
        n = sum(a["outcome"] == "completed" for a in attempts)
        if task["status"] == "completed" and n == 1:
            continue
        if ended_by_split(attempts):
            continue  # a split parent ends as its subtasks do (splits.py judges it)
        if task["status"] == "completed" or n:
            bad.append(f"{tid}: {n} completed attempts, status {task['status']}")
        elif (why := _excused_end(tid, dump, seen)) is not None:
            excuses.append(f"{tid}: {why}")
        else:
            bad.append(f"{tid}: ended {task['status']}")
    done = sum(t["status"] == "completed" for t in dump.tasks.values())
    return Result("every task completed exactly once", len(accepted | dump.tasks.keys()), bad,
                  f"{done} completed; at most {most} attempts on one task", len(excuses),
                  excuses)


def _effects(effects: list[dict[str, Any]]) -> tuple[set[tuple[str, int]],
                                                     dict[tuple[str, int], str | None]]:
    started = {(e["task"], e["token"]) for e in effects if e["phase"] == "start"}
    ended = {(e["task"], e["token"]): e.get("result_digest") for e in effects
             if e["phase"] == "end"}
    return started, ended


def result_of_the_completing_attempt(ops: list[Op], effects: list[dict[str, Any]],
                                     dump: Dump) -> Result:
    """The stored result is the one printed by the attempt that holds the completed token,
    which ran from start to end; every complete answered 200 carried it."""
    started, ended = _effects(effects)
    completes: dict[str, list[Op]] = defaultdict(list)
    for o in ops:
        if o.op == "complete" and o.task and o.outcome != "fail":
            completes[o.task].append(o)
    bad = [] if effects else ["the side-effect log is empty: nothing is known to have run"]
    checked = 0
    for tid, task in dump.tasks.items():
        if task["status"] != "completed":
            bad += [f"{tid}: a complete got 200 but the task is {task['status']}"
                    for o in completes.get(tid, []) if o.outcome == "ok"][:1]
            continue
        checked += 1
        bad += _one_result(tid, task, dump, started, ended, completes.get(tid, []))
    return Result("result is the completing attempt's own", checked, bad,
                  f"{len(ended)} attempts ran to their end, {len(started)} started")


def _one_result(tid: str, task: dict[str, Any], dump: Dump, started: set[tuple[str, int]],
                ended: dict[tuple[str, int], str | None], completes: list[Op]) -> list[str]:
    stored = digest(task["result"])
    attempts = dump.history.get(tid, [])
    winner = next((a for a in attempts if a["outcome"] == "completed"), None)
    if winner is None:
        return []  # completed_exactly_once reports it
    token = winner["fencing_token"]
    bad = []
    if token != task["fencing_token"]:
        bad.append(f"{tid}: completed by token {token}, but the task's token is "
                   f"{task['fencing_token']}")
    if (tid, token) not in started:
        bad.append(f"{tid}: the completing attempt (token {token}) never started")
    elif (tid, token) not in ended:
        bad.append(f"{tid}: the completing attempt (token {token}) never ran to its end")
    elif ended[(tid, token)] != stored:
        bad.append(f"{tid}: the stored result is not the one token {token} printed")
    for o in completes:
        if o.outcome == "ok" and (o.token != token or o.data.get("result_digest") != stored):
            bad.append(f"{tid}: a complete with token {o.token} got 200 but did not carry "
                       "the stored result")
    if not any(o.token == token and o.data.get("result_digest") == stored for o in completes):
        bad.append(f"{tid}: the stored result matches no complete call")
    return bad


def outcomes_inside_their_lease(ops: list[Op], _: list[dict[str, Any]],
                                dump: Dump) -> Result:
    """Every completed or failed attempt was recorded before its lease's deadline (kept on
    the attempt), and inside the window of a call that asked for it."""
    bad, checked = [], 0
    for tid, attempts in dump.history.items():
        for a in attempts:
            if a["outcome"] not in ("completed", "failed", "split"):
                continue
            checked += 1
            start, end, deadline = (ts(a["started_at"]), ts(a["ended_at"]),
                                    ts(a.get("lease_expires_at")))
            if start is None or end is None or deadline is None:
                bad.append(f"{tid}: {a['outcome']} attempt {a['fencing_token']} has no "
                           "start, end or deadline recorded")
            elif not start - SLACK <= end <= deadline + SLACK:
                bad.append(f"{tid}: token {a['fencing_token']} {a['outcome']} at {end:.3f}, "
                           f"its lease ran {start:.3f}..{deadline:.3f}")
    bad += _journal_inside(ops, dump)
    n_calls = sum(1 for o in ops if o.outcome == "ok"
                  and o.op in ("complete", "fail", "progress"))
    return Result("every outcome inside its lease", checked + n_calls, bad)


def _journal_inside(ops: list[Op], dump: Dump) -> list[str]:
    """Against the journal: each accepted call's attempt was open while the call was out;
    an outcome was recorded after the first call asking for it and before an answer."""
    first_ask: dict[tuple[str, int | None, str], float] = {}
    for o in ops:
        if o.task and o.op in ("complete", "fail"):
            key = (o.task, o.token, o.op)
            first_ask[key] = min(first_ask.get(key, o.invoke), o.invoke)
    bad = []
    for o in ops:
        if o.outcome != "ok" or o.op not in ("complete", "fail", "progress") or not o.task:
            continue
        att = attempt_of(dump, o.task, o.token)
        if att is None:
            continue  # fencing_tokens reports it
        start, end = ts(att["started_at"]) or 0.0, ts(att["ended_at"])
        deadline = ts(att.get("lease_expires_at")) or float("inf")
        if o.op == "progress":
            closed = min(end if end is not None else float("inf"), deadline)
            if o.complete < start - SLACK or o.invoke > closed + SLACK:
                bad.append(f"{o.task}: progress with token {o.token} accepted outside its "
                           "lease")
        elif end is None or not (first_ask[(o.task, o.token, o.op)] - SLACK <= end
                                 <= o.complete + SLACK):
            bad.append(f"{o.task}: {o.op} with token {o.token} answered 200, but the "
                       "attempt ended outside the calls asking for it")
    return bad


def no_result_dropped(ops: list[Op], effects: list[dict[str, Any]], dump: Dump) -> Result:
    """Every attempt that ran to its end had its result sent by its worker (complete was
    called with that token), unless that worker was killed before it could, or the attempt
    was given back (a preempted executor runs on in its thread: its result must not be sent)."""
    sent = {(o.task, o.token) for o in ops if o.op == "complete"}
    back = {(tid, a["fencing_token"]) for tid, atts in dump.history.items() for a in atts
            if a["outcome"] == "released" and a.get("error") in GIVEN_BACK}
    kills = [f for f in dump.faults if f.kind == "worker_kill" and f.pid is not None]
    bad, excuses, kinds = [], [], Counter[str]()
    ends = [e for e in effects if e["phase"] == "end"]
    for e in ends:
        if (e["task"], e["token"]) in sent:
            continue
        if (e["task"], e["token"]) in back:
            kinds["given back"] += 1
            continue
        # the kill's window runs from SIGKILL sent to the process reaped: it died in it
        kill = next((f for f in kills if f.pid == e["pid"] and f.end >= e["t"] - SLACK),
                    None)
        if kill is None:
            bad.append(f"{e['task']}: token {e['token']} ran to its end in pid {e['pid']}, "
                       "but its result was never sent")
        else:
            kinds[kill.kind] += 1
            excuses.append(f"{e['task']} token {e['token']}: {kill.name}")
    note = "; ".join(([f"{len(excuses)} killed before sending"] if excuses else [])
                     + ([f"{kinds['given back']} given back, not sent"]
                        if kinds["given back"] else []))
    return Result("no finished result dropped", len(ends), bad, note, len(excuses), excuses)
