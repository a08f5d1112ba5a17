"""What bench/swarm.py counts, on crafted side effects and histories (no processes)."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pytest

import swarm_task
import swarm_workloads as wl
from swarm_run import claim_gaps, outcome, reported_p99
from unified_swarm.core.bounds import Node

NODES = [Node("a", "t0", 1.0), Node("b", "t0", 1.0, ("a",)), Node("c", "t1", 1.0)]


def run(start: float, end: float, ok: bool = True, session: str = "w0") -> dict[str, Any]:
    return {"start": start, "end": end, "ok": ok, "session": session}


def test_clean_runs_make_no_duplicates_and_no_waste() -> None:
    runs = {"a": [run(100.5, 101)], "b": [run(101, 102)], "c": [run(100.2, 103, session="w1")]}
    o = outcome("fifo", 1, NODES, 100.0, runs, (0.01, "workers"))
    assert (o.done, o.duplicates, o.wasted, o.executions) == (3, 0, 0, 3)
    assert o.makespan == pytest.approx(3.0)
    assert o.busy == pytest.approx(0.5 + 1 + 2.8)


def test_a_task_run_to_success_twice_is_a_duplicate_and_a_failure_is_waste() -> None:
    runs = {"a": [run(100, 101), run(100.1, 101.5, session="w1")],
            "b": [run(101, 101.5, ok=False), run(101.5, 102)], "c": [run(100, 100.5)]}
    o = outcome("loose", 1, NODES, 100.0, runs, (None, "agents"))
    assert (o.duplicates, o.wasted, o.executions, o.done) == (1, 2, 5, 3)
    assert o.makespan == pytest.approx(2.0)  # the first success of each task counts


def test_a_task_that_never_succeeded_leaves_no_makespan() -> None:
    runs = {"a": [run(100, 101)], "b": [run(101, 102, ok=False)]}
    o = outcome("fifo", 1, NODES, 100.0, runs, (None, "workers"))
    assert o.makespan is None
    assert (o.done, o.wasted) == (1, 1)


def iso(t: float) -> str:
    return f"1970-01-01T00:{int(t) // 60:02d}:{t % 60:06.3f}Z"


def attempt(n: int, session: str, start: float, end: float) -> dict[str, Any]:
    return {"attempt": n, "session_id": session, "started_at": iso(start),
            "ended_at": iso(end), "outcome": "completed"}


def detail(created: float, completed: float, *attempts: dict[str, Any]) -> dict[str, Any]:
    return {"task": {"created_at": iso(created), "completed_at": iso(completed)},
            "history": list(attempts)}


def test_claim_gaps_count_only_moments_when_a_task_was_waiting() -> None:
    nodes = [Node("a", "t", 1), Node("b", "t", 1), Node("c", "t", 1, ("a",))]
    details = {
        "a": detail(0, 1.0, attempt(1, "w0", 0.010, 1.0)),
        "b": detail(0, 1.5, attempt(1, "w1", 0.020, 1.5)),
        # c became ready when a completed (1.0); w0 took it 25 ms later
        "c": detail(0, 9.0, attempt(1, "w0", 1.025, 2.0)),
    }
    assert claim_gaps(nodes, details) == [pytest.approx(0.025)]
    # w1 ended at 1.5 with nothing waiting (c was claimed at 1.025): its wait until d was
    # submitted at 6.0 is no decision latency
    details["d"] = detail(6.0, 8.0, attempt(1, "w1", 7.0, 8.0))
    nodes.append(Node("d", "t", 1))
    assert claim_gaps(nodes, details) == [pytest.approx(0.025)]
    # had d waited since 1.0, w1's 5.5 s before taking it would count
    details["d"] = detail(1.0, 8.0, attempt(1, "w1", 7.0, 8.0))
    assert sorted(claim_gaps(nodes, details)) == [pytest.approx(0.025), pytest.approx(5.5)]


def test_a_task_another_worker_took_meanwhile_was_not_waiting_for_this_one() -> None:
    nodes = [Node("a", "t", 1), Node("b", "t", 1), Node("c", "t", 1)]
    details = {
        # w0 ends a at 1.0 while b waits, but w1 takes b 1 ms later; w0's next claim (c, at
        # 3.0) waited for new work (c came at 2.5), not for a decision
        "a": detail(0, 1.0, attempt(1, "w0", 0.0, 1.0)),
        "b": detail(0.5, 2.0, attempt(1, "w1", 1.001, 2.0)),
        "c": detail(2.5, 4.0, attempt(1, "w0", 3.0, 4.0)),
    }
    assert claim_gaps(nodes, details) == []


def test_a_retried_task_is_waiting_again_from_its_failed_attempt() -> None:
    nodes = [Node("a", "t", 1)]
    details = {"a": detail(0, 3.0, attempt(1, "w0", 0.0, 1.0), attempt(2, "w0", 1.004, 3.0))}
    assert claim_gaps(nodes, details) == [pytest.approx(0.004)]


@pytest.mark.parametrize(("info", "seconds"), [
    ({"policy": "learned", "decision_latency": {"p50_ms": 1, "p99_ms": 3.5}}, 0.0035),
    ({"decision_latency": {"p99": 0.004}}, 0.004),
    ({"decision_latency_ms": {"p99": 5}}, 0.005),
    ({"decisions": {"latency": {"p99_s": 0.002}}}, 0.002),
    ({"policy": "fifo"}, None),
    (None, None),
])
def test_reported_p99_reads_the_shapes_a_scheduler_endpoint_may_use(
        info: dict[str, Any] | None, seconds: float | None) -> None:
    got = reported_p99(info)
    assert got == (None if seconds is None else pytest.approx(seconds))


def test_noise_is_a_function_of_seed_and_key_and_lognormal() -> None:
    assert swarm_task.noise(1, "a", 0.2) == swarm_task.noise(1, "a", 0.2)
    assert swarm_task.noise(1, "a", 0.2) != swarm_task.noise(2, "a", 0.2)
    logs = [math.log(swarm_task.noise(7, f"k{i}", 0.3)) for i in range(4000)]
    assert statistics.mean(logs) == pytest.approx(0, abs=0.02)
    assert statistics.stdev(logs) == pytest.approx(0.3, rel=0.05)
    assert swarm_task.noise(7, "k", 0.0) == 1.0


def test_failures_come_at_the_asked_rate_per_attempt() -> None:
    hits = sum(swarm_task.fails(3, f"k{i}", "w0", "1", 0.3) for i in range(4000))
    assert hits / 4000 == pytest.approx(0.3, abs=0.03)
    assert not any(swarm_task.fails(3, f"k{i}", "w0", "1", 0.0) for i in range(100))


def test_profile_speeds_differ_exactly_spread_times_per_type() -> None:
    p = wl.make_profile(4, 6, ["t0", "t1", "t2"], 4.0, failing=2, fail_rate=0.25)
    assert p == wl.make_profile(4, 6, ["t0", "t1", "t2"], 4.0, failing=2, fail_rate=0.25)
    for t in ("t0", "t1", "t2"):
        col = [p.factors[w][t] for w in p.workers]
        assert min(col) == pytest.approx(1.0)
        assert max(col) == pytest.approx(4.0)
    assert [p.fail[w] for w in p.workers] == [0, 0, 0, 0, 0.25, 0.25]


def test_true_durations_and_the_oracle_prior_follow_the_profile() -> None:
    p = wl.make_profile(1, 2, ["t0", "t1"], 3.0)
    d = wl.true_durations(NODES, p, seed=9, sigma=0.2)
    assert d["a"]["w0"] / d["a"]["w1"] == pytest.approx(p.factors["w0"]["t0"]
                                                        / p.factors["w1"]["t0"])
    assert d["a"]["w0"] == pytest.approx(p.factors["w0"]["t0"] * swarm_task.noise(9, "a", 0.2))
    prior = wl.oracle_prior(NODES, p, sigma=0.2)
    assert set(prior["sessions"]) == {"w0", "w1"}
    assert prior["sessions"]["w1"]["t1"] == pytest.approx(
        p.factors["w1"]["t1"] * math.exp(0.02))


def test_type_names_become_capability_names() -> None:
    assert wl.type_name("individuals_merge") == "individuals-merge"
    assert wl.type_name("__") == "task"
