"""`/mcp` on the server, through the whole FastAPI stack over real HTTP on loopback, with the
official MCP client (streamable HTTP)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import LiveServer
from tests.mcp.conftest import held_open
from unified_swarm.client import AsyncClient
from unified_swarm.mcp.tools import MAX_TOOL_WAIT

INIT = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}


@asynccontextmanager
async def over_http(server: LiveServer, token: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"},
                              timeout=httpx2.Timeout(60, read=120))
    async with http, held_open(Client(streamable_http_client(
            f"{server.url}/mcp", http_client=http))) as client:
        yield client


async def session_token(server: LiveServer, sid: str) -> str:
    async with AsyncClient(server.url, server.token) as op:
        return (await op.register(["build"], id=sid))["token"]


def test_no_token_a_wrong_one_or_a_foreign_origin_is_refused(sqlite_server: LiveServer) -> None:
    headers = {"Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}
    url = f"{sqlite_server.url}/mcp"
    none = httpx.post(url, json=INIT, headers=headers)
    assert none.status_code == 401 and none.json()["error"]["code"] == "unauthorized"
    assert none.headers["www-authenticate"] == "Bearer"
    wrong = httpx.post(url, json=INIT, headers={**headers, "Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    foreign = httpx.post(url, json=INIT, headers={
        **headers, "Authorization": f"Bearer {sqlite_server.token}",
        "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    big = httpx.post(url, content=b"[" + b" " * (17 * 1024 * 1024) + b"]", headers={
        **headers, "Authorization": f"Bearer {sqlite_server.token}"})
    assert big.status_code == 413  # the API's body cap (16 MiB) holds here too


async def test_a_session_works_over_http_and_the_answer_streams(
        sqlite_server: LiveServer) -> None:
    token = await session_token(sqlite_server, "remote")
    async with AsyncClient(sqlite_server.url, sqlite_server.token) as op:
        await op.add_task("build", id="t")
    async with over_http(sqlite_server, token) as mcp:
        got = await mcp.call_tool("claim_task", {"request_key": "r1"})
        assert not got.is_error and got.structured_content is not None
        lease = got.structured_content["lease"]
        assert lease["session_id"] == "remote"
        done = await mcp.call_tool("complete_task", {
            "task_id": "t", "fencing_token": lease["fencing_token"], "result": "ok"})
        assert done.structured_content is not None
        assert done.structured_content["task"]["status"] == "completed"
    # tools/call answers as an event stream, never one JSON body (a client cut at its
    # first-byte timeout would leave a waiting call running on)
    async with httpx.AsyncClient() as raw:
        reply = await raw.post(f"{sqlite_server.url}/mcp", headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "Mcp-Method": "tools/call", "Mcp-Name": "swarm_status"}, json={
            "jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "swarm_status", "arguments": {}, "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"}}}})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/event-stream")


async def test_the_operator_reads_but_cannot_claim(sqlite_server: LiveServer) -> None:
    async with over_http(sqlite_server, sqlite_server.token) as mcp:
        status = await mcp.call_tool("swarm_status", {})
        assert status.structured_content is not None
        assert status.structured_content["session"] is None
        assert status.structured_content["directives"]["interrupt"] is None
        claim = await mcp.call_tool("claim_task", {})
        assert claim.is_error and claim.structured_content is not None
        assert claim.structured_content["error"]["code"] == "forbidden"
        added = await mcp.call_tool("add_tasks", {"tasks": [{"type": "build", "id": "x"}]})
        assert not added.is_error


async def test_a_cancelled_wait_leaves_no_lease(sqlite_server: LiveServer) -> None:
    token = await session_token(sqlite_server, "impatient")
    started = anyio.Event()

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with over_http(sqlite_server, token) as mcp, anyio.create_task_group() as tg:
        async def claim() -> None:
            await mcp.call_tool("claim_task", {"wait_s": 20}, progress_callback=progress)
        tg.start_soon(claim)
        with anyio.fail_after(15):
            await started.wait()
        tg.cancel_scope.cancel()  # the client gives up mid-wait: its stream closes
    async with AsyncClient(sqlite_server.url, sqlite_server.token) as op:
        me = op.with_token(token)
        for _ in range(300):  # the server hears of the hang-up (at most 15 s)
            if not sqlite_server.orchestrator.offer_waiters:
                break
            await anyio.sleep(0.05)
        assert sqlite_server.orchestrator.offer_waiters == {}
        await op.add_task("build", id="after")
        await anyio.sleep(0.5)
        assert (await op.get_task("after"))["task"]["status"] == "ready"
        assert (await me.heartbeat())["held"] == []


async def test_a_claim_waits_at_most_25_seconds_and_streams_progress(
        sqlite_server: LiveServer) -> None:
    token = await session_token(sqlite_server, "patient")
    seen: list[float] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)
        assert total == MAX_TOOL_WAIT

    async with over_http(sqlite_server, token) as mcp:
        t0 = time.monotonic()
        result = await mcp.call_tool("claim_task", {"wait_s": 600},
                                     progress_callback=progress)
        took = time.monotonic() - t0
    content: dict[str, Any] = result.structured_content or {}
    assert content["task"] is None and content["lease"] is None
    assert MAX_TOOL_WAIT - 1 <= took < MAX_TOOL_WAIT + 10
    assert len(seen) >= 4 and seen == sorted(seen)  # every 5 s while it waited
