"""The candidates a scheduler chooses from, kept between claims: one pool per set of
capabilities, so a claim costs one store read per `READ` claims, not one each.

A pool holds the first `READ` ready tasks of each of its capabilities, as the store's ready
indexes order them, and it is kept true by the swarm's events: a task claimed, offered or
cancelled (by any replica) leaves every pool; a task made ready drops the pools that could
hold it, so the next claim reads afresh and sees it. So choosing from a pool chooses from
the same tasks a fresh read would show, with two bounds on what events may not have told
yet (another replica's, in flight): a candidate already taken is refused by the store's
compare-and-set (`TaskTaken`) and the scheduler moves on, and a pool is read again after
`MAX_AGE` seconds anyway. A capability whose read came back full may have more tasks behind
it: once its candidates are used up, the pool is read again before anything else is chosen
from it, so a task past the end of the read never loses to a worse one still in the pool.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..models import Candidate, Event

#: candidates read per capability at a time
READ = 8
#: seconds a pool is chosen from without a fresh read
MAX_AGE = 1.0
#: pools kept (one per set of capabilities), the least recently used dropped first
MAX_POOLS = 256
#: events that make a task ready: a pool that could hold it is read again
READY = frozenset({"task.ready", "task.requeued"})
#: events after which a task is no longer ready: it leaves every pool
GONE = frozenset({"task.claimed", "task.assigned", "task.cancelled"})

Key = tuple[str, ...]


def key_of(capabilities: Sequence[str]) -> Key:
    """The pool of a session: its capabilities, as a set (empty: any task)."""
    return tuple(sorted(set(capabilities)))


@dataclass(slots=True)
class Pool:
    """The candidates of one read, minus those gone since."""

    key: Key
    items: dict[str, Candidate]
    #: per capability ("" for any), how many of its candidates are left
    left: dict[str, int]
    #: capabilities whose read came back full: more of their tasks may wait past it
    full: set[str] = field(default_factory=set)
    born: float = field(default_factory=time.monotonic)

    @classmethod
    def of(cls, key: Key, read: Sequence[Candidate], limit: int,
           keep: Sequence[Candidate]) -> Pool:
        """A pool from a read of `limit` per capability, keeping only `keep` of it."""
        counts: dict[str, int] = {}
        for c in read:
            counts[cls.slot(key, c)] = counts.get(cls.slot(key, c), 0) + 1
        pool = cls(key, {c.id: c for c in keep}, dict.fromkeys(counts, 0),
                   {s for s, n in counts.items() if n >= limit})
        for c in keep:
            pool.left[cls.slot(key, c)] += 1
        return pool

    @staticmethod
    def slot(key: Key, c: Candidate) -> str:
        return c.required_capability if key else ""

    def usable(self) -> bool:
        """Still chosen from: not too old, and no full capability used up."""
        return (time.monotonic() - self.born < MAX_AGE
                and not any(self.left.get(s, 0) == 0 for s in self.full))

    def discard(self, task_id: str) -> None:
        c = self.items.pop(task_id, None)
        if c is not None:
            self.left[self.slot(self.key, c)] -= 1


class Pools:
    """The pools of one scheduler, kept true by the events it hears."""

    def __init__(self) -> None:
        self._pools: OrderedDict[Key, Pool] = OrderedDict()
        #: moves on whenever a task is made ready: a read begun before may not show it
        self.generation = 0

    def get(self, key: Key) -> Pool | None:
        pool = self._pools.get(key)
        if pool is None or not pool.usable():
            self._pools.pop(key, None)
            return None
        self._pools.move_to_end(key)
        return pool

    def put(self, pool: Pool) -> None:
        self._pools[pool.key] = pool
        self._pools.move_to_end(pool.key)
        if len(self._pools) > MAX_POOLS:
            self._pools.popitem(last=False)

    def discard(self, task_id: str) -> None:
        for pool in self._pools.values():
            pool.discard(task_id)

    def made_ready(self, capability: str | None) -> None:
        """A task needing `capability` became ready: the pools that could hold it go."""
        self.generation += 1
        for key in [k for k in self._pools if not k or capability is None or capability in k]:
            del self._pools[key]

    def heard(self, events: Sequence[Event]) -> None:
        """A store listener."""
        for ev in events:
            d = ev.data
            if ev.type in READY or (ev.type == "task.added" and d.get("status") == "ready"):
                self.made_ready(d.get("required_capability"))
            elif ev.type in GONE:
                self.discard(str(d.get("task_id")))
