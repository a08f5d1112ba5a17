"""The checker passes a clean history and catches each kind of violation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from unified_swarm.chaos.checker import Dump, check, table
from unified_swarm.chaos.history import Op
from unified_swarm.jsonutil import digest
from unified_swarm.models import iso

T = 1_800_000_000.0


def attempt(token: int, session: str, start: float, end: float | None, outcome: str | None,
            deadline: float | None = None) -> dict[str, Any]:
    return {"fencing_token": token, "session_id": session, "started_at": iso(start),
            "ended_at": iso(end), "outcome": outcome, "lease_expires_at": iso(deadline),
            "attempt": token}


def clean() -> tuple[list[Op], list[dict[str, Any]], Dump]:
    """Task a: w1 claimed, hung, expired at T+30 (reaped 0.2 s later); w2 completed it.
    Task b depends on a and ran after it. Knowledge v1, v2; events 1..9."""
    result = {"ok": True}
    tasks = {
        "a": {"id": "a", "status": "completed", "attempts": 2, "fencing_token": 2,
              "result": result, "dependencies": [], "completed_at": iso(T + 35)},
        "b": {"id": "b", "status": "completed", "attempts": 1, "fencing_token": 1,
              "result": None, "dependencies": ["a"], "completed_at": iso(T + 40)},
    }
    history = {
        "a": [attempt(1, "w1", T, T + 30.2, "expired", T + 30),
              attempt(2, "w2", T + 30.3, T + 35, "completed", T + 60)],
        "b": [attempt(1, "w1", T + 36, T + 40, "completed", T + 66)],
    }
    ops = [
        Op("submitter", "add", T - 1, T - 0.9, "ok", data={"ids": ["a", "b"]}),
        Op("w1", "request", T, T, "ok", "a", 1, "w1"),
        Op("w2", "request", T + 30.3, T + 30.3, "ok", "a", 2, "w2"),
        Op("w2", "progress", T + 31, T + 31, "ok", "a", 2, "w2"),
        Op("w2", "complete", T + 35, T + 35, "ok", "a", 2, "w2",
           {"result_digest": digest(result)}),
        Op("w1", "complete", T + 36, T + 36, "fail", "a", 1, "w1",
           {"result_digest": digest("late")}),
        Op("w1", "request", T + 36, T + 36, "ok", "b", 1, "w1"),
        Op("w1", "complete", T + 40, T + 40, "info", "b", 1, "w1",
           {"result_digest": digest(None)}),
        Op("x", "knowledge_put", T, T, "ok", data={"topic": "k", "version": 2,
                                                   "content_digest": digest("v2")}),
    ]
    effects = [{"task": "a", "token": 1, "phase": "start"},
               {"task": "a", "token": 2, "phase": "start"},
               {"task": "b", "token": 1, "phase": "start"}]
    knowledge = {"k": [{"version": 1, "content": "v1"}, {"version": 2, "content": "v2"}]}
    return ops, effects, Dump(tasks, history, knowledge, list(range(1, 10)))


def test_clean_history_passes() -> None:
    results = check(*clean())
    assert all(r.ok for r in results), table(results)
    by_name = {r.name: r for r in results}
    assert "max 200 ms" in by_name["requeue within 1 s of lease expiry"].note


def broken(change: str) -> list[str]:
    ops, effects, dump = copy.deepcopy(clean())
    if change == "lost":
        dump.tasks["b"]["status"] = "ready"
    elif change == "missing":
        del dump.tasks["b"], dump.history["b"]
    elif change == "twice":
        dump.history["a"][0]["outcome"] = "completed"
    elif change == "wrong-result":
        dump.tasks["a"]["result"] = {"ok": False}
    elif change == "stale-accepted":
        ops[5].outcome = "ok"
    elif change == "token-gap":
        dump.history["a"][1]["fencing_token"] = 3
    elif change == "overlap":
        dump.history["a"][0]["ended_at"] = iso(T + 31)
    elif change == "slow-requeue":
        dump.history["a"][0]["ended_at"] = iso(T + 30 + 1.5)
        dump.history["a"][1]["started_at"] = iso(T + 31.6)
    elif change == "early-requeue":
        dump.history["a"][0]["ended_at"] = iso(T + 29)
    elif change == "attempts":
        dump.tasks["a"]["attempts"] = 3
    elif change == "phantom-run":
        effects.append({"task": "a", "token": 9, "phase": "start"})
    elif change == "deps":
        dump.history["b"][0]["started_at"] = iso(T + 34)
    elif change == "knowledge-gap":
        dump.knowledge["k"].pop(0)
    elif change == "knowledge-lost":
        dump.knowledge["k"][1]["content"] = "other"
    elif change == "event-gap":
        dump.event_seqs.remove(5)
    return [r.name for r in check(ops, effects, dump) if not r.ok]


@pytest.mark.parametrize(("change", "caught_by"), [
    ("lost", "no task lost"),
    ("missing", "no task lost"),
    ("twice", "no task completed twice"),
    ("wrong-result", "stored result is the acknowledged one"),
    ("stale-accepted", "fencing tokens increase, none stale"),
    ("token-gap", "fencing tokens increase, none stale"),
    ("overlap", "no two leases of a task overlap"),
    ("slow-requeue", "requeue within 1 s of lease expiry"),
    ("early-requeue", "requeue within 1 s of lease expiry"),
    ("attempts", "attempts counted exactly"),
    ("phantom-run", "attempts counted exactly"),
    ("deps", "no claim before dependencies done"),
    ("knowledge-gap", "knowledge versions contiguous, acked"),
    ("knowledge-lost", "knowledge versions contiguous, acked"),
    ("event-gap", "event sequence contiguous"),
])
def test_each_violation_is_caught(change: str, caught_by: str) -> None:
    assert caught_by in broken(change)
