"""What only the Redis store has: durability checks, the epoch, prefixes, cross-process
events, the server clock, the leader lease, and writes that are all or nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
from redis.asyncio import Redis

from unified_swarm.config import Settings
from unified_swarm.errors import AlreadyExists, Conflict, Unavailable
from unified_swarm.models import Event
from unified_swarm.procs import RedisServer
from unified_swarm.store.redis import RedisStore

from ..conftest import T0
from .helpers import add_tasks, claim_next, join, offer_next, spec

pytestmark = pytest.mark.redis


def redis_settings(server: RedisServer, tmp_path: Path, **kw: object) -> Settings:
    base = Settings(data_dir=tmp_path / "swarm", store=server.url,
                    redis_prefix=f"t-{uuid.uuid4().hex[:10]}")
    return base.replace(**kw)


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


async def opened(settings: Settings) -> RedisStore:
    store = RedisStore(settings.store, settings)
    await store.open()
    return store


async def keys_of(raw: Redis, prefix: str) -> list[str]:
    return sorted([k async for k in raw.scan_iter(match=f"{prefix}:*", count=1000)])


class Heard:
    """A listener that records every event it is given, and can wait for a seq."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changed = asyncio.Event()

    def __call__(self, events: Sequence[Event]) -> None:
        self.events.extend(events)
        self.changed.set()

    async def until(self, done: Callable[[list[Event]], bool], within: float = 30.0) -> None:
        # a bound for a failure only: progress ends the wait (a loaded machine is slow)
        async with asyncio.timeout(within):
            while not done(self.events):
                self.changed.clear()
                await self.changed.wait()


# -- durability settings -------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "named"), [
    ("appendonly", "no", "appendonly yes"),
    ("maxmemory-policy", "allkeys-lru", "maxmemory-policy noeviction"),
])
async def test_refuses_a_redis_that_can_lose_writes(
        private_redis: RedisServer, tmp_path: Path, key: str, value: str, named: str) -> None:
    client = Redis.from_url(private_redis.url)
    await client.config_set(key, value)
    await client.aclose()
    settings = redis_settings(private_redis, tmp_path)
    with pytest.raises(Unavailable, match=named):
        await opened(settings)
    store = await opened(settings.replace(redis_allow_unsafe=True))  # the explicit opt-out
    await join(store, "w1")
    await store.close()


# -- the store epoch -------------------------------------------------------------------------


async def test_an_emptied_redis_is_refused_at_start(redis_server: RedisServer, raw: Redis,
                                                    tmp_path: Path) -> None:
    settings = redis_settings(redis_server, tmp_path)
    store = await opened(settings)
    await join(store, "w1")
    await store.close()
    await raw.delete(*await keys_of(raw, settings.redis_prefix))  # FLUSHALL, a new instance...
    with pytest.raises(Unavailable, match="emptied or replaced") as refused:
        await opened(settings)
    assert "redis-epoch-" in refused.value.message  # it says which file to delete
    assert await keys_of(raw, settings.redis_prefix) == []  # and wrote nothing
    (settings.data_dir / f"redis-epoch-{settings.redis_prefix}").unlink()
    fresh = await opened(settings)  # a new, empty swarm on purpose
    assert await fresh.list_sessions() == []
    await fresh.close()


async def test_another_swarms_epoch_is_refused(redis_server: RedisServer, tmp_path: Path) -> None:
    settings = redis_settings(redis_server, tmp_path)
    await (await opened(settings)).close()
    (settings.data_dir / f"redis-epoch-{settings.redis_prefix}").write_text("someone-else\n")
    with pytest.raises(Unavailable, match="holds another swarm"):
        await opened(settings)


async def test_emptied_while_running_refuses_every_call(redis_server: RedisServer, raw: Redis,
                                                        tmp_path: Path) -> None:
    settings = redis_settings(redis_server, tmp_path)
    store = await opened(settings)
    await join(store, "w1")
    await raw.delete(*await keys_of(raw, settings.redis_prefix))
    with pytest.raises(Unavailable, match="emptied or replaced"):
        await add_tasks(store, [spec("a")], T0)
    with pytest.raises(Unavailable):
        await store.get_task("a")
    assert await keys_of(raw, settings.redis_prefix) == []  # no fencing token restarted
    await store.close()


async def test_keys_without_an_epoch_are_damaged(redis_server: RedisServer, raw: Redis,
                                                 tmp_path: Path) -> None:
    settings = redis_settings(redis_server, tmp_path)
    store = await opened(settings)
    await add_tasks(store, [spec("a")], T0)
    await store.close()
    await raw.delete(f"{settings.redis_prefix}:meta")  # e.g. evicted
    (settings.data_dir / f"redis-epoch-{settings.redis_prefix}").unlink()
    with pytest.raises(Unavailable, match="epoch is missing"):
        await opened(settings)


# -- prefixes ----------------------------------------------------------------------------------


async def test_prefixes_keep_swarms_apart(redis_server: RedisServer, raw: Redis,
                                          tmp_path: Path) -> None:
    a = await opened(redis_settings(redis_server, tmp_path))
    b = await opened(redis_settings(redis_server, tmp_path))
    heard_b = Heard()
    b.add_listener(heard_b)
    await join(a, "w1")
    await add_tasks(a, [spec("x")], T0)
    await add_tasks(b, [spec("x")], T0)  # the same id, another swarm
    assert [t.id for t in (await b.list_tasks())[0]] == ["x"]
    assert (await b.counts()).sessions == {} and await b.get_session("w1") is None
    assert [e.seq for e in await b.events_after(0, 10)] == [1]
    await asyncio.sleep(0.1)
    assert [e.type for e in heard_b.events] == ["task.added"]  # not a's events
    for key in await keys_of(raw, a.keys.prefix):
        assert key.startswith(a.keys.prefix + ":")
    await a.close()
    await b.close()


def test_a_prefix_is_a_plain_name(redis_server: RedisServer, tmp_path: Path) -> None:
    from unified_swarm.errors import InvalidInput

    with pytest.raises(InvalidInput):
        RedisStore(redis_server.url, redis_settings(redis_server, tmp_path,
                                                    redis_prefix="a:b"))


# -- events across processes -------------------------------------------------------------------


async def test_every_replica_hears_every_event_once_in_order(redis_server: RedisServer,
                                                             tmp_path: Path) -> None:
    settings = redis_settings(redis_server, tmp_path)
    a, b = await opened(settings), await opened(settings)
    heard_a, heard_b = Heard(), Heard()
    a.add_listener(heard_a)
    b.add_listener(heard_b)
    await join(a, "w1")
    await join(b, "w2")
    await asyncio.gather(*(
        add_tasks(a if n % 2 else b, [spec(f"t{n}")], T0 + n) for n in range(40)))
    total = (await a.counts()).last_seq
    assert total == 42
    for heard in (heard_a, heard_b):
        await heard.until(lambda evs: len(evs) >= total)
        assert [e.seq for e in heard.events] == list(range(1, total + 1))
    await asyncio.sleep(0.2)  # and nothing twice afterwards
    assert len(heard_a.events) == len(heard_b.events) == total
    await a.close()
    await b.close()


async def test_a_lost_notification_delays_but_never_loses(redis_server: RedisServer, raw: Redis,
                                                         tmp_path: Path) -> None:
    settings = redis_settings(redis_server, tmp_path)
    a, b = await opened(settings), await opened(settings)
    heard = Heard()
    b.add_listener(heard)
    await raw.client_kill_filter(_type="pubsub")  # b's doorbell is gone
    await join(a, "w1")
    await heard.until(lambda evs: len(evs) == 1, within=15.0)
    await add_tasks(a, [spec("x")], T0)
    await heard.until(lambda evs: len(evs) == 2, within=15.0)
    await a.close()
    await b.close()


async def test_a_store_never_closed_still_stops_when_its_loop_cancels_it(
        redis_server: RedisServer, tmp_path: Path) -> None:
    # A failed test's store is never closed: the loop's shutdown cancels its event tasks,
    # and a cancellation redis-py reports as a timeout must not be retried as an outage.
    store = await opened(redis_settings(redis_server, tmp_path))
    tasks = list(store._pump._tasks)
    assert len(tasks) == 2
    await asyncio.sleep(0.3)  # both inside their waits (get_message, the wake event)
    for task in tasks:
        task.cancel()
    done, pending = await asyncio.wait(tasks, timeout=10.0)
    assert not pending and all(t.cancelled() for t in done)
    await store.close()


# -- the clock ---------------------------------------------------------------------------------


async def test_server_clock_judges_leases_by_redis_time(redis_server: RedisServer,
                                                        tmp_path: Path) -> None:
    settings = redis_settings(redis_server, tmp_path, store=redis_server.url + "?clock=server")
    store = await opened(settings)
    skewed = T0 + 10_000  # this replica's clock is wrong by hours
    await join(store, "w1", now=skewed)
    await join(store, "w2", now=skewed)
    await add_tasks(store, [spec("a"), spec("b")], skewed)
    claimed = await claim_next(store, "w1", skewed)
    assert claimed is not None
    redis_now = await store_time(store)
    assert claimed.lease.expires_at is not None
    assert abs(claimed.lease.expires_at - (redis_now + 30)) < 2
    offered = await offer_next(store, "w2", skewed, skewed + 300)
    assert offered is not None and offered.lease_expires_at is not None
    assert abs(offered.lease_expires_at - (redis_now + 300)) < 2
    assert (await store.reap(skewed + 10_000, 10)).requeued == []  # the skew reaps nothing
    await store.close()


async def store_time(store: RedisStore) -> float:
    assert store._client is not None
    seconds, micros = await store._client.time()
    return seconds + micros / 1e6


def test_an_unknown_clock_option_is_refused(redis_server: RedisServer, tmp_path: Path) -> None:
    from unified_swarm.errors import InvalidInput

    with pytest.raises(InvalidInput, match="clock"):
        RedisStore(redis_server.url + "?clock=sundial", redis_settings(redis_server, tmp_path))


# -- the leader lease --------------------------------------------------------------------------


async def test_leader_lease_and_its_fencing(redis_server: RedisServer, tmp_path: Path) -> None:
    settings = redis_settings(redis_server, tmp_path)
    a, b = await opened(settings), await opened(settings)
    first = await a.try_lead("a", 0.3)
    assert first is not None
    assert await b.try_lead("b", 0.3) is None
    assert await a.try_lead("a", 0.3) == first  # renewal keeps the token
    await asyncio.sleep(0.4)  # a stopped renewing: the lease lapsed on the Redis clock
    second = await b.try_lead("b", 5)
    assert second is not None and second > first
    with pytest.raises(Conflict, match="leader lease"):
        await a.reap(T0, 10)  # a still believes it leads: its coordinator writes are fenced
    await b.reap(T0, 10)
    await b.resign("b")
    third = await a.try_lead("a", 5)
    assert third is not None and third > second
    await a.close()
    await b.close()


# -- all or nothing ----------------------------------------------------------------------------


async def test_a_refused_batch_writes_nothing(redis_server: RedisServer, raw: Redis,
                                              tmp_path: Path) -> None:
    settings = redis_settings(redis_server, tmp_path)
    store = await opened(settings)
    await add_tasks(store, [spec("taken")], T0)
    before = await keys_of(raw, settings.redis_prefix)
    with pytest.raises(AlreadyExists):
        await add_tasks(store, [spec("new1"), spec("new2", dependencies=["new1"]),
                               spec("taken")], T0)
    assert await keys_of(raw, settings.redis_prefix) == before
    assert (await store.counts()).last_seq == 1
    await store.close()


async def test_the_store_clock_never_runs_backwards(redis_server: RedisServer, raw: Redis,
                                                    tmp_path: Path) -> None:
    settings = redis_settings(redis_server, tmp_path)
    store = await opened(settings)
    store.use_store_clock()
    ahead = await store_time(store) + 3600  # a write recorded by a host whose clock ran ahead
    await raw.set(f"{settings.redis_prefix}:clock", repr(ahead))
    joined = await join(store, "w1", now=T0)
    assert joined.registered_at == ahead  # not Redis TIME (behind it), not the caller's T0
    assert float(await raw.get(f"{settings.redis_prefix}:clock") or 0) == ahead
    await store.close()


async def test_an_orchestrator_on_the_real_clock_uses_the_store_clock(
        redis_server: RedisServer, tmp_path: Path) -> None:
    import time

    from unified_swarm.core.orchestrator import Orchestrator

    settings = redis_settings(redis_server, tmp_path)
    real, by_hand = RedisStore(settings.store, settings), RedisStore(settings.store, settings)
    Orchestrator(real, settings, "op", time.time)
    Orchestrator(by_hand, settings, "op", lambda: T0)
    assert real._clock == "s" and by_hand._clock == "c"


async def test_next_deadline_is_told_on_the_local_clock(redis_server: RedisServer, raw: Redis,
                                                        tmp_path: Path) -> None:
    import time

    settings = redis_settings(redis_server, tmp_path)
    store = await opened(settings)
    store.use_store_clock()
    ahead = await store_time(store) + 3600  # the store's clock runs an hour ahead of ours
    await raw.set(f"{settings.redis_prefix}:clock", repr(ahead))
    await join(store, "w1", interval=10.0)  # silent from store time ahead + 30
    deadline = await store.next_deadline()
    assert deadline is not None and abs(deadline - (time.time() + 30)) < 1
    await store.close()
