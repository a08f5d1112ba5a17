"""Workloads and hidden worker speeds for bench/swarm.py.

Families: `layered` and `chain` come from the committed generators (unified_swarm.core.dags);
`montage`, `epigenomics` and `genome` (1000Genome) are built at run time by wfcommons' WfChef
recipes (the optional `bench` extra). No instance derived from wfcommons' data is written to
disk or committed: each run rebuilds its DAGs from a seed.
"""

from __future__ import annotations

import importlib.util
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import swarm_task  # bench/swarm_task.py: the noise every task sleeps with
from unified_swarm.core.bounds import Durations, Node, topological
from unified_swarm.core.dags import chain_heavy_dag, layered_dag, rescale

BUILTIN = ("layered", "chain")
#: family -> WfChef recipe class in wfcommons.wfchef.recipes
RECIPES = {"montage": "MontageRecipe", "epigenomics": "EpigenomicsRecipe",
           "genome": "GenomeRecipe"}
FAMILIES = (*BUILTIN, *RECIPES)


def wfcommons_available() -> bool:
    return importlib.util.find_spec("wfcommons") is not None


def make_dag(family: str, seed: int, tasks: int, mean: float) -> list[Node]:
    """A DAG of about `tasks` tasks whose base durations average `mean` seconds, clipped to
    [mean/10, mean*10] (a recipe's 0.2 s task next to its 1,263 s one would be pure overhead
    or the whole makespan at this time scale)."""
    if family == "layered":
        nodes = layered_dag(seed, tasks)
    elif family == "chain":
        nodes = chain_heavy_dag(seed, tasks)
    elif family in RECIPES:
        nodes = from_wfcommons(family, seed, tasks)
    else:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    return rescale(nodes, mean, floor=mean / 10, cap=mean * 10)


def from_wfcommons(family: str, seed: int, tasks: int) -> list[Node]:
    """A WfGen instance of the family's recipe, renamed to ids and types the server accepts
    (`F0001`, `mProject`; no underscores), work = the recipe's runtime in seconds."""
    import numpy
    from wfcommons import WorkflowGenerator
    from wfcommons.wfchef import recipes

    # WfGen draws from both global generators; seeding them makes the instance a function
    # of the seed
    random.seed(seed)
    numpy.random.seed(seed % 2**32)
    recipe = getattr(recipes, RECIPES[family]).from_num_tasks(tasks)
    wf = WorkflowGenerator(recipe).build_workflow()
    ordered = sorted(wf.tasks)
    rename = {tid: f"{family[0].upper()}{i:04d}" for i, tid in enumerate(ordered)}
    nodes = [Node(rename[tid], type_name(wf.tasks[tid].name), float(wf.tasks[tid].runtime),
                  tuple(sorted(rename[p] for p in wf.predecessors(tid)))) for tid in ordered]
    return topological(nodes)


def type_name(raw: str) -> str:
    """A task type the server accepts as a capability name."""
    name = re.sub(r"[^A-Za-z0-9.:-]+", "-", raw).strip("-.:") or "task"
    return name[:64]


@dataclass(frozen=True)
class Profile:
    """The hidden truth about the workers: slowness per (worker, type) and failure rate."""

    factors: dict[str, dict[str, float]]
    fail: dict[str, float]

    @property
    def workers(self) -> list[str]:
        return sorted(self.factors)


def make_profile(seed: int, workers: int, types: Sequence[str], spread: float,
                 failing: int = 0, fail_rate: float = 0.0) -> Profile:
    """Slowness = a session effect plus a (session, type) effect, both normal on the log
    scale, then stretched per type so the fastest worker has 1.0 and the slowest `spread`
    (speeds differ exactly `spread` times for every type). The last `failing` workers fail
    `fail_rate` of their attempts."""
    rng = random.Random(f"profile:{seed}")
    names = [f"w{i}" for i in range(workers)]
    session = {w: rng.gauss(0, 0.5) for w in names}
    raw = {(w, t): session[w] + rng.gauss(0, 0.5) for w in names for t in types}
    factors: dict[str, dict[str, float]] = {w: {} for w in names}
    for t in types:
        lo = min(raw[w, t] for w in names)
        hi = max(raw[w, t] for w in names)
        for w in names:
            x = (raw[w, t] - lo) / (hi - lo) if hi > lo else 0.0
            factors[w][t] = spread ** x
    fail = {w: (fail_rate if i >= workers - failing else 0.0) for i, w in enumerate(names)}
    return Profile(factors, fail)


def true_durations(nodes: Sequence[Node], profile: Profile, seed: int,
                   sigma: float) -> Durations:
    """Seconds each task sleeps on each worker: exactly what bench/swarm_task.py sleeps."""
    return {n.id: {w: n.work * profile.factors[w][n.type] * swarm_task.noise(seed, n.id, sigma)
                   for w in profile.workers} for n in nodes}


def oracle_prior(nodes: Sequence[Node], profile: Profile, sigma: float,
                 sized: bool = True) -> dict[str, dict[str, dict[str, float]]]:
    """The operator prior of the oracle policy (`SWARM_SCHEDULER_PRIOR`): per session and
    capability, what the learned model measures. For tasks submitted with their size
    (`estimated_hours` = base work) that is the ratio of duration to size: slowness x
    E[noise]; without sizes, the mean duration in seconds of that capability's tasks in this
    workload (mean base duration x slowness x E[noise])."""
    work: dict[str, list[float]] = {}
    for n in nodes:
        work.setdefault(n.type, []).append(n.work)
    lift = math.exp(sigma**2 / 2)

    def unit(values: list[float]) -> float:
        return 1.0 if sized else sum(values) / len(values)

    return {"sessions": {w: {t: unit(v) * profile.factors[w][t] * lift
                             for t, v in sorted(work.items())} for w in profile.workers}}
