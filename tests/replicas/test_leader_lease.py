"""The leader lease as one replica sees it: take, renew, stop at once when it cannot."""

from __future__ import annotations

from typing import cast

import pytest

from unified_swarm.core import leader as leader_module
from unified_swarm.core.leader import LeaderLease
from unified_swarm.errors import Unavailable
from unified_swarm.store.base import Store


class Election:
    """A stand-in for a store with `Leadership`: answers what the test sets."""

    def __init__(self) -> None:
        self.answer: int | Exception | None = 1
        self.calls = 0
        self.resigned: list[str] = []

    async def try_lead(self, holder: str, ttl: float) -> int | None:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def resign(self, holder: str) -> None:
        self.resigned.append(holder)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(leader_module, "time", type("FakeTime", (), {"monotonic": c}))
    return c


def lease_on(election: Election) -> LeaderLease:
    return LeaderLease(cast(Store, election), "replica", ttl=3.0)


async def test_takes_and_renews_a_third_of_the_way(clock: Clock) -> None:
    election = Election()
    lease = lease_on(election)
    assert not lease.leading
    assert await lease.keep() and lease.token == 1
    clock.now += 0.5
    assert await lease.keep() and election.calls == 1  # not due yet
    clock.now += 0.6
    assert await lease.keep() and election.calls == 2  # a third of 3 s has passed


async def test_stops_at_once_when_the_store_does_not_answer(clock: Clock) -> None:
    election = Election()
    lease = lease_on(election)
    assert await lease.keep()
    clock.now += 1.1
    election.answer = Unavailable("redis is down")
    assert not await lease.keep() and not lease.leading and lease.token is None


async def test_stops_when_another_replica_holds_the_lease(clock: Clock) -> None:
    election = Election()
    lease = lease_on(election)
    assert await lease.keep()
    clock.now += 1.1
    election.answer = None
    assert not await lease.keep()


async def test_stops_when_its_lease_ran_out_unrenewed(clock: Clock) -> None:
    lease = lease_on(Election())
    assert await lease.keep()
    clock.now += 3.0  # e.g. a pass of the loop that took too long
    assert not lease.leading


async def test_a_new_token_after_a_lapse(clock: Clock) -> None:
    election = Election()
    lease = lease_on(election)
    assert await lease.keep()
    clock.now += 1.1
    election.answer = 7
    assert await lease.keep() and lease.token == 7


async def test_resign_gives_the_lease_back(clock: Clock) -> None:
    election = Election()
    lease = lease_on(election)
    await lease.keep()
    await lease.resign()
    assert election.resigned == [lease.holder] and not lease.leading


async def test_a_store_without_elections_always_leads() -> None:
    from unified_swarm.config import Settings
    from unified_swarm.store.sqlite import SQLiteStore

    lease = LeaderLease(SQLiteStore(Settings().sqlite_path, Settings()), "replica")
    assert lease.leading and await lease.keep() and lease.renew_every is None
    await lease.resign()
    assert lease.leading


def test_holders_differ_within_one_process() -> None:
    one, two = lease_on(Election()), lease_on(Election())
    assert one.holder != two.holder and one.holder.startswith("replica/")
