"""The checker: one line per invariant, with its counts, from everything a run left behind.

Inputs are store-agnostic: tasks and attempts as their wire JSON (so the server's answers
over HTTP and a dump straight from either store look the same), the client journals, the
executor's effect log, knowledge versions, event sequence numbers, and the faults the
nemesis injected, each with its target and its window.

Every line counts what it `checked`, what it `excused` and its violations. An excuse is
never a blanket: it names the one fault that explains the one lease (excuses.py), and a line
that excuses more than it checked fails the run, as a violation does.

The invariants live in four modules: this one (tokens, leases, requeue latency, attempts,
dependencies, knowledge, events), once.py (every task completed exactly once, with the
result of the attempt that holds the completed token, each outcome inside its lease, no
result dropped), excuses.py (every lost lease explained, short pauses keep the lease),
splits.py (split parents merge once, after their subtasks, with exactly their results, and
are never leased again) and preempts.py (emergencies complete once, and so do their victims;
an attempt given back is not counted and its late outcome is refused).
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import lifecycle
from ..jsonutil import digest
from .history import Op

REQUEUE_BOUND = 1.0
#: timestamps travel with milliseconds (truncated), and every process reads one host clock
SLACK = 0.002


def ts(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """One injected fault: what, against whom, and while it lasted.

    `target` is a worker's session id, a replica's name or "redis"; `end` is when the
    target serves again (a kill of a worker: the kill itself; a pause: the continue).
    A short pause keeps the leases its worker held when it began (`held`: task -> token).
    """

    kind: str
    target: str
    start: float
    end: float
    pid: int | None = None
    held: tuple[tuple[str, int], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.kind} {self.target}@{self.start:.3f}"


@dataclass(slots=True)
class Dump:
    """The final state: every task with its attempts, every knowledge version, every seq,
    and what the run did to it."""

    tasks: dict[str, dict[str, Any]]
    history: dict[str, list[dict[str, Any]]]
    knowledge: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    event_seqs: list[int] = field(default_factory=list)
    #: windows (start, end) in which nothing could reap: the orchestrator or Redis was down,
    #: or the leader replica died and no other had taken over yet
    outages: list[tuple[float, float]] = field(default_factory=list)
    faults: list[FaultWindow] = field(default_factory=list)
    #: the lease TTL and heartbeat interval of every worker session of the run
    lease: float = 0.0
    heartbeat: float = 0.0
    #: session id -> the replica (server process) it talks to
    attached: dict[str, str] = field(default_factory=dict)
    #: the run's SWARM_MAX_PREEMPTIONS: no task may be preempted more often (0: not known)
    max_preemptions: int = 0
    #: the interrupt in force at the end (`Interrupt.wire()`; None: none)
    interrupt: dict[str, Any] | None = None


@dataclass(slots=True)
class Result:
    name: str
    checked: int
    violations: list[str]
    note: str = ""
    excused: int = 0
    #: one line per excuse: what was excused, and the fault (or reason) that explains it
    excuses: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No violation, and no more excused than checked: a line that mostly excuses
        proves nothing."""
        return not self.violations and self.excused <= self.checked


Check = Callable[[list[Op], list[dict[str, Any]], Dump], Result]


def check(ops: list[Op], effects: list[dict[str, Any]], dump: Dump) -> list[Result]:
    from . import excuses, once, preempts, splits  # they build on this module's types

    checks: list[Check] = [
        once.completed_exactly_once, once.result_of_the_completing_attempt,
        once.outcomes_inside_their_lease, once.no_result_dropped,
        fencing_tokens, leases_never_overlap, requeue_latency, excuses.lost_leases_explained,
        excuses.short_pauses_kept, attempts_counted_exactly, dependencies_first,
        knowledge_versions, events_contiguous, splits.split_parents,
        preempts.emergencies_once, preempts.given_back_not_counted,
    ]
    return [c(ops, effects, dump) for c in checks]


def table(results: Iterable[Result]) -> str:
    rows = [f"{'invariant':<38} {'checked':>8} {'excused':>8} {'violations':>10}  note"]
    for r in results:
        flag = "" if r.excused <= r.checked else "  ! more excused than checked"
        rows.append(f"{r.name:<38} {r.checked:>8} {r.excused:>8} {len(r.violations):>10}  "
                    f"{r.note}{flag}")
        rows.extend(f"    ! {v}" for v in r.violations[:5])
        if len(r.violations) > 5:
            rows.append(f"    ! ... and {len(r.violations) - 5} more")
    return "\n".join(rows)


def ok_ops(ops: list[Op], name: str) -> list[Op]:
    return [o for o in ops if o.op == name and o.outcome == "ok"]


def attempt_of(dump: Dump, task: str, token: int | None) -> dict[str, Any] | None:
    return next((a for a in dump.history.get(task, []) if a["fencing_token"] == token), None)


def expected_tokens(attempts: list[dict[str, Any]]) -> tuple[list[int], int]:
    """The tokens a task's attempts must carry, and the task's token after them: each claim
    takes the next one, and a lease revoked past a preemption's grace used one more (so the
    revoked holder's late outcome can never match the task again)."""
    out, token = [], 0
    for a in attempts:
        token += 1
        out.append(token)
        token += a["outcome"] == "released" and a["error"] == lifecycle.REVOKED
    return out, token


def fencing_tokens(ops: list[Op], _: list[dict[str, Any]], dump: Dump) -> Result:
    bad = []
    for tid, attempts in dump.history.items():
        tokens = [a["fencing_token"] for a in attempts]
        expected, last = expected_tokens(attempts)
        if tokens != expected:
            bad.append(f"{tid}: tokens {tokens} do not strictly increase from 1 "
                       f"(one more only past a revoked preemption)")
        if dump.tasks[tid]["fencing_token"] != last:
            bad.append(f"{tid}: task token {dump.tasks[tid]['fencing_token']}, "
                       f"{len(tokens)} attempts")
    checked = 0
    want = {"complete": "completed", "fail": "failed", "release": "released"}
    for o in ops:
        if o.outcome != "ok" or o.op not in ("complete", "fail", "progress", "release") \
                or not o.task:
            continue
        checked += 1
        att = attempt_of(dump, o.task, o.token)
        if att is None or (o.session and att["session_id"] != o.session):
            bad.append(f"{o.task}: accepted {o.op} with token {o.token} of no attempt it held")
        elif o.op in want and att["outcome"] != want[o.op]:
            bad.append(f"{o.task}: accepted {o.op} token {o.token}, attempt {att['outcome']}")
    return Result("fencing tokens increase, none stale", checked, bad)


def leases_never_overlap(_: list[Op], __: list[dict[str, Any]], dump: Dump) -> Result:
    bad = []
    for tid, attempts in dump.history.items():
        for a, b in itertools.pairwise(attempts):
            end, nxt = ts(a["ended_at"]), ts(b["started_at"])
            if end is None or nxt is None or end > nxt:
                bad.append(f"{tid}: attempt {a['fencing_token']} overlaps {b['fencing_token']}")
    return Result("no two leases of a task overlap", len(dump.history), bad)


def judged_from(deadline: float, outages: list[tuple[float, float]]) -> float:
    """A lease due during an outage (or just before it, not yet reaped) can only be reaped
    once a coordinator runs again, which it does on start, before the outage is seen to end:
    its second is counted from the outage's end."""
    for start, end in outages:
        if start - REQUEUE_BOUND <= deadline <= end:
            return max(deadline, end)
    return deadline


#: calls that write: their answers pace the store's commits (a request may long-poll)
WRITES = frozenset({"complete", "fail", "progress", "heartbeat", "add", "knowledge_put",
                    "claim", "register"})


def store_pace(ops: list[Op], start: float, end: float) -> tuple[float, int] | None:
    """The median latency of the write calls in flight between `start` and `end`, and how
    many there were: how long the store took to commit anything then. None with fewer than
    three (too little to measure by)."""
    spans = sorted(o.complete - o.invoke for o in ops if o.op in WRITES and o.invoke <= end
                   and start <= o.complete < float("inf"))
    return (statistics.median(spans), len(spans)) if len(spans) >= 3 else None


def requeue_latency(ops: list[Op], __: list[dict[str, Any]], dump: Dump) -> Result:
    """Within a second of the deadline; a lease due while nothing could reap is timed from
    the end of that outage, and one requeued late while the store itself was slow is held
    to the store's pace measured then (the median latency of the writes in flight: the
    reaper's pass is a write too), counted as excused."""
    lags, bad, excuses, late_outage, checked = [], [], [], 0, 0
    for tid, attempts in dump.history.items():
        for a in attempts:
            if a["outcome"] != "expired":
                continue
            checked += 1
            end, deadline = ts(a["ended_at"]), ts(a.get("lease_expires_at"))
            if end is None or deadline is None:
                bad.append(f"{tid}: expired attempt {a['fencing_token']} has no "
                           f"{'end' if end is None else 'deadline'}")
                continue
            judged = judged_from(deadline, dump.outages)
            late_outage += judged != deadline
            early, lag = end - deadline, max(0.0, end - judged)
            lags.append(lag)
            what = (f"{tid}: token {a['fencing_token']} requeued {early:+.3f}s from expiry"
                    + (" (after an outage)" if judged != deadline else ""))
            if early < -SLACK:
                bad.append(what)
            elif lag > REQUEUE_BOUND:
                pace = store_pace(ops, judged, end)
                if pace is not None and lag <= REQUEUE_BOUND + pace[0]:
                    excuses.append(f"{what}: the store answered writes in a median "
                                   f"{pace[0]:.2f} s then ({pace[1]} calls)")
                else:
                    bad.append(what)
    note = (f"max {max(lags) * 1000:.0f} ms, p50 {statistics.median(lags) * 1000:.0f} ms"
            if lags else "no lease expired")
    if late_outage:
        note += f"; {late_outage} due during outages, timed from their end"
    if excuses:
        note += f"; {len(excuses)} late while the store was slow, held to its pace"
    return Result("requeue within 1 s of lease expiry", checked, bad, note, len(excuses),
                  excuses)


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
        # a release, a preemption, a wait for input cut short: recorded, not counted
        counted = sum(1 for a in attempts if a["ended_at"] is None
                      or lifecycle.counted(a["error"]))
        if task["attempts"] != counted:
            bad.append(f"{tid}: attempts {task['attempts']} but {counted} recorded that count")
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
    puts = ok_ops(ops, "knowledge_put")
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
    if not seqs:
        gaps.append("no events at all")
    return Result("event sequence contiguous", len(seqs), gaps)


def ended_by_split(attempts: list[dict[str, Any]]) -> bool:
    """A split parent: its last attempt split it and none completed it. It ends with its
    subtasks' merge, not with an attempt of its own (splits.py judges that merge)."""
    return bool(attempts) and attempts[-1]["outcome"] == "split" and \
        not any(a["outcome"] == "completed" for a in attempts)
