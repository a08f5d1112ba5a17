"""Long-poll waiters: sessions parked in GET /work/request until a matching task is ready.

Wake-ups are targeted: a task that becomes ready for capability C wakes one waiter that can
take C (not all of them), so 64 idle sessions do not stampede the store for one task. A
waiter woken for C that ends up claiming a task of another capability passes the wake-up on,
so a ready task never sits while a matching session sleeps.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass(eq=False, slots=True)
class Waiter:
    session_id: str
    capabilities: frozenset[str]  # empty: takes any capability
    event: asyncio.Event = field(default_factory=asyncio.Event)
    woken_for: str | None = None
    #: woken by an offer made to this session: look up its offers first
    offered: bool = False
    #: woken with a task a one-solve match chose for it (learned policy): claim it first
    proposal: str | None = None
    #: the client went away: claim nothing more for it
    abandoned: bool = False

    def abandon(self) -> None:
        self.abandoned = True
        self.event.set()

    def matches(self, capability: str | None) -> bool:
        return capability is None or not self.capabilities or capability in self.capabilities


class Waiters:
    """The parked sessions of this process, oldest first. Parking and leaving are O(1)
    (insertion-ordered dicts, over all and per session), so 10,000 parked long-polls cost
    nothing per request; a wake-up scans from the oldest until it finds a match, and what
    concerns one session (its proposal, its offer) looks at that session's waiters only."""

    def __init__(self) -> None:
        self._parked: dict[Waiter, None] = {}
        self._per_session: dict[str, dict[Waiter, None]] = {}

    def __len__(self) -> int:
        return len(self._parked)

    def park(self, waiter: Waiter) -> None:
        self._parked[waiter] = None
        self._per_session.setdefault(waiter.session_id, {})[waiter] = None

    def leave(self, waiter: Waiter) -> None:
        if self._parked.pop(waiter, 0) is None:  # it was parked
            mine = self._per_session[waiter.session_id]
            del mine[waiter]
            if not mine:
                del self._per_session[waiter.session_id]

    def wake(self, capability: str | None, n: int = 1) -> int:
        """Wake up to `n` not-yet-woken waiters that can take `capability` (None: any)."""
        woken = 0
        for w in self._parked:
            if woken >= n:
                break
            if not w.event.is_set() and w.matches(capability):
                w.woken_for = capability
                w.event.set()
                woken += 1
        return woken

    def has_session(self, session_id: str) -> bool:
        return session_id in self._per_session

    def unwoken(self) -> list[Waiter]:
        """Parked waiters not woken yet, oldest first."""
        return [w for w in self._parked if not w.event.is_set()]

    def has_unwoken(self, session_id: str) -> bool:
        """Some waiter of the session is parked and not woken yet."""
        return any(not w.event.is_set() for w in self._per_session.get(session_id, ()))

    def propose(self, proposals: dict[str, str]) -> None:
        """Wake, for each session, its oldest unwoken waiter with the task chosen for it
        (the proposals handed over are removed from `proposals`)."""
        for sid, tid in list(proposals.items()):
            for w in self._per_session.get(sid, ()):
                if not w.event.is_set():
                    del proposals[sid]
                    w.proposal = tid
                    w.event.set()
                    break

    def wake_all(self) -> None:
        for w in self._parked:
            w.event.set()

    def wake_session(self, session_id: str) -> None:
        """An offer was made to this session: its waiters look at their offers."""
        for w in self._per_session.get(session_id, ()):
            w.offered = True
            w.event.set()
