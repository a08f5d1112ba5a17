"""The checker passes a clean history and catches each kind of violation: every invariant
is broken here on purpose at least once, and every excuse is shown to need its evidence."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from unified_swarm import lifecycle
from unified_swarm.chaos.checker import (
    REQUEUE_BOUND,
    Dump,
    FaultWindow,
    Result,
    check,
    judged_from,
    table,
)
from unified_swarm.chaos.dump import same_state
from unified_swarm.chaos.history import Op
from unified_swarm.jsonutil import digest
from unified_swarm.models import iso

T = 1_800_000_000.0
LEASE, BEAT = 30.0, 10.0
RESULTS = {k: {"task": k, "token": n, "pid": p} for k, n, p in
           (("a", 2, 102), ("b", 1, 102), ("c", 1, 103), ("p1", 1, 103), ("p2", 1, 103))}


def attempt(token: int, session: str, start: float, end: float | None, outcome: str | None,
            deadline: float | None = None, error: str | None = None) -> dict[str, Any]:
    return {"fencing_token": token, "session_id": session, "started_at": iso(start),
            "ended_at": iso(end), "outcome": outcome, "lease_expires_at": iso(deadline),
            "attempt": token, "error": error}


def effect(task: str, token: int, pid: int, phase: str, t: float) -> dict[str, Any]:
    e: dict[str, Any] = {"task": task, "token": token, "pid": pid, "phase": phase, "t": t}
    if phase == "end" and task in RESULTS and RESULTS[task]["token"] == token:
        e["result_digest"] = digest(RESULTS[task])
    return e


def clean() -> tuple[list[Op], list[dict[str, Any]], Dump]:
    """Task a: w1 claimed it and was killed; the lease expired at T+30 (reaped 0.2 s later)
    and w2 completed it. Task b depends on a; its complete's answer was lost (recorded all
    the same). Task c: w3 was paused for 12 s (between one heartbeat and half a lease) while
    holding it, kept the lease and completed it. Task p: w3 split it into p1 and p2, did both,
    and p completed with their results. Knowledge v1, v2; events 1..9."""
    tasks: dict[str, dict[str, Any]] = {
        "a": {"id": "a", "status": "completed", "attempts": 2, "fencing_token": 2,
              "result": RESULTS["a"], "dependencies": [], "completed_at": iso(T + 35)},
        "b": {"id": "b", "status": "completed", "attempts": 1, "fencing_token": 1,
              "result": RESULTS["b"], "dependencies": ["a"], "completed_at": iso(T + 40)},
        "c": {"id": "c", "status": "completed", "attempts": 1, "fencing_token": 1,
              "result": RESULTS["c"], "dependencies": [], "completed_at": iso(T + 25)},
        "p": {"id": "p", "status": "completed", "attempts": 1, "fencing_token": 1,
              "result": [RESULTS["p1"], RESULTS["p2"]], "dependencies": [],
              "completed_at": iso(T + 38), "assigned_to": None, "lease_expires_at": None},
        **{k: {"id": k, "status": "completed", "attempts": 1, "fencing_token": 1,
               "result": RESULTS[k], "dependencies": [], "completed_at": iso(T + end),
               "parent_id": "p"} for k, end in (("p1", 33), ("p2", 38))},
    }
    history = {
        "a": [attempt(1, "w1", T, T + 30.2, "expired", T + 30),
              attempt(2, "w2", T + 30.3, T + 35, "completed", T + 61)],
        "b": [attempt(1, "w2", T + 36, T + 40, "completed", T + 66)],
        "c": [attempt(1, "w3", T + 1, T + 25, "completed", T + 52)],
        "p": [attempt(1, "w3", T + 26, T + 27, "split", T + 56)],
        "p1": [attempt(1, "w3", T + 28, T + 33, "completed", T + 58)],
        "p2": [attempt(1, "w3", T + 34, T + 38, "completed", T + 64)],
    }
    ops = [
        Op("submitter", "add", T - 1, T - 0.9, "ok", data={"ids": ["a", "b", "c"]}),
        Op("w1", "request", T, T, "ok", "a", 1, "w1"),
        Op("w3", "request", T + 1, T + 1, "ok", "c", 1, "w3"),
        Op("w2", "request", T + 30.3, T + 30.3, "ok", "a", 2, "w2"),
        Op("w2", "progress", T + 31, T + 31, "ok", "a", 2, "w2"),
        Op("w2", "complete", T + 35, T + 35, "ok", "a", 2, "w2",
           {"result_digest": digest(RESULTS["a"])}),
        Op("w3", "complete", T + 24.9, T + 25.1, "ok", "c", 1, "w3",
           {"result_digest": digest(RESULTS["c"])}),
        Op("w2", "request", T + 36, T + 36, "ok", "b", 1, "w2"),
        Op("w2", "complete", T + 39.9, float("inf"), "info", "b", 1, "w2",
           {"result_digest": digest(RESULTS["b"])}),
        Op("x", "knowledge_put", T, T, "ok", data={"topic": "k", "version": 2,
                                                   "content_digest": digest("v2")}),
        Op("submitter", "add", T + 25.5, T + 25.6, "ok", data={"ids": ["p"]}),
        Op("w3", "request", T + 26, T + 26, "ok", "p", 1, "w3"),
        Op("w3", "split", T + 26.9, T + 27.1, "ok", "p", 1, "w3", {"ids": ["p1", "p2"]}),
        Op("w3", "request", T + 28, T + 28, "ok", "p1", 1, "w3"),
        Op("w3", "complete", T + 32.9, T + 33.1, "ok", "p1", 1, "w3",
           {"result_digest": digest(RESULTS["p1"])}),
        Op("w3", "request", T + 34, T + 34, "ok", "p2", 1, "w3"),
        Op("w3", "complete", T + 37.9, T + 38.1, "ok", "p2", 1, "w3",
           {"result_digest": digest(RESULTS["p2"])}),
    ]
    effects = [effect("a", 1, 101, "start", T + 0.1),
               effect("c", 1, 103, "start", T + 1.1), effect("c", 1, 103, "end", T + 24),
               effect("a", 2, 102, "start", T + 30.4), effect("a", 2, 102, "end", T + 34),
               effect("b", 1, 102, "start", T + 36.1), effect("b", 1, 102, "end", T + 39),
               effect("p", 1, 103, "start", T + 26.1),
               effect("p1", 1, 103, "start", T + 28.1), effect("p1", 1, 103, "end", T + 32),
               effect("p2", 1, 103, "start", T + 34.1), effect("p2", 1, 103, "end", T + 37)]
    knowledge = {"k": [{"version": 1, "content": "v1"}, {"version": 2, "content": "v2"}]}
    faults = [FaultWindow("worker_kill", "w1", T + 5, T + 5, 101),
              FaultWindow("worker_pause_short", "w3", T + 10, T + 22, 103, (("c", 1),))]
    dump = Dump(tasks, history, knowledge, list(range(1, 10)), [], faults, LEASE, BEAT,
                {"w1": "r0", "w2": "r0", "w3": "r0"})
    return ops, effects, dump


def by_name(results: list[Result]) -> dict[str, Result]:
    return {r.name: r for r in results}


def test_clean_history_passes() -> None:
    results = check(*clean())
    assert all(r.ok for r in results), table(results)
    named = by_name(results)
    assert "max 200 ms" in named["requeue within 1 s of lease expiry"].note
    lost = named["every lost lease explained by a fault"]
    assert lost.excused == 1 and lost.excuses == [
        f"a token 1 expired: worker_kill w1@{T + 5:.3f}"]
    assert named["short pause keeps the lease"].checked == 1
    assert named["split parents merge once, never leased"].checked == 1
    assert len(results) == 16


def broken(change: str) -> list[str]:
    """The names of the lines that fail once `change` is made to the clean run."""
    ops, effects, dump = copy.deepcopy(clean())
    BREAK[change](ops, effects, dump)
    return [r.name for r in check(ops, effects, dump) if not r.ok]


def _set(dump: Dump, task: str, n: int, next_at: float | None = None, **fields: Any) -> None:
    """Change attempt `n` of `task`; `next_at` moves the next attempt's start too."""
    dump.history[task][n].update(fields)
    if next_at is not None:
        dump.history[task][n + 1]["started_at"] = iso(next_at)


def _short_pause_lost(ops: list[Op], effects: list[dict[str, Any]], dump: Dump) -> None:
    """c's lease ran out during w3's short pause (never renewed after it); w2 finished c."""
    dump.history["c"] = [attempt(1, "w3", T + 1, T + 31.1, "expired", T + 31),
                         attempt(2, "w2", T + 31.2, T + 33, "completed", T + 62)]
    dump.tasks["c"].update(attempts=2, fencing_token=2, result={"task": "c", "token": 2})
    ops[6] = Op("w2", "complete", T + 33, T + 33, "ok", "c", 2, "w2",
                {"result_digest": digest({"task": "c", "token": 2})})
    ops.append(Op("w2", "request", T + 31.2, T + 31.2, "ok", "c", 2, "w2"))
    effects[1:3] = [effect("c", 1, 103, "start", T + 1.1),
                    effect("c", 2, 102, "start", T + 31.3),
                    {**effect("c", 2, 102, "end", T + 32.9),
                     "result_digest": digest({"task": "c", "token": 2})}]


def _failed_b(explained: bool) -> Any:
    def change(ops: list[Op], effects: list[dict[str, Any]], dump: Dump) -> None:
        """b failed: its one attempt (w4's) expired; with `explained`, w4 was killed."""
        dump.tasks["b"].update(status="failed", result=None, completed_at=iso(T + 67))
        dump.history["b"] = [attempt(1, "w4", T + 36, T + 66.1, "expired", T + 66)]
        del ops[8]
        effects[-2:] = [effect("b", 1, 104, "start", T + 36.1)]
        if explained:
            dump.faults.append(FaultWindow("worker_kill", "w4", T + 37, T + 37, 104))
    return change


BREAK: dict[str, Any] = {
    # every task completed exactly once
    "lost": lambda o, e, d: d.tasks["b"].update(status="ready"),
    "missing": lambda o, e, d: (d.tasks.pop("b"), d.history.pop("b")),
    "twice": lambda o, e, d: _set(d, "a", 0, outcome="completed"),
    "never-added": lambda o, e, d: o[0].data.update(ids=["a", "b"]),
    "cancelled": lambda o, e, d: d.tasks["c"].update(status="cancelled"),
    "failed-unexplained": _failed_b(explained=False),
    # the result is the completing attempt's own
    "wrong-result": lambda o, e, d: d.tasks["a"].update(result={"task": "a", "token": 1}),
    "empty-effect-log": lambda o, e, d: e.clear(),
    "completing-attempt-never-ended": lambda o, e, d: e.pop(4),
    "completing-attempt-never-started": lambda o, e, d: e.pop(3),
    "printed-another-result": lambda o, e, d: e[4].update(result_digest=digest("x")),
    "acked-another-result": lambda o, e, d: o[5].data.update(result_digest=digest("x")),
    "completed-by-an-older-token": lambda o, e, d: d.tasks["a"].update(fencing_token=3),
    # every outcome inside its lease
    "late-complete": lambda o, e, d: _set(d, "b", 0, lease_expires_at=iso(T + 39)),
    "no-deadline": lambda o, e, d: _set(d, "c", 0, lease_expires_at=None),
    "recorded-before-asked": lambda o, e, d: _set(d, "a", 1, ended_at=iso(T + 34)),
    "progress-outside-lease": lambda o, e, d: o.__setitem__(
        4, Op("w2", "progress", T + 70, T + 70, "ok", "a", 2, "w2")),
    # no finished result dropped
    "dropped": lambda o, e, d: o.pop(6),
    # fencing tokens
    "stale-accepted": lambda o, e, d: o.append(Op("w1", "complete", T + 36, T + 36, "ok",
                                                  "a", 1, "w1")),
    "token-gap": lambda o, e, d: _set(d, "a", 1, fencing_token=3),
    # leases, requeue
    "overlap": lambda o, e, d: _set(d, "a", 0, ended_at=iso(T + 31)),
    "slow-requeue": lambda o, e, d: _set(d, "a", 0, ended_at=iso(T + 31.5), next_at=T + 31.6),
    "early-requeue": lambda o, e, d: _set(d, "a", 0, ended_at=iso(T + 29)),
    "expired-without-deadline": lambda o, e, d: _set(d, "a", 0, lease_expires_at=None),
    # every lost lease explained
    "no-fault-at-all": lambda o, e, d: d.faults.pop(0),
    "killed-after-the-lease-ended": lambda o, e, d: d.faults.__setitem__(
        0, FaultWindow("worker_kill", "w1", T + 31, T + 31, 101)),
    "another-worker-paused": lambda o, e, d: d.faults.__setitem__(
        0, FaultWindow("worker_pause_long", "w2", T + 1, T + 40, 102)),
    "another-replica-down": lambda o, e, d: d.faults.__setitem__(
        0, FaultWindow("server_kill", "r1", T + 25, T + 27)),
    "outage-before-the-renewal-window": lambda o, e, d: d.faults.__setitem__(
        0, FaultWindow("server_kill", "r0", T - 5, T - 1)),
    # short pauses keep the lease
    "short-pause-lost-the-lease": _short_pause_lost,
    "short-pause-lease-not-in-history": lambda o, e, d: d.faults.__setitem__(
        1, FaultWindow("worker_pause_short", "w3", T + 10, T + 22, 103, (("c", 7),))),
    "short-pause-of-an-idle-worker": lambda o, e, d: d.faults.__setitem__(
        1, FaultWindow("worker_pause_short", "w3", T + 10, T + 22, 103)),
    "short-pause-under-a-heartbeat": lambda o, e, d: d.faults.__setitem__(
        1, FaultWindow("worker_pause_short", "w3", T + 10, T + 15, 103, (("c", 1),))),
    "short-pauses-mostly-ran-long": lambda o, e, d: d.faults.__setitem__(
        1, FaultWindow("worker_pause_short", "w3", T + 10, T + 26, 103, (("c", 1),))),
    # attempts, dependencies, knowledge, events
    "attempts": lambda o, e, d: d.tasks["a"].update(attempts=3),
    "phantom-run": lambda o, e, d: e.append(effect("a", 9, 109, "start", T)),
    "deps": lambda o, e, d: _set(d, "b", 0, started_at=iso(T + 34)),
    "knowledge-gap": lambda o, e, d: d.knowledge["k"].pop(0),
    "knowledge-lost": lambda o, e, d: d.knowledge["k"][1].update(content="other"),
    "event-gap": lambda o, e, d: d.event_seqs.remove(5),
    "no-events": lambda o, e, d: d.event_seqs.clear(),
    # split parents
    "merged-before-a-subtask": lambda o, e, d: d.tasks["p2"].update(status="in_progress"),
    "merged-too-early": lambda o, e, d: d.tasks["p"].update(completed_at=iso(T + 35)),
    "leased-while-waiting": lambda o, e, d: d.tasks["p"].update(
        status="waiting", assigned_to="w2", lease_expires_at=iso(T + 90)),
    "claimed-after-the-split": lambda o, e, d: d.history["p"].append(
        attempt(2, "w2", T + 28, T + 29, "completed", T + 58)),
    "merge-missed": lambda o, e, d: d.tasks["p"].update(status="waiting", completed_at=None),
    "failed-for-nothing": lambda o, e, d: d.tasks["p"].update(status="failed"),
    "cancel-left-a-subtask-open": lambda o, e, d: (
        d.tasks["p"].update(status="cancelled"), d.tasks["p2"].update(status="ready")),
}

CAUGHT_BY = [
    ("lost", "every task completed exactly once"),
    ("missing", "every task completed exactly once"),
    ("twice", "every task completed exactly once"),
    ("never-added", "every task completed exactly once"),
    ("cancelled", "every task completed exactly once"),
    ("failed-unexplained", "every task completed exactly once"),
    ("wrong-result", "result is the completing attempt's own"),
    ("empty-effect-log", "result is the completing attempt's own"),
    ("completing-attempt-never-ended", "result is the completing attempt's own"),
    ("completing-attempt-never-started", "result is the completing attempt's own"),
    ("printed-another-result", "result is the completing attempt's own"),
    ("acked-another-result", "result is the completing attempt's own"),
    ("completed-by-an-older-token", "result is the completing attempt's own"),
    ("late-complete", "every outcome inside its lease"),
    ("no-deadline", "every outcome inside its lease"),
    ("recorded-before-asked", "every outcome inside its lease"),
    ("progress-outside-lease", "every outcome inside its lease"),
    ("dropped", "no finished result dropped"),
    ("stale-accepted", "fencing tokens increase, none stale"),
    ("token-gap", "fencing tokens increase, none stale"),
    ("overlap", "no two leases of a task overlap"),
    ("slow-requeue", "requeue within 1 s of lease expiry"),
    ("early-requeue", "requeue within 1 s of lease expiry"),
    ("expired-without-deadline", "requeue within 1 s of lease expiry"),
    ("no-fault-at-all", "every lost lease explained by a fault"),
    ("killed-after-the-lease-ended", "every lost lease explained by a fault"),
    ("another-worker-paused", "every lost lease explained by a fault"),
    ("another-replica-down", "every lost lease explained by a fault"),
    ("outage-before-the-renewal-window", "every lost lease explained by a fault"),
    ("short-pause-lost-the-lease", "short pause keeps the lease"),
    ("short-pause-lease-not-in-history", "short pause keeps the lease"),
    ("short-pause-of-an-idle-worker", "short pause keeps the lease"),
    ("short-pause-under-a-heartbeat", "short pause keeps the lease"),
    ("short-pauses-mostly-ran-long", "short pause keeps the lease"),
    ("attempts", "attempts counted exactly"),
    ("phantom-run", "attempts counted exactly"),
    ("deps", "no claim before dependencies done"),
    ("knowledge-gap", "knowledge versions contiguous, acked"),
    ("knowledge-lost", "knowledge versions contiguous, acked"),
    ("event-gap", "event sequence contiguous"),
    ("no-events", "event sequence contiguous"),
    ("merged-before-a-subtask", "split parents merge once, never leased"),
    ("merged-too-early", "split parents merge once, never leased"),
    ("leased-while-waiting", "split parents merge once, never leased"),
    ("claimed-after-the-split", "split parents merge once, never leased"),
    ("merge-missed", "split parents merge once, never leased"),
    ("failed-for-nothing", "split parents merge once, never leased"),
    ("cancel-left-a-subtask-open", "split parents merge once, never leased"),
]


def test_every_break_has_a_line_that_catches_it() -> None:
    assert {change for change, _ in CAUGHT_BY} == set(BREAK)


@pytest.mark.parametrize(("change", "caught_by"), CAUGHT_BY)
def test_each_violation_is_caught(change: str, caught_by: str) -> None:
    assert caught_by in broken(change)


def test_a_short_pause_is_excused_only_by_another_fault_on_that_lease() -> None:
    """The lease lost during a short pause stands when a named outage of w3's own replica
    overlapped its renewal window, and is counted and printed as excused."""
    ops, effects, dump = copy.deepcopy(clean())
    _short_pause_lost(ops, effects, dump)
    dump.faults.append(FaultWindow("server_kill", "r0", T + 20, T + 23))
    results = by_name(check(ops, effects, dump))
    pause = results["short pause keeps the lease"]
    assert pause.ok and pause.checked == 1 and pause.excused == 1
    assert pause.excuses == [f"c token 1: server_kill r0@{T + 20:.3f}"]
    assert "server_kill 1" in pause.note
    assert results["every lost lease explained by a fault"].ok


def test_a_failure_stands_only_when_every_attempt_is_explained() -> None:
    ops, effects, dump = copy.deepcopy(clean())
    _failed_b(explained=True)(ops, effects, dump)
    once = by_name(check(ops, effects, dump))["every task completed exactly once"]
    assert once.ok and once.excused == 1 and "b: failed" in once.excuses[0]


def test_a_result_its_worker_died_before_sending_is_excused_by_that_kill() -> None:
    ops, effects, dump = copy.deepcopy(clean())
    effects.append(effect("a", 1, 101, "end", T + 4))  # w1 finished a, then was killed
    dropped = by_name(check(ops, effects, dump))["no finished result dropped"]
    assert dropped.ok and dropped.excused == 1
    effects[-1]["t"] = T + 6  # but not if it lived on after it and never sent it
    assert not by_name(check(ops, effects, dump))["no finished result dropped"].ok


def test_a_result_written_while_the_kill_landed_is_excused() -> None:
    """The nemesis notes a kill as it sends SIGKILL and again once the process is reaped;
    an attempt that ended in between (2.2 ms after the first, measured on a busy host) died
    before it could send its result."""
    ops, effects, dump = copy.deepcopy(clean())
    n, kill = next((n, f) for n, f in enumerate(dump.faults) if f.kind == "worker_kill")
    kill = dump.faults[n] = dataclasses.replace(kill, end=kill.start + 0.05)
    effects.append(effect("a", 1, 101, "end", kill.start + 0.01))
    dropped = by_name(check(ops, effects, dump))["no finished result dropped"]
    assert dropped.ok and dropped.excused == 1
    effects[-1]["t"] = kill.end + 0.01  # not once it was reaped: it could not have run on
    assert not by_name(check(ops, effects, dump))["no finished result dropped"].ok


def test_more_excused_than_checked_fails_the_line() -> None:
    assert not Result("x", checked=2, violations=[], excused=3).ok
    assert Result("x", checked=3, violations=[], excused=3).ok
    assert "more excused than checked" in table([Result("x", 1, [], "", 2)])


def test_judged_from_counts_a_lease_due_in_an_outage_from_its_end() -> None:
    outages = [(T + 10, T + 14)]
    assert judged_from(T + 12, outages) == T + 14  # due inside it
    assert judged_from(T + 10 - REQUEUE_BOUND / 2, outages) == T + 14  # due just before
    assert judged_from(T + 10 - 2 * REQUEUE_BOUND, outages) == T + 10 - 2 * REQUEUE_BOUND
    assert judged_from(T + 15, outages) == T + 15  # due after it
    assert judged_from(T + 12, []) == T + 12


def test_requeue_after_an_outage_is_judged_from_its_end_and_no_later() -> None:
    ops, effects, dump = copy.deepcopy(clean())
    _set(dump, "a", 0, ended_at=iso(T + 34.5))  # reaped 4.5 s late: the server was down
    _set(dump, "a", 1, started_at=iso(T + 34.6))
    ops[3].invoke = ops[3].complete = T + 34.6
    effects[3]["t"] = T + 34.7
    assert "requeue within 1 s of lease expiry" in [
        r.name for r in check(ops, effects, dump) if not r.ok]
    dump.outages = [(T + 29, T + 34)]  # down from T+29 to T+34: judged from T+34
    named = by_name(check(ops, effects, dump))
    assert named["requeue within 1 s of lease expiry"].ok
    assert "1 due during outages" in named["requeue within 1 s of lease expiry"].note
    dump.outages = [(T + 29, T + 33)]  # back at T+33: 1.5 s to reap is too slow
    assert not by_name(check(ops, effects, dump))["requeue within 1 s of lease expiry"].ok


def test_the_server_must_answer_what_the_store_holds() -> None:
    _, _, served = clean()
    _, _, stored = clean()
    assert same_state(served, stored).ok
    stored.history["a"][1]["outcome"] = "failed"
    stored.knowledge["k"][0]["content"] = "changed"
    bad = same_state(served, stored)
    assert len(bad.violations) == 2 and bad.violations[0].startswith("a: ")
    del stored.tasks["c"]
    assert any(v.startswith("c: ") for v in same_state(served, stored).violations)


def test_a_late_requeue_is_held_to_the_store_pace_measured_then() -> None:
    """a's lease was reaped 1.8 s late. With the store answering writes in a median 1.5 s
    at the time (measured from the journal's calls in flight), 1 s + 1.5 s bounds it:
    excused, and printed with the measure; with writes answered at their usual pace, or too
    few to measure by, it is a violation."""
    ops, effects, dump = copy.deepcopy(clean())
    _set(dump, "a", 0, ended_at=iso(T + 31.8), next_at=T + 31.9)
    ops[3].invoke = ops[3].complete = T + 31.9
    effects[3]["t"] = T + 32
    assert "requeue within 1 s of lease expiry" in [
        r.name for r in check(ops, effects, dump) if not r.ok]
    slow = [Op("w9", "heartbeat", T + 29.8 + n / 10, T + 31.3 + n / 10, "ok") for n in range(5)]
    named = by_name(check(ops + slow, effects, dump))["requeue within 1 s of lease expiry"]
    assert named.ok and named.excused == 1 and "median 1.50 s then (6 calls)" in named.excuses[0]
    brisk = [Op("w9", "heartbeat", T + 30 + n / 10, T + 30.05 + n / 10, "ok") for n in range(5)]
    assert not by_name(check(ops + brisk, effects, dump))["requeue within 1 s of lease expiry"].ok
    assert not by_name(check(ops + slow[:1], effects, dump))[
        "requeue within 1 s of lease expiry"].ok
    reads = [Op("w9", "request", o.invoke, o.complete, "ok") for o in slow]  # long-polls
    assert not by_name(check(ops + reads, effects, dump))[
        "requeue within 1 s of lease expiry"].ok


async def test_reading_the_final_state_waits_out_a_slow_store() -> None:
    from unified_swarm.chaos.dump import patient
    from unified_swarm.errors import Unavailable

    tries: list[int] = []

    async def slow_then_fine(x: int) -> int:
        tries.append(x)
        if len(tries) < 3:
            raise Unavailable("Timeout reading")
        return x * 2

    assert await patient(slow_then_fine, 21) == 42 and tries == [21, 21, 21]


def preempted() -> tuple[list[Op], list[dict[str, Any]], Dump]:
    """The clean history plus task pre: w1 held it under token 1, was preempted and let the
    grace run out: the lease was revoked (attempt released, not counted, the token moved on
    to 2); w2 then claimed it with token 3 and completed it. w1's late complete was refused."""
    ops, effects, dump = clean()
    ops[0].data["ids"].append("pre")
    result = {"task": "pre", "token": 3, "pid": 102}
    dump.tasks["pre"] = {"id": "pre", "status": "completed", "attempts": 1, "fencing_token": 3,
                       "result": result, "dependencies": [], "completed_at": iso(T + 50)}
    dump.history["pre"] = [
        attempt(1, "w1", T + 2, T + 20, "released", T + 20, lifecycle.REVOKED),
        attempt(3, "w2", T + 41, T + 50, "completed", T + 71)]
    ops += [Op("w1", "request", T + 2, T + 2, "ok", "pre", 1, "w1"),
            Op("w1", "complete", T + 21, T + 21, "fail", "pre", 1, "w1",
               {"result_digest": digest("late")}),
            Op("w2", "request", T + 41, T + 41, "ok", "pre", 3, "w2"),
            Op("w2", "complete", T + 50, T + 50, "ok", "pre", 3, "w2",
               {"result_digest": digest(result)})]
    effects += [{"task": "pre", "token": 1, "pid": 101, "phase": "start", "t": T + 2.1},
                {"task": "pre", "token": 3, "pid": 102, "phase": "start", "t": T + 41.1},
                {"task": "pre", "token": 3, "pid": 102, "phase": "end", "t": T + 49,
                 "result_digest": digest(result)}]
    return ops, effects, dump


def test_a_revoked_preemption_passes_and_its_late_result_must_be_refused() -> None:
    results = check(*preempted())
    assert all(r.ok for r in results), table(results)
    ops, effects, dump = preempted()
    ops.append(Op("w1", "complete", T + 21, T + 21, "ok", "pre", 1, "w1",
                  {"result_digest": digest("late")}))  # accepted after the revoke
    named = by_name(check(ops, effects, dump))
    assert not named["fencing tokens increase, none stale"].ok
    ops, effects, dump = preempted()
    dump.history["pre"][0]["error"] = "lease expired"  # a gap no revoke explains
    named = by_name(check(ops, effects, dump))
    assert not named["fencing tokens increase, none stale"].ok
    assert not named["attempts counted exactly"].ok


# -- emergencies, preemptions, releases, merged content -------------------------------------

V_LATE = {"task": "v", "token": 1, "pid": 103}  # what v's preempted attempt printed anyway
OPERATED = {"v": {"task": "v", "token": 2, "pid": 102}, "e1": {"task": "e1", "token": 1,
                                                              "pid": 103},
            "r": {"task": "r", "token": 2, "pid": 102}}


def _done(tid: str, attempts: int, token: int, at: float, **extra: Any) -> dict[str, Any]:
    return {"id": tid, "status": "completed", "attempts": attempts, "fencing_token": token,
            "result": OPERATED[tid], "dependencies": [], "completed_at": iso(at),
            "preemptions": 0, **extra}


def _ended(tid: str, token: int, pid: int, start: float, end: float) -> list[dict[str, Any]]:
    return [{"task": tid, "token": token, "pid": pid, "phase": "start", "t": start},
            {"task": tid, "token": token, "pid": pid, "phase": "end", "t": end,
             "result_digest": digest(OPERATED.get(tid) if token == OPERATED.get(
                 tid, {}).get("token") else V_LATE)}]


def operated() -> tuple[list[Op], list[dict[str, Any]], Dump]:
    """The clean history plus the operator's operations. Emergency e1 (with interrupt)
    preempted v, held by w3 under token 1: w3 gave it back (its executor's thread ran on
    and printed a result, rightly never sent), took e1 and completed it; w2 completed v
    later. The operator's session op1 claimed r (max_attempts 1), released it with a note,
    and its late complete was refused; w2 completed r. The run's max_preemptions is 2."""
    ops, effects, dump = clean()
    ops[0].data["ids"] += ["v", "r"]
    dump.max_preemptions = 2
    dump.tasks.update(
        v=_done("v", 1, 2, T + 43, preemptions=1),
        e1=_done("e1", 1, 1, T + 4.3, priority=lifecycle.EMERGENCY_PRIORITY),
        r=_done("r", 1, 2, T + 45, max_attempts=1))
    dump.history.update(
        v=[attempt(1, "w3", T + 2, T + 4, "released", T + 5, lifecycle.RELEASED_PREEMPTED),
           attempt(2, "w2", T + 41, T + 43, "completed", T + 71)],
        e1=[attempt(1, "w3", T + 4.1, T + 4.3, "completed", T + 34)],
        r=[attempt(1, "op1", T + 3, T + 3.5, "released", T + 33, lifecycle.RELEASED_BY_CHOICE),
           attempt(2, "w2", T + 44, T + 45, "completed", T + 74)])
    ops += [
        Op("w3", "request", T + 2, T + 2, "ok", "v", 1, "w3"),
        Op("operator", "emergency", T + 3, T + 3.1, "ok", "e1", None, None,
           {"ids": ["e1"], "interrupt": True, "assigned_to": None,
            "preempted": {"task_id": "v", "session_id": "w3"}}),
        Op("w3", "release", T + 3.9, T + 4, "ok", "v", 1, "w3"),
        Op("w3", "request", T + 4.1, T + 4.1, "ok", "e1", 1, "w3"),
        Op("w3", "complete", T + 4.29, T + 4.31, "ok", "e1", 1, "w3",
           {"result_digest": digest(OPERATED["e1"])}),
        Op("w2", "request", T + 41, T + 41, "ok", "v", 2, "w2"),
        Op("w2", "complete", T + 42.9, T + 43.1, "ok", "v", 2, "w2",
           {"result_digest": digest(OPERATED["v"])}),
        Op("op1", "claim", T + 3, T + 3, "ok", "r", 1, "op1"),
        Op("op1", "release", T + 3.4, T + 3.5, "ok", "r", 1, "op1"),
        Op("op1", "complete", T + 3.6, T + 3.7, "fail", "r", 1, "op1",
           {"result_digest": digest({"late": 1})}),
        Op("w2", "request", T + 44, T + 44, "ok", "r", 2, "w2"),
        Op("w2", "complete", T + 44.9, T + 45.1, "ok", "r", 2, "w2",
           {"result_digest": digest(OPERATED["r"])}),
    ]
    effects += [*_ended("v", 1, 103, T + 2.1, T + 4.5), *_ended("e1", 1, 103, T + 4.15, T + 4.25),
                *_ended("v", 2, 102, T + 41.1, T + 42.8), *_ended("r", 2, 102, T + 44.1, T + 44.8)]
    return ops, effects, dump


def _op(ops: list[Op], name: str, task: str, token: int | None = None) -> Op:
    return next(o for o in ops if o.op == name and o.task == task
                and (token is None or o.token == token))


def _late_result_applied(ops: list[Op], effects: list[dict[str, Any]], dump: Dump) -> None:
    """v's stored result is the one its preempted attempt printed after giving it back."""
    dump.tasks["v"]["result"] = V_LATE


OPERATED_BREAK: dict[str, Any] = {
    "emergency-never-completed": lambda o, e, d: (
        d.tasks["e1"].update(status="ready"), d.history["e1"].clear()),
    "emergency-completed-twice": lambda o, e, d: d.history["e1"].insert(
        0, attempt(1, "w2", T + 3.2, T + 3.3, "completed", T + 33)),
    "emergency-not-in-its-class": lambda o, e, d: d.tasks["e1"].update(priority=10),
    "victim-not-marked": lambda o, e, d: d.tasks["v"].update(preemptions=0),
    "victim-never-completed": lambda o, e, d: (
        d.tasks["v"].update(status="ready"), d.history["v"].pop()),
    "victim-held-by-another-session": lambda o, e, d: _op(o, "emergency", "e1").data.update(
        preempted={"task_id": "v", "session_id": "w2"}),
    "preempted-past-the-limit": lambda o, e, d: d.tasks["v"].update(preemptions=3),
    "interrupt-outlived-its-emergency": lambda o, e, d: setattr(
        d, "interrupt", {"reason": "emergency: e1", "task_id": "e1"}),
    "late-complete-accepted": lambda o, e, d: setattr(_op(o, "complete", "r", 1),
                                                      "outcome", "ok"),
    "late-progress-accepted": lambda o, e, d: o.append(
        Op("w3", "progress", T + 4.4, T + 4.4, "ok", "v", 1, "w3")),
    "late-result-applied": _late_result_applied,
    "release-counted": lambda o, e, d: d.tasks["r"].update(attempts=2),
    "failed-by-a-release": lambda o, e, d: (
        d.tasks["r"].update(status="failed", result=None), d.history["r"].pop()),
    "given-back-but-expired": lambda o, e, d: _set(d, "v", 0, outcome="expired"),
}

OPERATED_CAUGHT_BY = [
    ("emergency-never-completed", "emergencies complete once, victims too"),
    ("emergency-completed-twice", "emergencies complete once, victims too"),
    ("emergency-not-in-its-class", "emergencies complete once, victims too"),
    ("victim-not-marked", "emergencies complete once, victims too"),
    ("victim-never-completed", "emergencies complete once, victims too"),
    ("victim-held-by-another-session", "emergencies complete once, victims too"),
    ("preempted-past-the-limit", "emergencies complete once, victims too"),
    ("interrupt-outlived-its-emergency", "emergencies complete once, victims too"),
    ("late-complete-accepted", "given back: not counted, late refused"),
    ("late-progress-accepted", "given back: not counted, late refused"),
    ("late-result-applied", "given back: not counted, late refused"),
    ("release-counted", "given back: not counted, late refused"),
    ("failed-by-a-release", "given back: not counted, late refused"),
    ("given-back-but-expired", "given back: not counted, late refused"),
]


def test_the_operated_history_passes_with_every_operation_counted() -> None:
    results = check(*operated())
    assert all(r.ok for r in results), table(results)
    named = by_name(results)
    em = named["emergencies complete once, victims too"]
    assert em.checked == 1 and "1 preempted" in em.note and "1 with interrupt" in em.note
    back = named["given back: not counted, late refused"]
    assert back.checked == 2 and "1 late outcomes refused" in back.note
    # v's preempted attempt printed a result that was rightly never sent
    assert "1 given back, not sent" in named["no finished result dropped"].note
    assert len(results) == 16


def test_every_operated_break_has_a_line_that_catches_it() -> None:
    assert {change for change, _ in OPERATED_CAUGHT_BY} == set(OPERATED_BREAK)


@pytest.mark.parametrize(("change", "caught_by"), OPERATED_CAUGHT_BY)
def test_each_operated_violation_is_caught(change: str, caught_by: str) -> None:
    ops, effects, dump = copy.deepcopy(operated())
    OPERATED_BREAK[change](ops, effects, dump)
    assert caught_by in [r.name for r in check(ops, effects, dump) if not r.ok]


def test_a_victim_split_after_its_preemption_completes_by_its_merge() -> None:
    """v, given back for e1, was split by its next holder: it completes with the merge of
    its subtasks, no attempt of its own completed it (a CI campaign met this). Not
    completed, it is still caught."""
    ops, effects, dump = copy.deepcopy(operated())
    _set(dump, "v", 1, outcome="split")
    line = "emergencies complete once, victims too"
    assert by_name(check(ops, effects, dump))[line].ok
    dump.tasks["v"]["status"] = "waiting"
    assert not by_name(check(ops, effects, dump))[line].ok


def test_a_failure_stands_when_its_counted_attempts_are_explained() -> None:
    """r failed for good after its one counted attempt was lost to a kill: the release
    before it cost nothing, and needs no fault to explain it."""
    ops, effects, dump = copy.deepcopy(operated())
    dump.tasks["r"].update(status="failed", result=None, attempts=1)
    dump.history["r"][1].update(outcome="expired", ended_at=iso(T + 74.1), error=None)
    dump.faults.append(FaultWindow("worker_kill", "w2", T + 44.5, T + 44.5, 102))
    del ops[-1]
    effects[-1:] = []
    named = by_name(check(ops, effects, dump))
    once = named["every task completed exactly once"]
    assert once.ok and once.excused == 1 and "r: failed: 1 attempts" in once.excuses[0]
    assert named["given back: not counted, late refused"].ok


MERGE_BREAK: dict[str, Any] = {
    "merged-a-subtask-missing": lambda d: d.tasks["p"].update(result=[RESULTS["p1"]]),
    "merged-a-result-twice": lambda d: d.tasks["p"].update(
        result=[RESULTS["p1"], RESULTS["p1"]]),
    "merged-out-of-order": lambda d: d.tasks["p"].update(
        result=[RESULTS["p2"], RESULTS["p1"]]),
    "merged-another-result": lambda d: d.tasks["p"].update(
        result=[RESULTS["p1"], {"task": "p2", "token": 9}]),
    "merged-a-list-for-an-object": lambda d: None,  # the split asked for "object"
}


@pytest.mark.parametrize("change", sorted(MERGE_BREAK))
def test_a_merge_not_exactly_the_subtasks_results_is_caught(change: str) -> None:
    ops, effects, dump = copy.deepcopy(clean())
    MERGE_BREAK[change](dump)
    if change == "merged-a-list-for-an-object":
        _op(ops, "split", "p").data["merge"] = "object"
    assert "split parents merge once, never leased" in [
        r.name for r in check(ops, effects, dump) if not r.ok]


def test_an_object_merge_is_judged_by_subtask_id() -> None:
    ops, effects, dump = copy.deepcopy(clean())
    _op(ops, "split", "p").data["merge"] = "object"
    dump.tasks["p"]["result"] = {"p1": RESULTS["p1"], "p2": RESULTS["p2"]}
    assert by_name(check(ops, effects, dump))["split parents merge once, never leased"].ok
    del _op(ops, "split", "p").data["merge"]  # a journal that does not say: by its shape
    assert by_name(check(ops, effects, dump))["split parents merge once, never leased"].ok
