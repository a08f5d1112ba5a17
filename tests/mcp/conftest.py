"""What the MCP tests share: a real server, a session of it, and the official MCP client
connected in memory to the tools acting as that session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from mcp import Client
from mcp_types import CallToolResult

from tests.conftest import LiveServer
from unified_swarm.client import AsyncClient
from unified_swarm.mcp.tools import Link, make_server


@dataclass
class Agent:
    """The operator's SDK client, the session's, and the MCP client acting as the session."""

    op: AsyncClient
    me: AsyncClient
    session_id: str
    mcp: Client

    async def call(self, tool: str, args: dict[str, Any] | None = None,
                   **kw: Any) -> CallToolResult:
        return await self.mcp.call_tool(tool, args or {}, **kw)

    async def ok(self, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        result = await self.call(tool, args)
        assert not result.is_error, result.structured_content
        assert result.structured_content is not None
        assert "directives" in result.structured_content
        content: dict[str, Any] = result.structured_content
        return content

    async def refused(self, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        result = await self.call(tool, args)
        assert result.is_error, result.structured_content
        assert result.structured_content is not None
        error: dict[str, Any] = result.structured_content["error"]
        return error


@asynccontextmanager
async def held_open(client: Client) -> AsyncIterator[Client]:
    """The client, connected from a task of its own: a fixture's setup and teardown run in
    different tasks, and the client's task group must be left by the task that entered it."""
    ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def hold() -> None:
        try:
            async with client as connected:
                ready.set_result(connected)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    holder = asyncio.create_task(hold())
    try:
        yield await asyncio.wait_for(ready, 30)
    finally:
        stop.set()
        await asyncio.wait_for(holder, 30)


@pytest.fixture
async def agent(sqlite_server: LiveServer) -> AsyncIterator[Agent]:
    async with AsyncClient(sqlite_server.url, sqlite_server.token) as op:
        reg = await op.register(["build"], id="agent-1")
        me = op.with_token(reg["token"])

        async def connect(_: Any) -> Link:
            return Link(me, who="agent-1")
        async with held_open(Client(make_server(connect), raise_exceptions=True)) as client:
            yield Agent(op, me, "agent-1", client)
