"""Long-poll waiters: O(1) park and leave, oldest-first wake-ups, per-session bookkeeping."""

from __future__ import annotations

from unified_swarm.core.waiters import Waiter, Waiters


def test_park_leave_and_wake_in_order() -> None:
    ws = Waiters()
    a, b, c = Waiter("s1", frozenset({"x"})), Waiter("s2", frozenset()), Waiter("s1", frozenset())
    for w in (a, b, c):
        ws.park(w)
    assert len(ws) == 3 and ws.has_session("s1") and ws.has_session("s2")
    assert ws.wake("y") == 1 and b.event.is_set() and not a.event.is_set()  # a lacks y
    assert ws.unwoken() == [a, c]
    ws.leave(a)
    ws.leave(a)  # twice: nothing more happens
    assert ws.has_session("s1") and len(ws) == 2
    ws.leave(c)
    assert not ws.has_session("s1") and ws.unwoken() == []
    ws.wake_session("s1")  # nobody parked for it: a no-op
    ws.leave(b)
    assert len(ws) == 0 and not ws.has_session("s2")


def test_proposals_wake_each_sessions_oldest_waiter() -> None:
    ws = Waiters()
    old, new = Waiter("s1", frozenset()), Waiter("s1", frozenset())
    other = Waiter("s2", frozenset())
    for w in (old, new, other):
        ws.park(w)
    proposals = {"s1": "t1", "s2": "t2"}
    ws.propose(proposals)
    assert (old.proposal, new.proposal, other.proposal) == ("t1", None, "t2")
    assert proposals == {}
    ws.wake_session("s1")
    assert new.offered and new.event.is_set() and not other.offered
