"""The learned scheduler's picture of the swarm: unfinished tasks, the ready ones best-first,
and the sessions with what they run. Pure data structures; `Brain` keeps them current from
the store's events.

The picture may lag the store by an event or two (another replica claimed a task a moment
ago). That costs nothing but a lost race: every claim is a compare-and-set in the store, and
the loser moves on to its next candidate.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

Key = tuple[int, float, int]


@dataclass(slots=True)
class TaskInfo:
    id: str
    capability: str
    priority: int
    #: insertion order (the store's event sequence of `task.added`): "then age"
    seq: int
    #: "pending" (dependencies open), "ready" or "held" (offered or leased)
    status: str
    #: the task's own estimate in seconds (`stats.size_of`): the model predicts a ratio
    #: of it for sized tasks, a duration for the others (size 1)
    size: float = 1.0

    @property
    def default_log(self) -> float | None:
        """What the model assumes of a capability it knows nothing of: that a sized task
        takes its estimate (a ratio of 1), else the model's default duration."""
        return 0.0 if self.size != 1.0 else None


@dataclass(slots=True)
class SessionInfo:
    id: str
    #: declared capabilities; empty takes any task
    capabilities: frozenset[str]
    max_concurrent: int = 1
    #: task id -> (capability, started at)
    running: dict[str, tuple[str, float]] = field(default_factory=dict)
    draining: bool = False

    def can_do(self, capability: str) -> bool:
        return not self.capabilities or capability in self.capabilities

    @property
    def free_slots(self) -> int:
        return self.max_concurrent - len(self.running)


class ReadyIndex:
    """Ready tasks, best first by (priority, upward rank, age), per capability and over all.

    Heaps with lazy deletion: a task's current key lives in `_key`; a heap entry whose key
    differs (re-ranked) or whose task left is dropped when it surfaces. `top` pops the k best
    live entries and pushes them back: O(k log n) whatever the queue depth.
    """

    def __init__(self) -> None:
        self._heaps: dict[str | None, list[tuple[int, float, int, str]]] = {None: []}
        self._key: dict[str, Key] = {}
        self._cap: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._key)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._key

    def put(self, task: TaskInfo, rank: float) -> None:
        key = (-task.priority, -rank, task.seq)
        if self._key.get(task.id) == key:
            return
        self._key[task.id] = key
        self._cap[task.id] = task.capability
        entry = (*key, task.id)
        heapq.heappush(self._heaps.setdefault(task.capability, []), entry)
        heapq.heappush(self._heaps[None], entry)
        self._compact(task.capability)

    def discard(self, task_id: str) -> None:
        self._key.pop(task_id, None)
        self._cap.pop(task_id, None)

    def capabilities(self) -> list[str]:
        return [c for c in self._heaps if c is not None]

    def top(self, capabilities: Iterable[str] | None, k: int) -> list[str]:
        """The k best ready tasks among `capabilities` (None: any), best first."""
        heaps = [None] if capabilities is None else list(dict.fromkeys(capabilities))
        found: dict[str, Key] = {}
        for cap in heaps:
            for entry in self._best(cap, k):
                found[entry[3]] = entry[:3]
        return sorted(found, key=found.__getitem__)[:k]

    def _best(self, cap: str | None, k: int) -> list[tuple[int, float, int, str]]:
        heap = self._heaps.get(cap)
        if not heap:
            return []
        live: list[tuple[int, float, int, str]] = []
        while heap and len(live) < k:
            entry = heapq.heappop(heap)
            if self._key.get(entry[3]) == entry[:3] and (cap is None or
                                                         self._cap[entry[3]] == cap):
                live.append(entry)
        for entry in live:
            heapq.heappush(heap, entry)
        return live

    def _compact(self, cap: str) -> None:
        """Rebuild a heap once dead entries outnumber the live ones: memory stays O(ready)."""
        for c in (cap, None):
            heap = self._heaps[c]
            if len(heap) > 2 * len(self._key) + 1024:
                self._heaps[c] = [e for e in heap if self._key.get(e[3]) == e[:3]
                                  and (c is None or self._cap[e[3]] == c)]
                heapq.heapify(self._heaps[c])
