"""`split()` in the SDK, sync and async twins, against a real server on loopback."""

from __future__ import annotations

import pytest

from tests.conftest import LiveServer
from unified_swarm import errors
from unified_swarm.client import AsyncClient, Client


def test_sync_split_and_merge_object(sqlite_server: LiveServer) -> None:
    with Client(sqlite_server.url, sqlite_server.token) as op:
        me = op.with_token(op.register([], id="w1", max_concurrent_tasks=5)["token"])
        op.add_tasks([{"id": "p", "type": "build", "context_topics": ["notes"]}])
        lease = me.claim("p")["lease"]
        done = me.split("p", lease["fencing_token"],
                        [{"id": "a", "type": "build"}, {"id": "b", "type": "build"}],
                        merge="object")
        assert done["task"]["status"] == "waiting" and not done["duplicate"]
        assert me.split("p", lease["fencing_token"],
                        [{"id": "a", "type": "build"}, {"id": "b", "type": "build"}],
                        merge="object")["duplicate"] is True
        for tid in ("a", "b"):
            got = me.claim(tid)["lease"]
            me.complete(tid, got["fencing_token"], tid.upper())
        assert op.get_task("p")["task"]["result"] == {"a": "A", "b": "B"}
        with pytest.raises(errors.LeaseLost):
            me.complete("p", lease["fencing_token"], "late")


async def test_async_split_with_a_merge_task(sqlite_server: LiveServer) -> None:
    async with AsyncClient(sqlite_server.url, sqlite_server.token) as op:
        me = op.with_token((await op.register([], id="w1", max_concurrent_tasks=5))["token"])
        await op.add_task("build", id="p")
        lease = (await me.claim("p"))["lease"]
        done = await me.split("p", lease["fencing_token"], [{"id": "a", "type": "build"}],
                              merge={"task": {"type": "build", "id": "m"}})
        assert [t["id"] for t in done["subtasks"]] == ["a", "m"]
        with pytest.raises(errors.InvalidInput):
            await me.split("p", lease["fencing_token"], [], merge="list")
