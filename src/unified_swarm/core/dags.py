"""Seeded DAG generators (pure): the same seed gives the same DAG, on any machine.

Two families that need nothing installed, for the effectiveness benchmark (bench/swarm.py)
and its tests:

- `layered_dag`: tasks in levels, each depending on one or more tasks of the level above (and
  now and then on an older level), of a few types that differ in size: the random layered
  graphs of daggen and the scheduling literature;
- `chain_heavy_dag`: a few long dependency chains that carry the critical path, plus a bag of
  short tasks, some hanging off a chain: a scheduler that does not run the chains first on
  fast workers pays for it at the end.

Work is in abstract units, mean 1.0 over the DAG; `rescale` turns it into seconds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from .bounds import Node


def layered_dag(seed: int, tasks: int, types: int = 4, prefix: str = "L") -> list[Node]:
    """`tasks` tasks in about sqrt(tasks) levels of random widths."""
    if tasks < 2 or types < 1:
        raise ValueError("a layered DAG needs at least 2 tasks and 1 type")
    rng = random.Random(f"layered:{seed}")
    size = [rng.lognormvariate(0, 0.5) for _ in range(types)]  # types differ in size
    levels = _widths(rng, tasks, max(2, round(math.sqrt(tasks))))
    nodes: list[Node] = []
    previous: list[list[str]] = []
    for width in levels:
        level: list[str] = []
        for _ in range(width):
            t = rng.randrange(types)
            nid = f"{prefix}{len(nodes):04d}"
            deps = _parents(rng, previous)
            nodes.append(Node(nid, f"t{t}", size[t] * rng.lognormvariate(0, 0.3), deps))
            level.append(nid)
        previous.append(level)
    return _unit_mean(nodes)


def _widths(rng: random.Random, tasks: int, levels: int) -> list[int]:
    """Split `tasks` into `levels` positive widths, at random."""
    weights = [rng.uniform(0.5, 1.5) for _ in range(levels)]
    spare = tasks - levels
    widths = [1 + int(spare * w / sum(weights)) for w in weights]
    for i in range(tasks - sum(widths)):
        widths[i % levels] += 1
    return widths


def _parents(rng: random.Random, previous: list[list[str]]) -> tuple[str, ...]:
    """One parent from the level above, each other task there with probability 2/width, and
    one from an older level one time in five."""
    if not previous:
        return ()
    above = previous[-1]
    deps = {rng.choice(above)}
    deps.update(t for t in above if rng.random() < 2 / len(above))
    if len(previous) > 1 and rng.random() < 0.2:
        deps.add(rng.choice(rng.choice(previous[:-1])))
    return tuple(sorted(deps))


def chain_heavy_dag(seed: int, tasks: int, chains: int = 2, chain_share: float = 0.3,
                    types: int = 4, prefix: str = "C") -> list[Node]:
    """`chains` chains holding `chain_share` of the tasks (each chain task twice the mean size
    of a bag task), the rest a bag; a bag task hangs off a random chain task one time in
    three, else it is free from the start."""
    in_chains = max(chains, round(tasks * chain_share))
    if chains < 1 or in_chains >= tasks or not 0 < chain_share < 1:
        raise ValueError("a chain-heavy DAG needs chains >= 1 and room for a bag")
    rng = random.Random(f"chain:{seed}")
    nodes: list[Node] = []
    chain_ids: list[str] = []
    for c in range(chains):
        last: str | None = None
        for _ in range(in_chains // chains + (c < in_chains % chains)):
            nid = f"{prefix}{len(nodes):04d}"
            work = 2 * rng.lognormvariate(0, 0.25)
            nodes.append(Node(nid, f"t{len(nodes) % types}", work, (last,) if last else ()))
            chain_ids.append(nid)
            last = nid
    while len(nodes) < tasks:
        deps = (rng.choice(chain_ids),) if rng.random() < 1 / 3 else ()
        nid = f"{prefix}{len(nodes):04d}"
        nodes.append(Node(nid, f"t{rng.randrange(types)}", rng.lognormvariate(0, 0.5), deps))
    return _unit_mean(nodes)


def _unit_mean(nodes: Sequence[Node]) -> list[Node]:
    mean = sum(n.work for n in nodes) / len(nodes)
    return [Node(n.id, n.type, n.work / mean, n.deps) for n in nodes]


def rescale(nodes: Sequence[Node], mean: float, floor: float = 0.0,
            cap: float = math.inf) -> list[Node]:
    """The same DAG with work scaled to `mean` on average, then clipped to [floor, cap] (a
    workflow's tiniest and largest tasks would otherwise be all overhead or all makespan)."""
    if not nodes:
        return []
    scale = mean / (sum(n.work for n in nodes) / len(nodes))
    return [Node(n.id, n.type, min(cap, max(floor, n.work * scale)), n.deps) for n in nodes]
