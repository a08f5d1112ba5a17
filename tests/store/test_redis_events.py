"""The event pump's ordering rules, without Redis: in seq order, once, gaps filled first."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from unified_swarm.models import Event
from unified_swarm.store.redis import events as pump_module
from unified_swarm.store.redis.events import EventPump


def ev(seq: int) -> Event:
    return Event(seq, "task.added", 0.0, {"n": seq})


async def no_fetch(seq: int, limit: int) -> list[Event]:
    raise AssertionError("not read in this test")


def heard_by(pump: EventPump) -> list[int]:
    seqs: list[int] = []

    def listener(events: Sequence[Event]) -> None:
        seqs.extend(e.seq for e in events)
    pump.add_listener(listener)
    return seqs


def test_own_events_wait_for_the_gap_before_them() -> None:
    pump = EventPump(no_fetch)
    seqs = heard_by(pump)
    pump.deliver([ev(1)])
    pump.deliver([ev(3), ev(4)])  # another replica wrote 2 in between
    assert seqs == [1] and pump.seen == 1
    pump.deliver([ev(2), ev(3)])  # the log read fills the gap (and repeats 3)
    assert seqs == [1, 2, 3, 4] and pump.seen == 4
    pump.deliver([ev(2), ev(4)])  # nothing twice
    assert seqs == [1, 2, 3, 4]


def test_a_broken_listener_does_not_starve_the_others() -> None:
    pump = EventPump(no_fetch)

    def broken(events: Sequence[Event]) -> None:
        raise RuntimeError("listener bug")
    pump.add_listener(broken)
    seqs = heard_by(pump)
    pump.deliver([ev(1), ev(2)])
    assert seqs == [1, 2]


def test_held_back_events_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pump_module, "MAX_PENDING", 3)
    pump = EventPump(no_fetch)
    seqs = heard_by(pump)
    pump.deliver([ev(n) for n in range(5, 10)])  # a gap that is never filled this way
    assert seqs == [] and not pump._pending  # dropped: the log read brings them back
    pump.deliver([ev(n) for n in range(1, 10)])
    assert seqs == list(range(1, 10))
