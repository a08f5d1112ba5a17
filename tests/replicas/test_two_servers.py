"""Issue 4's scenario with real processes: two `swarm server` replicas on one redis-server,
32 worker sessions split between them, 5,000 tasks; the leader is SIGKILLed mid-run. Every
task completes exactly once (each one's history is read back), the other replica leads
within one leader lease, and the leases orphaned by sessions that died with the leader are
still reaped. A worker that fails for any reason but the ones it handles fails the test."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from unified_swarm.chaos.dump import dump_http
from unified_swarm.client import AsyncClient, Client
from unified_swarm.client.base import RetryPolicy
from unified_swarm.errors import Conflict, NotClaimable, Unavailable
from unified_swarm.procs import RedisServer, SwarmServer

pytestmark = [pytest.mark.redis, pytest.mark.slow]
TOKEN = "two-servers-operator"
TASKS, WORKERS, ORPHANS = 5000, 32, 4
LEADER_LEASE = 5.0


@pytest.fixture
def cluster(tmp_path: Path, redis_server: object) -> Iterator[list[SwarmServer]]:
    """`redis_server` only for its skip / CI-fail rule: this test kills its own Redis's peer
    processes, so it runs a private one."""
    redis = RedisServer(tmp_path / "redis").start()
    servers = [SwarmServer(f"replica-{n}", store=redis.url, data_dir=tmp_path / f"data-{n}",
                           token=TOKEN, log=tmp_path / f"replica-{n}.log",
                           env={"SWARM_REDIS_PREFIX": "two", "SWARM_RATE_LIMIT": "0",
                                "SWARM_REPLICA_ID": f"replica-{n}"}).start()
               for n in range(2)]
    yield servers
    for s in servers:
        if s.alive:
            s.kill()
    redis.kill()


def leader(servers: list[SwarmServer]) -> SwarmServer | None:
    return next((s for s in servers if (s.health() or {}).get("leader")), None)


async def work(urls: list[str], token: str, stop: asyncio.Event, done: list[str]) -> None:
    """A worker session: claim, complete; when its replica dies, go to the other one. A claim
    whose reply died with the replica leaves a lease this session does not know: the
    heartbeat lists it, and the session gives it back (DESIGN's `held` rule, as `swarm worker`
    does), else it would sit at capacity until that lease ran out."""
    retry = RetryPolicy(attempts=2, backoff=0.05, budget=1.0)
    n = 0
    while not stop.is_set():
        async with AsyncClient(urls[n % 2], token, retry=retry, timeout=10) as c:
            try:
                while not stop.is_set():
                    got = await c.request_work(wait=1)
                    if got is None:
                        continue
                    await c.complete(got["task"]["id"], got["lease"]["fencing_token"],
                                     result=urls[n % 2])
                    done.append(got["task"]["id"])
            except Unavailable:
                n += 1  # the replica is gone: the load balancer sends us to the other
            except (NotClaimable, Conflict):
                try:
                    await give_back_strays(c)
                except Unavailable:
                    n += 1


async def give_back_strays(c: AsyncClient) -> None:
    """Release every lease the heartbeat lists: this worker runs nothing between calls, so
    any lease it holds is a claim whose reply was lost."""
    beat = await c.heartbeat()
    for lease in beat["held"]:
        with contextlib.suppress(Conflict):  # it expired meanwhile: nothing to give back
            await c.fail(lease["task_id"], lease["fencing_token"],
                         "its claim's reply was lost with the replica", retry=True)


def test_two_replicas_32_workers_5000_tasks_leader_killed(cluster: list[SwarmServer]) -> None:
    urls = [s.url for s in cluster]
    with Client(urls[0], TOKEN) as op:
        tokens = [op.register(["bulk"], id=f"w{i}")["token"] for i in range(WORKERS)]
        orphan_tokens = [op.register(["bulk"], id=f"doomed{i}", heartbeat_interval=0.5)["token"]
                         for i in range(ORPHANS)]
        for start in range(0, TASKS, 1000):
            op.add_tasks([{"id": f"t{i}", "type": "bulk"} for i in range(start, start + 1000)])
    first = leader(cluster)
    assert first is not None
    survivor = next(s for s in cluster if s is not first)
    orphaned: list[str] = []

    async def run() -> tuple[list[str], float]:
        """Returns what the workers completed and how long the survivor took to lead."""
        done: list[str] = []
        stop = asyncio.Event()
        # each session starts on its own replica: half on each
        workers = [asyncio.create_task(work(urls[i % 2:] + urls[:i % 2], tok, stop, done))
                   for i, tok in enumerate(tokens)]
        async with AsyncClient(urls[0], TOKEN) as op:
            for _ in range(2400):  # a third of the work done, within 2 minutes
                if (await op.status())["tasks_completed"] >= TASKS // 3:
                    break
                await asyncio.sleep(0.05)
        # sessions that claim and die with the leader: their leases are orphaned
        for tok in orphan_tokens:
            async with AsyncClient(first.url, tok) as c:
                got = await c.request_work()
                assert got is not None
                orphaned.append(got["task"]["id"])
        killed_at = time.monotonic()
        first.kill()
        while not (survivor.health() or {}).get("leader"):
            assert time.monotonic() - killed_at < LEADER_LEASE + 5, "no takeover"
            await asyncio.sleep(0.05)
        took = time.monotonic() - killed_at
        # the server's record, not the workers' acknowledgements: a complete whose reply died
        # with the killed replica is recorded though its worker never heard so
        deadline = time.monotonic() + 120
        async with AsyncClient(survivor.url, TOKEN) as op:
            while (await op.status())["tasks_completed"] < TASKS:
                assert time.monotonic() < deadline, "the tasks did not all complete"
                await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*workers)  # a worker's unexpected error surfaces here
        return done, took

    done, took = asyncio.run(run())
    # within one leader lease (5 s), plus the survivor's renewal round and this poll
    assert took <= LEADER_LEASE + 2, f"the survivor took {took:.1f}s to lead"

    assert len(done) == len(set(done)), "a task was acknowledged as completed twice"
    with Client(survivor.url, TOKEN) as op:
        status = op.status()
        assert status["tasks_completed"] == TASKS and status["tasks_in_progress"] == 0
    final = dump_http(survivor.url, TOKEN)  # every task with its history, as served
    assert set(final.tasks) == {f"t{i}" for i in range(TASKS)}
    for tid, task in final.tasks.items():  # exactly one completed attempt each
        outcomes = [a["outcome"] for a in final.history[tid]]
        assert task["status"] == "completed" and outcomes.count("completed") == 1, (
            tid, outcomes)
        if tid in orphaned:
            assert outcomes[0] == "expired", (tid, outcomes)
    assert (survivor.health() or {}).get("leader") is True
