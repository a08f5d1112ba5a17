"""Upward ranks over the unfinished part of the task graph, kept incrementally. Pure.

A task's upward rank is its expected duration plus the longest chain of work that waits for
it: `rank(t) = weight(t) + max(rank(c) for c depending on t)` (HEFT's upward rank). The task
with the highest rank lies on the remaining critical path, so the scheduler starts it first.

The graph only grows at its bottom (a new task depends on tasks that exist already), so an
addition raises ranks along the new task's ancestors only and stops where nothing changes.
Removing a finished task changes nothing above it in the common case (everything it depended
on has finished); a cancelled or failed task may lower its parents' ranks, recomputed the
same way. When the learned weights move, `reweigh` recomputes every rank in one O(V + E)
pass; callers throttle it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Node:
    capability: str
    #: the task's size against a typical task of its capability (its own estimate)
    scale: float
    weight: float
    rank: float
    parents: set[str] = field(default_factory=set)
    children: set[str] = field(default_factory=set)


class Ranks:
    """The unfinished tasks, their dependency edges and their upward ranks."""

    def __init__(self) -> None:
        self._nodes: dict[str, _Node] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._nodes

    def rank(self, task_id: str) -> float:
        node = self._nodes.get(task_id)
        return 0.0 if node is None else node.rank

    def add(self, task_id: str, capability: str, dependencies: Iterable[str],
            unit: float, scale: float = 1.0) -> list[str]:
        """A new unfinished task weighing `unit` (its capability's expected duration) times
        `scale` (its size); dependencies that already finished are ignored. Returns the
        tasks whose rank moved (its ancestors)."""
        if task_id in self._nodes:
            return []
        parents = {d for d in dependencies if d in self._nodes}
        weight = unit * scale
        self._nodes[task_id] = _Node(capability, scale, weight, weight, parents)
        for p in parents:
            self._nodes[p].children.add(task_id)
        return self._refresh(parents)

    def remove(self, task_id: str) -> list[str]:
        """The task finished (or can never run): it no longer extends any chain. Returns
        the tasks whose rank moved."""
        node = self._nodes.pop(task_id, None)
        if node is None:
            return []
        for c in node.children:
            child = self._nodes.get(c)
            if child is not None:
                child.parents.discard(task_id)
        for p in node.parents:
            parent = self._nodes.get(p)
            if parent is not None:
                parent.children.discard(task_id)
        return self._refresh(node.parents)

    def _refresh(self, start: Iterable[str]) -> list[str]:
        """Recompute ranks upward from `start`, stopping where a rank does not move."""
        stack = [t for t in start if t in self._nodes]
        moved = []
        while stack:
            tid = stack.pop()
            node = self._nodes[tid]
            rank = node.weight + max((self._nodes[c].rank for c in node.children), default=0.0)
            if abs(rank - node.rank) > 1e-9 * max(1.0, rank):
                node.rank = rank
                moved.append(tid)
                stack.extend(node.parents)
        return moved

    def reweigh(self, weight_of: Callable[[str], float]) -> None:
        """New unit weights per capability (each task weighs its unit times its scale);
        every rank recomputed children first (Kahn's order over the reversed edges)."""
        pending = {t: len(n.children) for t, n in self._nodes.items()}
        queue = [t for t, k in pending.items() if k == 0]
        cache: dict[str, float] = {}
        while queue:
            t = queue.pop()
            node = self._nodes[t]
            if node.capability not in cache:
                cache[node.capability] = weight_of(node.capability)
            node.weight = cache[node.capability] * node.scale
            node.rank = node.weight + max((self._nodes[c].rank for c in node.children),
                                          default=0.0)
            for p in node.parents:
                pending[p] -= 1
                if pending[p] == 0:
                    queue.append(p)
