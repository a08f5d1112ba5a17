"""Lower bounds, HEFT and the schedule checker (pure; scipy for the LP bound)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from unified_swarm.core.bounds import (
    Durations,
    Node,
    Placement,
    Schedule,
    critical_path,
    heft,
    lower_bounds,
    lp_load_bound,
    schedule_errors,
    topological,
    upward_ranks,
)
from unified_swarm.core.dags import chain_heavy_dag, layered_dag


def same_everywhere(nodes: list[Node], workers: int) -> Durations:
    return {n.id: {f"w{i}": n.work for i in range(workers)} for n in nodes}


def chain(n: int) -> list[Node]:
    return [Node(f"c{i}", "t", 1.0 + i, (f"c{i - 1}",) if i else ()) for i in range(n)]


def random_case(seed: int) -> tuple[list[Node], Durations, dict[str, int]]:
    """A random DAG on workers of random speeds, some unable to run some types, some with
    two slots."""
    rng = random.Random(seed)
    gen = layered_dag if seed % 2 else chain_heavy_dag
    nodes = gen(seed, rng.randint(5, 60))
    workers = [f"w{i}" for i in range(rng.randint(1, 5))]
    speed = {(w, t): rng.uniform(1, 4) for w in workers for t in ("t0", "t1", "t2", "t3")}
    durations: dict[str, dict[str, float]] = {}
    for n in nodes:
        able = [w for w in workers if rng.random() < 0.8] or [rng.choice(workers)]
        durations[n.id] = {w: n.work * speed[w, n.type] for w in able}
    slots = {w: rng.choice((1, 1, 2)) for w in workers}
    return nodes, durations, slots


def test_topological_orders_dependencies_first_and_refuses_bad_dags() -> None:
    nodes = [Node("b", "t", 1, ("a",)), Node("a", "t", 1), Node("c", "t", 1, ("a", "b"))]
    assert [n.id for n in topological(nodes)] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="cycle"):
        topological([Node("a", "t", 1, ("b",)), Node("b", "t", 1, ("a",))])
    with pytest.raises(ValueError, match="unknown"):
        topological([Node("a", "t", 1, ("zz",))])
    with pytest.raises(ValueError, match="duplicate"):
        topological([Node("a", "t", 1), Node("a", "t", 2)])


def test_critical_path_takes_each_task_at_its_fastest_worker() -> None:
    nodes = chain(4)  # works 1, 2, 3, 4
    durations = {n.id: {"slow": 3 * n.work, "fast": n.work} for n in nodes}
    assert critical_path(nodes, durations) == pytest.approx(10)
    loose = [Node(f"x{i}", "t", i + 1.0) for i in range(3)]
    assert critical_path(loose, same_everywhere(loose, 2)) == pytest.approx(3)


def test_lp_bound_is_total_work_over_capacity_on_identical_workers() -> None:
    nodes = [Node(f"x{i}", "t", 1.0) for i in range(12)]
    assert lp_load_bound(nodes, same_everywhere(nodes, 4)) == pytest.approx(3, rel=1e-6)
    # one worker with 2 slots holds as much as two workers
    one = {n.id: {"w": 1.0} for n in nodes}
    assert lp_load_bound(nodes, one, {"w": 2}) == pytest.approx(6, rel=1e-6)


def test_lp_bound_uses_each_task_where_it_is_fast() -> None:
    # total work / workers with mean durations would say (1+3)/2 * 2 / 2 = 2; the truth is 1
    nodes = [Node("a", "t", 1), Node("b", "t", 1)]
    durations = {"a": {"w0": 1.0, "w1": 3.0}, "b": {"w0": 3.0, "w1": 1.0}}
    assert lp_load_bound(nodes, durations) == pytest.approx(1, rel=1e-6)
    # a task only w1 can run loads w1
    only = {"a": {"w1": 2.0}, "b": {"w0": 0.5, "w1": 0.5}}
    assert lp_load_bound(nodes, only) == pytest.approx(2, rel=1e-6)


def test_a_task_no_worker_can_run_is_refused() -> None:
    nodes = [Node("a", "t", 1)]
    with pytest.raises(ValueError, match="no worker"):
        critical_path(nodes, {"a": {}})
    with pytest.raises(ValueError, match="no worker"):
        lp_load_bound(nodes, {"a": {}})
    with pytest.raises(ValueError, match="no worker"):
        heft(nodes, {"a": {}})


def test_upward_rank_is_the_work_left_on_the_longest_path() -> None:
    nodes = [Node("a", "t", 1), Node("b", "t", 1, ("a",)), Node("c", "t", 1, ("a",)),
             Node("d", "t", 1, ("c",))]
    ranks = upward_ranks(nodes, {"a": 1, "b": 5, "c": 2, "d": 2})
    assert ranks == {"a": 6, "b": 5, "c": 4, "d": 2}


def test_heft_waits_for_a_fast_busy_worker_rather_than_take_a_slow_idle_one() -> None:
    nodes = [Node("a", "t", 1), Node("b", "t", 1)]
    durations = {"a": {"fast": 1.0, "slow": 10.0}, "b": {"fast": 1.0, "slow": 10.0}}
    s = heft(nodes, durations)
    assert {p.worker for p in s.placements.values()} == {"fast"}
    assert s.makespan == pytest.approx(2)


def test_heft_meets_the_critical_path_on_a_chain() -> None:
    nodes = chain(5)
    durations = {n.id: {"w0": n.work, "w1": 2 * n.work} for n in nodes}
    s = heft(nodes, durations)
    assert s.makespan == pytest.approx(critical_path(nodes, durations))
    assert schedule_errors(nodes, durations, s) == []


def test_heft_fills_idle_gaps_insertion() -> None:
    # HEFT places c (rank 3) before d (rank 2); c waits for b until 4, d goes in the gap
    nodes = [Node("b", "t", 1), Node("c", "t", 1, ("b",)), Node("d", "t", 1)]
    durations = {"b": {"w0": 4.0}, "c": {"w1": 3.0}, "d": {"w1": 2.0}}
    s = heft(nodes, durations)
    assert s.placements["d"].start == pytest.approx(0)
    assert s.placements["c"].start == pytest.approx(4)
    assert schedule_errors(nodes, durations, s) == []


@pytest.mark.parametrize("seed", range(40))
def test_heft_is_valid_and_never_beats_the_lower_bounds(seed: int) -> None:
    nodes, durations, slots = random_case(seed)
    s = heft(nodes, durations, slots)
    assert schedule_errors(nodes, durations, s, slots) == []
    b = lower_bounds(nodes, durations, slots)
    assert b.critical_path <= s.makespan + 1e-9
    assert b.load <= s.makespan + 1e-9
    assert b.lower == max(b.critical_path, b.load)


def test_heft_is_deterministic() -> None:
    nodes, durations, slots = random_case(7)
    assert heft(nodes, durations, slots) == heft(nodes, durations, slots)


def test_empty_dag() -> None:
    assert lower_bounds([], {}).lower == 0
    assert heft([], {}).makespan == 0


# The checker is trusted only once each invariant it guards has been broken in front of it.

def valid() -> tuple[list[Node], Durations, Schedule]:
    nodes = [Node("a", "t", 1), Node("b", "t", 1, ("a",)), Node("c", "t", 1)]
    durations = {"a": {"w0": 1.0}, "b": {"w0": 1.0, "w1": 2.0}, "c": {"w0": 2.0, "w1": 2.0}}
    s = Schedule({"a": Placement("a", "w0", 0, 0.0, 1.0), "b": Placement("b", "w0", 0, 1.0, 2.0),
                  "c": Placement("c", "w1", 0, 3.0, 5.0)})
    assert schedule_errors(nodes, durations, s) == []
    return nodes, durations, s


def moved(s: Schedule, key: str, **change: object) -> Schedule:
    placements = dict(s.placements)
    placements[key] = dataclasses.replace(placements[key], **change)  # type: ignore[arg-type]
    return Schedule(placements)


def test_checker_catches_a_missing_and_an_unknown_task() -> None:
    nodes, durations, s = valid()
    gone = Schedule({k: v for k, v in s.placements.items() if k != "c"})
    assert schedule_errors(nodes, durations, gone) == ["c is not scheduled"]
    extra = Schedule({**s.placements, "z": Placement("z", "w0", 0, 5, 6)})
    assert schedule_errors(nodes, durations, extra) == ["z is not in the DAG"]


def test_checker_catches_a_worker_that_cannot_run_the_task() -> None:
    nodes, durations, s = valid()
    bad = moved(s, "a", worker="w1")
    assert schedule_errors(nodes, durations, bad) == ["a is on w1, which cannot run it"]


def test_checker_catches_a_wrong_duration_and_a_start_before_zero() -> None:
    nodes, durations, s = valid()
    short = moved(s, "c", end=4.0)
    assert schedule_errors(nodes, durations, short) == ["c lasts 1 s on w1, not 2 s"]
    early = moved(s, "c", start=-2.0, end=0.0)
    assert schedule_errors(nodes, durations, early) == ["c starts before time 0"]


def test_checker_catches_a_task_that_starts_before_its_dependency_ends() -> None:
    nodes, durations, s = valid()
    bad = moved(s, "b", worker="w1", start=0.5, end=2.5)
    assert schedule_errors(nodes, durations, bad) == [
        "b starts at 0.5 before its dependency a ends at 1"]


def test_checker_catches_two_tasks_at_once_on_one_slot() -> None:
    nodes, durations, s = valid()
    clash = moved(s, "c", worker="w0", start=0.5, end=2.5)
    assert schedule_errors(nodes, durations, clash) == [
        "a and c overlap on w0 slot 0", "c and b overlap on w0 slot 0"]
    # on a second slot of the same worker it is fine
    apart = moved(s, "c", worker="w0", slot=1, start=0.5, end=2.5)
    assert schedule_errors(nodes, durations, apart, {"w0": 2}) == []


def test_checker_catches_a_slot_the_worker_does_not_have() -> None:
    nodes, durations, s = valid()
    slot = moved(s, "c", slot=1)
    assert schedule_errors(nodes, durations, slot) == [
        "c is on slot 1 of w1, which has no such slot"]
    assert schedule_errors(nodes, durations, slot, {"w1": 2}) == []


def test_checker_catches_a_placement_filed_under_another_task() -> None:
    nodes, durations, s = valid()
    bad = moved(s, "c", task="a")
    assert schedule_errors(nodes, durations, bad) == ["c's placement names a"]
