"""The seeded DAG generators: deterministic, acyclic, the size asked for."""

from __future__ import annotations

import pytest

from unified_swarm.core.bounds import Node, topological
from unified_swarm.core.dags import chain_heavy_dag, layered_dag, rescale

GENERATORS = [layered_dag, chain_heavy_dag]


@pytest.mark.parametrize("gen", GENERATORS)
def test_the_same_seed_gives_the_same_dag_and_another_seed_another(gen: object) -> None:
    assert callable(gen)
    assert gen(3, 80) == gen(3, 80)
    assert gen(3, 80) != gen(4, 80)


def test_known_seeds_give_known_dags() -> None:
    """Pinned, so a change to a generator (or to `random` across Python versions) shows."""
    first = layered_dag(1, 10)
    assert [n.id for n in first] == [f"L{i:04d}" for i in range(10)]
    assert [(n.type, n.deps) for n in first[:4]] == [
        ("t2", ()), ("t0", ()), ("t1", ()), ("t0", ("L0000", "L0001", "L0002"))]
    chain = chain_heavy_dag(1, 10)  # 3 chain tasks: a chain of 2 and a chain of 1
    assert [n.deps for n in chain[:4]] == [(), ("C0000",), (), ()]


@pytest.mark.parametrize(("gen", "size"), [
    *[(layered_dag, n) for n in (2, 3, 10, 57, 300)],
    *[(chain_heavy_dag, n) for n in (4, 10, 57, 300)],  # room for 2 chains and a bag
])
def test_size_mean_and_acyclic(gen: object, size: int) -> None:
    assert callable(gen)
    nodes: list[Node] = gen(size, size)
    assert len(nodes) == size
    assert len(topological(nodes)) == size
    assert sum(n.work for n in nodes) / size == pytest.approx(1.0)
    assert all(n.work > 0 for n in nodes)
    index = {n.id: i for i, n in enumerate(nodes)}
    assert all(index[d] < index[n.id] for n in nodes for d in n.deps)  # listed in order


def test_layered_has_levels_and_every_non_root_level_depends_on_the_one_above() -> None:
    nodes = layered_dag(5, 100)
    roots = [n for n in nodes if not n.deps]
    assert 1 <= len(roots) < 30
    depth: dict[str, int] = {}
    for n in nodes:
        depth[n.id] = 1 + max((depth[d] for d in n.deps), default=0)
    assert max(depth.values()) >= 8  # about sqrt(100) levels


def test_chain_heavy_chains_carry_the_critical_path() -> None:
    nodes = chain_heavy_dag(2, 100, chains=2, chain_share=0.3)
    by_id = {n.id: n for n in nodes}
    longest: dict[str, float] = {}
    for n in nodes:
        longest[n.id] = n.work + max((longest[d] for d in n.deps), default=0.0)
    end = max(longest, key=longest.__getitem__)
    length = 0
    while by_id[end].deps:
        end, length = by_id[end].deps[0], length + 1
    assert length >= 14  # 30 chain tasks in 2 chains
    with pytest.raises(ValueError):
        chain_heavy_dag(1, 3, chains=3)


def test_rescale_sets_the_mean_then_clips() -> None:
    nodes = [Node("a", "t", 1.0), Node("b", "t", 3.0), Node("c", "t", 100.0)]
    same = rescale(nodes, 2.0)
    assert sum(n.work for n in same) / 3 == pytest.approx(2.0)
    clipped = rescale(nodes, 2.0, floor=0.1, cap=3.0)
    assert [round(n.work, 4) for n in clipped] == [0.1, 0.1731, 3.0]
    assert [n.deps for n in clipped] == [n.deps for n in nodes]
    assert rescale([], 1.0) == []
