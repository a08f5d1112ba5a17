"""Upward ranks kept incrementally agree with a from-scratch computation."""

from __future__ import annotations

import random

import pytest

from unified_swarm.core.ranks import Ranks


def scratch(edges: dict[str, list[str]], weight: dict[str, float]) -> dict[str, float]:
    """rank(t) = w(t) + max rank of the tasks depending on t, computed naively."""
    children: dict[str, list[str]] = {t: [] for t in edges}
    for t, deps in edges.items():
        for d in deps:
            if d in children:
                children[d].append(t)
    memo: dict[str, float] = {}

    def rank(t: str) -> float:
        if t not in memo:
            memo[t] = weight[t] + max((rank(c) for c in children[t]), default=0.0)
        return memo[t]

    return {t: rank(t) for t in edges}


def test_a_chain_ranks_its_head_highest() -> None:
    r = Ranks()
    r.add("a", "x", [], 1.0)
    r.add("b", "x", ["a"], 2.0)
    r.add("c", "y", ["b"], 3.0)
    assert (r.rank("a"), r.rank("b"), r.rank("c")) == (6.0, 5.0, 3.0)
    r.remove("a")
    assert r.rank("b") == 5.0 and "a" not in r


@pytest.mark.parametrize("seed", range(5))
def test_incremental_ranks_match_scratch_on_random_dags(seed: int) -> None:
    rng = random.Random(seed)
    r = Ranks()
    edges: dict[str, list[str]] = {}
    weight: dict[str, float] = {}
    caps = {"x": 1.0, "y": 3.0, "z": 0.5}
    for n in range(200):
        t = f"t{n}"
        deps = rng.sample(sorted(edges), k=min(len(edges), rng.randint(0, 3)))
        cap = rng.choice(sorted(caps))
        edges[t], weight[t] = deps, caps[cap]
        r.add(t, cap, deps, caps[cap])
    want = scratch(edges, weight)
    assert all(r.rank(t) == pytest.approx(want[t]) for t in edges)
    # cancel some leaves and middles: ranks above them fall back
    for t in rng.sample(sorted(edges), 40):
        r.remove(t)
        del edges[t]
    edges = {t: [d for d in deps if d in edges] for t, deps in edges.items()}
    want = scratch(edges, {t: weight[t] for t in edges})
    assert all(r.rank(t) == pytest.approx(want[t]) for t in edges)
    # new weights: one pass agrees with scratch again
    caps = {"x": 2.0, "y": 0.1, "z": 7.0}
    r.reweigh(caps.__getitem__)
    newer = {t: caps[cap] for t, cap in ((t, _cap_of(r, t)) for t in edges)}
    want = scratch(edges, newer)
    assert all(r.rank(t) == pytest.approx(want[t]) for t in edges)


def _cap_of(r: Ranks, task_id: str) -> str:
    return r._nodes[task_id].capability


def test_finished_dependencies_are_ignored_and_adding_twice_is_harmless() -> None:
    r = Ranks()
    r.add("b", "x", ["gone"], 1.0)
    r.add("b", "x", [], 9.0)
    assert r.rank("b") == 1.0 and len(r) == 1
