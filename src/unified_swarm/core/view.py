"""The learned scheduler's picture of the swarm: unfinished tasks, the ready ones best-first,
and the sessions with what they run. Pure data structures; `Brain` keeps them current from
the store's events.

The picture may lag the store by an event or two (another replica claimed a task a moment
ago). That costs nothing but a lost race: every claim is a compare-and-set in the store, and
the loser moves on to its next candidate.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
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
        #: capability -> how many ready tasks it has (only those with some)
        self._live: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._key)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._key

    def put(self, task: TaskInfo, rank: float) -> None:
        key = (-task.priority, -rank, task.seq)
        old = self._key.get(task.id)
        if old == key:
            return
        if old is None:
            self._live[task.capability] = self._live.get(task.capability, 0) + 1
        self._key[task.id] = key
        self._cap[task.id] = task.capability
        entry = (*key, task.id)
        heapq.heappush(self._heaps.setdefault(task.capability, []), entry)
        heapq.heappush(self._heaps[None], entry)
        self._compact(task.capability)

    def discard(self, task_id: str) -> None:
        self._key.pop(task_id, None)
        cap = self._cap.pop(task_id, None)
        if cap is not None:
            left = self._live[cap] - 1
            if left:
                self._live[cap] = left
            else:
                del self._live[cap]

    def capabilities(self) -> list[str]:
        """The capabilities that have ready tasks now."""
        return list(self._live)

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


class _Ids:
    """A set of session ids kept as the keys of `_ids` (insertion-ordered, O(1) in and out)."""

    _ids: Mapping[str, object]

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, sid: object) -> bool:
        return sid in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)


class ByCapability(_Ids):
    """Session ids by the capabilities they take: those that declared a capability, and those
    that declared none (they take any). Who can do `cap` is then a lookup, proportional to
    the answer, not a scan of every session."""

    def __init__(self) -> None:
        self._ids: dict[str, frozenset[str]] = {}
        self._by: dict[str, dict[str, None]] = {}
        self._any: dict[str, None] = {}

    def put(self, sid: str, caps: frozenset[str]) -> None:
        self.remove(sid)
        self._ids[sid] = caps
        if not caps:
            self._any[sid] = None
        for c in caps:
            self._by.setdefault(c, {})[sid] = None

    def remove(self, sid: str) -> None:
        caps = self._ids.pop(sid, None)
        if caps is None:
            return
        if not caps:
            del self._any[sid]
        for c in caps:
            sids = self._by[c]
            del sids[sid]
            if not sids:
                del self._by[c]

    def takes_any(self) -> Iterable[str]:
        """Those that declared no capability."""
        return self._any

    def declared(self, cap: str) -> Iterable[str]:
        """Those that declared `cap`."""
        return self._by.get(cap, {})

    def able(self, cap: str) -> Iterator[str]:
        """Everyone who can do `cap` (`SessionInfo.can_do`)."""
        yield from self._any
        yield from self._by.get(cap, {})


class Parked(_Ids):
    """The sessions parked in a long-poll on this replica, indexed by capability, so the
    one-solve match finds the parked sessions that can take the ready tasks without looking
    at every parked session. A session not heard of yet (its join event still on the way) is
    parked but unindexed until `reindex` is called for it."""

    def __init__(self, caps_of: Callable[[str], frozenset[str] | None]) -> None:
        self._caps_of = caps_of
        self._ids: dict[str, None] = {}
        self.index = ByCapability()

    def __ior__(self, sids: Iterable[str]) -> Parked:
        self.update(sids)
        return self

    def update(self, sids: Iterable[str]) -> None:
        for sid in sids:
            self.add(sid)

    def add(self, sid: str) -> None:
        self._ids[sid] = None
        self.reindex(sid)

    def discard(self, sid: str) -> None:
        self._ids.pop(sid, None)
        self.index.remove(sid)

    def reindex(self, sid: str) -> None:
        """The session's capabilities are known now (or changed): file it under them."""
        if sid not in self._ids:
            return
        caps = self._caps_of(sid)
        if caps is None:
            self.index.remove(sid)
        else:
            self.index.put(sid, caps)
