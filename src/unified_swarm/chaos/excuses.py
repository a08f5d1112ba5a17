"""Excuses by evidence only: a lease that was lost must be explained by one named fault.

A fault explains a lost lease only when it could have cost that very lease:

- `worker_kill` of the session's worker while the lease still ran (from then on nothing
  could renew it, or record its outcome);
- `worker_pause_long` of the session's worker, overlapping the lease's renewal window;
- an outage the session had to go through (`server_kill` or `leader_kill` of the replica it
  talks to, `redis_kill` for every session), overlapping that window.

The renewal window of an expired lease is the last lease period before its deadline: a
lease expires only when no renewal landed in it. A lease released by its worker (a claim
whose answer was lost, given back as a stray) is judged over the attempt's whole life. A
short pause explains nothing: it is what `short_pauses_kept` holds to account.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .. import lifecycle
from .checker import SLACK, Dump, FaultWindow, Result, attempt_of, ts
from .history import Op

#: a short pause's measured length may pass half a lease by this much (timer jitter of a
#: loaded campaign process) and still be judged
PAUSE_JITTER = 0.1


def affects(f: FaultWindow, session: str, dump: Dump) -> bool:
    """Could this fault stop `session` from renewing or recording?"""
    if f.kind in ("worker_kill", "worker_pause_long"):
        return f.target == session
    if f.kind == "redis_kill":
        return True
    if f.kind in ("server_kill", "leader_kill"):
        return dump.attached.get(session) == f.target
    return False


def _window(att: dict[str, Any], lease: float) -> tuple[float, float] | None:
    start, end = ts(att["started_at"]), ts(att["ended_at"])
    deadline = ts(att.get("lease_expires_at"))
    if start is None or end is None:
        return None
    if att["outcome"] == "expired" and deadline is not None:
        return deadline - lease, deadline
    return start, end


def explain(att: dict[str, Any], dump: Dump,
            exclude: FaultWindow | None = None) -> FaultWindow | None:
    """The first named fault that explains why this attempt lost its lease, or None."""
    window = _window(att, dump.lease)
    if window is None:
        return None
    session = att["session_id"]
    held_until = ts(att.get("lease_expires_at")) or window[1]
    for f in dump.faults:
        if f is exclude or not affects(f, session, dump):
            continue
        if f.kind == "worker_kill":
            if f.start <= held_until + SLACK:  # the lease still ran when its worker died
                return f
        elif f.start <= window[1] + SLACK and f.end >= window[0] - SLACK:
            return f
    return None


def _note(kinds: Counter[str], what: str) -> str:
    if not kinds:
        return ""
    return f"{what}: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))


def lost_leases_explained(_: list[Op], __: list[dict[str, Any]], dump: Dump) -> Result:
    """Every attempt that ended other than completed lost its lease to a named fault."""
    bad, excuses, kinds, checked = [], [], Counter[str](), 0
    for tid, attempts in dump.history.items():
        for att in attempts:
            checked += 1
            if att["outcome"] in ("completed", "split"):
                continue  # recorded by its holder under its lease (once.py checks when)
            if att["ended_at"] is not None and not lifecycle.counted(att.get("error")):
                continue  # given back, preempted or waiting when its holder went: no loss
            if att["outcome"] is None or att["ended_at"] is None:
                bad.append(f"{tid}: attempt {att['fencing_token']} never ended")
                continue
            fault = explain(att, dump)
            if fault is None:
                bad.append(f"{tid}: token {att['fencing_token']} of {att['session_id']} "
                           f"{att['outcome']} ({att.get('error') or ''}) with no fault to "
                           "explain it")
                continue
            kinds[fault.kind] += 1
            excuses.append(f"{tid} token {att['fencing_token']} {att['outcome']}: {fault.name}")
    return Result("every lost lease explained by a fault", checked, bad,
                  _note(kinds, f"{len(excuses)} lost"), len(excuses), excuses)


def short_pauses_kept(_: list[Op], __: list[dict[str, Any]], dump: Dump) -> Result:
    """A pause of a busy worker for between one heartbeat and half a lease must not cost
    it a lease: its heartbeat resumes with at least half a lease minus one interval to
    spare. Every lease it held is looked up; a missing one is a violation, an expired one is
    excused only by another named fault on that lease."""
    bad, excuses, kinds = [], [], Counter[str]()
    checked = long_ran = 0
    for f in dump.faults:
        if f.kind != "worker_pause_short":
            continue
        length = f.end - f.start
        if not f.held:
            bad.append(f"{f.name}: a short pause of an idle worker counted as a fault")
        if length < dump.heartbeat - SLACK:
            bad.append(f"{f.name}: paused {length:.2f} s, under one heartbeat")
        if length > dump.lease / 2 + PAUSE_JITTER:
            long_ran += 1  # the continue came late: not a short pause, not judged as one
            excuses.append(f"{f.name}: ran {length:.2f} s, past half a lease: not judged")
            continue
        for task, token in f.held:
            checked += 1
            att = attempt_of(dump, task, token)
            if att is None:
                bad.append(f"{task}: token {token} held at {f.name} is in no history")
            elif att["outcome"] == "expired":
                other = explain(att, dump, exclude=f)
                if other is None:
                    bad.append(f"{task}: {f.target} lost lease {token} to {f.name} "
                               f"({length:.2f} s)")
                else:
                    kinds[other.kind] += 1
                    excuses.append(f"{task} token {token}: {other.name}")
    note = _note(kinds, "explained by another fault")
    if long_ran:
        note += f"{'; ' if note else ''}{long_ran} pauses ran long, not judged"
    return Result("short pause keeps the lease", checked, bad, note, len(excuses), excuses)
