"""The SDK's batch calls (issue 16), blocking and asyncio, against a real server:
`request_batch`, `complete(claim_next=)` and `complete_many`; and reading an answer from
a server that predates them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import LiveServer
from unified_swarm import errors
from unified_swarm.client import AsyncClient, Client, base
from unified_swarm.client.types import OutcomeIn


@pytest.fixture
def op(sqlite_server: LiveServer) -> Iterator[Client]:
    with Client(sqlite_server.url, sqlite_server.token) as client:
        yield client


def test_sync_batch_round_trip(op: Client) -> None:
    me = op.with_token(op.register(["build"], id="w1", max_concurrent_tasks=2)["token"])
    op.add_tasks([{"id": f"t{i}", "type": "build"} for i in range(5)])
    got = me.request_batch(4, wait=1)
    assert len(got) == 2  # the session's room
    rec = me.complete_many([{"task_id": c["task"]["id"],
                             "fencing_token": c["lease"]["fencing_token"], "result": i}
                            for i, c in enumerate(got)], claim_next=2)
    assert [r["duplicate"] for r in rec["results"]] == [False, False]
    assert len(rec["claimed"]) == 2
    seen = {c["task"]["id"] for c in [*got, *rec["claimed"]]}
    cur = rec["claimed"][0]
    one = me.complete(cur["task"]["id"], cur["lease"]["fencing_token"], "x", claim_next=1)
    assert one["task"]["status"] == "completed" and len(one["claimed"]) == 1
    seen.add(one["claimed"][0]["task"]["id"])
    assert seen == {f"t{i}" for i in range(5)}
    plain = me.complete(cur["task"]["id"], cur["lease"]["fencing_token"], "x")
    assert plain["duplicate"] is True and "claimed" not in plain
    with pytest.raises(errors.NotClaimable):  # two run: at its max_concurrent_tasks
        me.request_batch(3)
    with pytest.raises(errors.InvalidInput):
        me.request_batch(0)
    with pytest.raises(errors.InvalidInput):
        me.complete_many([])


async def test_async_batch_round_trip(sqlite_server: LiveServer) -> None:
    async with AsyncClient(sqlite_server.url, sqlite_server.token) as op:
        me = op.with_token((await op.register(["build"], max_concurrent_tasks=3))["token"])
        assert await me.request_batch(3) == []
        await op.add_tasks([{"id": f"t{i}", "type": "build"} for i in range(3)])
        got = await me.request_batch(3, wait=1)
        assert sorted(c["task"]["id"] for c in got) == ["t0", "t1", "t2"]
        first = got[0]
        rec = await me.complete(first["task"]["id"], first["lease"]["fencing_token"],
                                claim_next=1)
        assert rec["claimed"] == []  # nothing left
        stale: OutcomeIn = {"task_id": got[1]["task"]["id"], "fencing_token": 99}
        ok: OutcomeIn = {"task_id": got[2]["task"]["id"], "fencing_token": 1}
        done = await me.complete_many([stale, ok])
        assert done["results"][0]["error"]["code"] in ("lease_lost", "forbidden")
        assert done["results"][1]["task"]["status"] == "completed"


def test_answers_of_a_server_before_batches_are_read() -> None:
    call = base.request_batch(0, 4)
    one: Any = {"task": {"id": "a"}, "lease": {"task_id": "a"}}
    assert call.parse(one) == [one]  # a server that ignores `max` answers one task
    assert call.parse(None) == []  # 204
    assert call.parse({"claimed": [one, one]}) == [one, one]
    assert call.params == {"wait": 0, "max": 4} and call.key is not None
    assert base.complete("a", 1, None).idempotent  # phase 1's call: repeatable as it was
    nxt = base.complete("a", 1, None, claim_next=1)
    assert not nxt.idempotent and nxt.key is not None and nxt.body["max"] == 1
