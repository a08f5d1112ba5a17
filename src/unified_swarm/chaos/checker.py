"""The checker: one line per invariant, with its counts, from everything a run left behind.

Inputs are store-agnostic: tasks and attempts as their wire JSON (so a dump read over HTTP
or straight from either store looks the same), the client journals, the executor's effect
log, knowledge versions and event sequence numbers.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..jsonutil import digest
from .history import Op

FINAL = {"completed", "failed", "cancelled", "blocked"}
REQUEUE_BOUND = 1.0


def ts(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


@dataclass(slots=True)
class Dump:
    """The final state: every task with its attempts, every knowledge version, every seq."""

    tasks: dict[str, dict[str, Any]]
    history: dict[str, list[dict[str, Any]]]
    knowledge: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    event_seqs: list[int] = field(default_factory=list)
    #: windows (start, end) in which nothing could reap: the orchestrator or Redis was down,
    #: or the leader replica died and no other had taken over yet
    outages: list[tuple[float, float]] = field(default_factory=list)


@dataclass(slots=True)
class Result:
    name: str
    checked: int
    violations: list[str]
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.violations


def check(ops: list[Op], effects: list[dict[str, Any]], dump: Dump) -> list[Result]:
    checks: list[Callable[[list[Op], list[dict[str, Any]], Dump], Result]] = [
        no_task_lost, no_task_completed_twice, stored_result_is_acknowledged,
        fencing_tokens, leases_never_overlap, requeue_latency, attempts_counted_exactly,
        dependencies_first, knowledge_versions, events_contiguous,
    ]
    return [c(ops, effects, dump) for c in checks]


def table(results: Iterable[Result]) -> str:
    rows = [f"{'invariant':<36} {'checked':>9} {'violations':>10}  note"]
    for r in results:
        rows.append(f"{r.name:<36} {r.checked:>9} {len(r.violations):>10}  {r.note}")
        rows.extend(f"    ! {v}" for v in r.violations[:5])
    return "\n".join(rows)


def _ok(ops: list[Op], name: str) -> list[Op]:
    return [o for o in ops if o.op == name and o.outcome == "ok"]


def no_task_lost(ops: list[Op], _: list[dict[str, Any]], dump: Dump) -> Result:
    accepted = {t for o in _ok(ops, "add") for t in o.data.get("ids", [])}
    bad = [f"{t}: accepted but missing" for t in sorted(accepted - dump.tasks.keys())]
    bad += [f"{t}: ended {task['status']}" for t, task in sorted(dump.tasks.items())
            if task["status"] not in FINAL]
    return Result("no task lost", len(accepted | dump.tasks.keys()), bad,
                  f"{sum(t['status'] == 'completed' for t in dump.tasks.values())} completed")


def no_task_completed_twice(_: list[Op], __: list[dict[str, Any]], dump: Dump) -> Result:
    bad = []
    for tid, attempts in dump.history.items():
        n = sum(a["outcome"] == "completed" for a in attempts)
        if n > 1 or (n == 1) != (dump.tasks[tid]["status"] == "completed"):
            bad.append(f"{tid}: {n} completed attempts, status {dump.tasks[tid]['status']}")
    return Result("no task completed twice", len(dump.history), bad)


def stored_result_is_acknowledged(ops: list[Op], _: list[dict[str, Any]], dump: Dump) -> Result:
    acked: dict[str, list[Op]] = defaultdict(list)
    maybe: dict[str, list[Op]] = defaultdict(list)
    for o in ops:
        if o.op == "complete" and o.task and o.outcome != "fail":
            (acked if o.outcome == "ok" else maybe)[o.task].append(o)
    bad, checked = [], 0
    for tid, task in dump.tasks.items():
        if task["status"] != "completed":
            if acked.get(tid):
                bad.append(f"{tid}: a complete got 200 but the task is {task['status']}")
            continue
        checked += 1
        stored = digest(task["result"])
        token = task["fencing_token"]
        for o in acked.get(tid, []):
            if o.data.get("result_digest") != stored or o.token != token:
                bad.append(f"{tid}: acknowledged result (token {o.token}) is not the stored one")
        if not acked.get(tid) and not any(o.data.get("result_digest") == stored
                                          for o in maybe.get(tid, [])):
            bad.append(f"{tid}: stored result matches no complete call")
    return Result("stored result is the acknowledged one", checked, bad)


def fencing_tokens(ops: list[Op], _: list[dict[str, Any]], dump: Dump) -> Result:
    bad = []
    for tid, attempts in dump.history.items():
        tokens = [a["fencing_token"] for a in attempts]
        if tokens != list(range(1, len(tokens) + 1)):
            bad.append(f"{tid}: tokens {tokens} do not strictly increase from 1")
    checked = 0
    want = {"complete": "completed", "fail": "failed"}
    for o in ops:
        if o.outcome != "ok" or o.op not in ("complete", "fail", "progress") or not o.task:
            continue
        checked += 1
        att = next((a for a in dump.history.get(o.task, [])
                    if a["fencing_token"] == o.token), None)
        if att is None or (o.session and att["session_id"] != o.session):
            bad.append(f"{o.task}: accepted {o.op} with token {o.token} of no attempt it held")
        elif o.op in want and att["outcome"] != want[o.op]:
            bad.append(f"{o.task}: accepted {o.op} token {o.token}, attempt {att['outcome']}")
        elif o.op == "progress":
            start, end = ts(att["started_at"]), ts(att["ended_at"])
            if (start is not None and start > o.complete) or (end is not None and end < o.invoke):
                bad.append(f"{o.task}: progress with token {o.token} outside its lease")
    return Result("fencing tokens increase, none stale", checked, bad)


def leases_never_overlap(_: list[Op], __: list[dict[str, Any]], dump: Dump) -> Result:
    bad = []
    for tid, attempts in dump.history.items():
        for a, b in itertools.pairwise(attempts):
            end, nxt = ts(a["ended_at"]), ts(b["started_at"])
            if end is None or nxt is None or end > nxt:
                bad.append(f"{tid}: attempt {a['fencing_token']} overlaps {b['fencing_token']}")
    return Result("no two leases of a task overlap", len(dump.history), bad)


def _judged_from(deadline: float, outages: list[tuple[float, float]]) -> float:
    """A lease due during an outage (or just before it, not yet reaped) can only be reaped
    once a coordinator runs again, which it does on start, before the outage is seen to end:
    its second is counted from the outage's end."""
    for start, end in outages:
        if start - REQUEUE_BOUND <= deadline <= end:
            return max(deadline, end)
    return deadline


def requeue_latency(_: list[Op], __: list[dict[str, Any]], dump: Dump) -> Result:
    lags, bad, excused = [], [], 0
    for tid, attempts in dump.history.items():
        for a in attempts:
            if a["outcome"] != "expired":
                continue
            end, deadline = ts(a["ended_at"]), ts(a.get("lease_expires_at"))
            if end is None or deadline is None:
                continue
            judged = _judged_from(deadline, dump.outages)
            excused += judged != deadline
            early, lag = end - deadline, max(0.0, end - judged)
            lags.append(lag)
            if early < -0.002 or lag > REQUEUE_BOUND:  # ms rounding on the wire
                bad.append(f"{tid}: token {a['fencing_token']} requeued {early:+.3f}s from "
                           f"expiry" + (" (after an outage)" if judged != deadline else ""))
    note = (f"max {max(lags) * 1000:.0f} ms, p50 {statistics.median(lags) * 1000:.0f} ms"
            if lags else "no lease expired")
    if excused:
        note += f"; {excused} due during outages, timed from their end"
    return Result("requeue within 1 s of lease expiry", len(lags), bad, note)


def attempts_counted_exactly(ops: list[Op], effects: list[dict[str, Any]],
                             dump: Dump) -> Result:
    bad = []
    claims_ok = Counter(o.task for o in ops if o.op in ("request", "claim")
                        and o.outcome == "ok" and o.task)
    claims_info = sum(1 for o in ops if o.op in ("request", "claim") and o.outcome == "info")
    ran = {(e["task"], e["token"]) for e in effects if e["phase"] == "start"}
    attempts_total = 0
    for tid, task in dump.tasks.items():
        attempts = dump.history.get(tid, [])
        attempts_total += len(attempts)
        if task["attempts"] != len(attempts):
            bad.append(f"{tid}: attempts {task['attempts']} but {len(attempts)} recorded")
        if claims_ok[tid] > len(attempts):
            bad.append(f"{tid}: {claims_ok[tid]} acknowledged claims, {len(attempts)} attempts")
    recorded = {(tid, a["fencing_token"]) for tid, atts in dump.history.items() for a in atts}
    bad += [f"{t}: ran with token {k} that no attempt has" for t, k in sorted(ran - recorded)]
    if attempts_total > sum(claims_ok.values()) + claims_info:
        bad.append(f"{attempts_total} attempts but only {sum(claims_ok.values())} ok and "
                   f"{claims_info} unknown claims")
    return Result("attempts counted exactly", attempts_total, bad,
                  f"{len(ran)} attempts ran, {sum(claims_ok.values())} claims acknowledged")


def dependencies_first(_: list[Op], __: list[dict[str, Any]], dump: Dump) -> Result:
    bad, checked = [], 0
    for tid, task in dump.tasks.items():
        for a in dump.history.get(tid, []):
            checked += 1
            start = ts(a["started_at"]) or 0.0
            for dep in task["dependencies"]:
                d = dump.tasks.get(dep)
                done = ts(d["completed_at"]) if d and d["status"] == "completed" else None
                if done is None or done > start:
                    bad.append(f"{tid}: claimed before dependency {dep} completed")
    return Result("no claim before dependencies done", checked, bad)


def knowledge_versions(ops: list[Op], _: list[dict[str, Any]], dump: Dump) -> Result:
    bad = []
    for topic, versions in dump.knowledge.items():
        numbers = [v["version"] for v in versions]
        if numbers != list(range(1, len(numbers) + 1)):
            bad.append(f"{topic}: versions {numbers[:10]} are not contiguous")
    puts = _ok(ops, "knowledge_put")
    for o in puts:
        topic, version = o.data["topic"], o.data["version"]
        stored = {v["version"]: v for v in dump.knowledge.get(topic, [])}.get(version)
        if stored is None or digest(stored["content"]) != o.data["content_digest"]:
            bad.append(f"{topic}: acknowledged version {version} is not readable as written")
    return Result("knowledge versions contiguous, acked", len(puts), bad)


def events_contiguous(_: list[Op], __: list[dict[str, Any]], dump: Dump) -> Result:
    seqs = dump.event_seqs
    gaps = [f"gap after {a}" for a, b in itertools.pairwise(seqs) if b != a + 1]
    if seqs and seqs[0] != 1:
        gaps.insert(0, f"first seq {seqs[0]}")
    return Result("event sequence contiguous", len(seqs), gaps)
