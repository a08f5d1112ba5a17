"""Two `swarm server` replicas on one redis-server, the same local pool on both: only the
leader starts workers and records `pool.scaled`; the follower publishes the same decision
(GET /swarm/scaling answers on either) but starts nothing. With the leader SIGKILLed, its
workers (orphaned, their server gone) fall silent and go offline; the survivor, now the
leader, restores the pool with workers of its own. The pool's online sessions never exceed
its max, so the two never both scaled."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from unified_swarm.client import Client
from unified_swarm.client.types import Session
from unified_swarm.procs import RedisServer, SwarmServer

from .helpers import (
    TOKEN,
    events,
    pool,
    reaping,
    start_server,
    wait_for,
    worker_command,
    write_pools,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]
SIZE = 2


@pytest.fixture
def redis(tmp_path: Path, redis_server: object) -> Iterator[RedisServer]:
    """`redis_server` only for its skip / CI-fail rule: this test runs a private one."""
    proc = RedisServer(tmp_path / "redis").start()
    yield proc
    proc.kill()


def online_pool_sessions(op: Client) -> list[Session]:
    return [s for s in op.sessions() if s["status"] != "offline"
            and s["metadata"].get("pool") == "build"]


def test_only_the_leader_scales(tmp_path: Path, redis: RedisServer) -> None:
    # a short heartbeat, so orphaned workers go offline soon after their server dies
    pools = write_pools(tmp_path / "pools.toml", {"build": {
        "capabilities": ["build"], "min": SIZE, "max": SIZE, "interval": 0.5,
        "command": worker_command(tmp_path / "effects", heartbeat=0.5)}})
    env = {"SWARM_REDIS_PREFIX": "scale"}
    servers: list[SwarmServer] = []
    pids: set[int] = set()
    with reaping(pids):
        try:
            servers += [start_server(tmp_path, f"r{n}", pools, redis.url, env)
                        for n in range(2)]
            leader, follower = _roles(servers)
            with Client(leader.url, TOKEN) as op, Client(follower.url, TOKEN) as fop:
                wait_for(lambda: len(online_pool_sessions(op)) == SIZE, "the pool's sessions")
                led, followed = pool(op, "build"), pool(fop, "build")
                pids.update(w["pid"] for w in led["spawner_status"]["workers"])
                assert len(led["spawner_status"]["workers"]) == SIZE
                # the follower decides too (so KEDA may read either) but starts nothing
                assert followed["desired"] == SIZE and followed["spawner_status"]["spawned"] == 0
                first = events(leader.url)
                assert {e["data"]["replica_id"] for e in first if e["type"] == "pool.scaled"} \
                    == {leader.name}

                leader.kill()
                wait_for(lambda: (follower.health() or {}).get("leader"), "a takeover")
                survivor = wait_for(lambda: len((p := pool(fop, "build"))["spawner_status"]
                                                ["workers"]) == SIZE and p,
                                    "the survivor's own workers")
                pids.update(w["pid"] for w in survivor["spawner_status"]["workers"])
                wait_for(lambda: len(online_pool_sessions(fop)) == SIZE, "a full pool again")
                mine = {w["session_id"] for w in survivor["spawner_status"]["workers"]}
                assert {s["id"] for s in online_pool_sessions(fop)} == mine
                scaled = [e for e in events(follower.url) if e["type"] == "pool.scaled"]
                by = [e["data"]["replica_id"] for e in scaled]
                # one replica at a time: the leader's events, then only the survivor's
                assert by == sorted(by, key=lambda r: r != leader.name)
                assert by[-1] == follower.name
                # never more online pool sessions than max: a start of the survivor came
                # only after the orphans went offline
                _assert_never_above(follower.url, SIZE)
        finally:
            for s in servers:
                if s.alive:
                    s.kill()


def _roles(servers: list[SwarmServer]) -> tuple[SwarmServer, SwarmServer]:
    lead = wait_for(lambda: next((s for s in servers if (s.health() or {}).get("leader")),
                                 None), "a leader")
    return lead, next(s for s in servers if s is not lead)


def _assert_never_above(url: str, limit: int) -> None:
    """Replay the session events of the pool's ids: online at most `limit` at any seq."""
    online: set[str] = set()
    for ev in events(url, prefix="session"):
        sid = ev["data"]["session_id"]
        if not sid.startswith("build-"):
            continue
        if ev["type"] == "session.joined":
            online.add(sid)
        elif ev["type"] in ("session.left", "session.offline"):
            online.discard(sid)
        assert len(online) <= limit, (ev, online)
