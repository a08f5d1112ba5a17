"""`swarm mcp`, the stdio bridge, as an agent CLI runs it: a real `swarm mcp` process spawned by
the official MCP client's stdio transport, against a real server on loopback."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from tests.conftest import LiveServer
from tests.mcp.conftest import held_open
from unified_swarm.agents import identity
from unified_swarm.client import AsyncClient
from unified_swarm.client import Client as SyncClient

SWARM = str(Path(sys.executable).parent / "swarm")


def bridge_env(server: LiveServer, data: Path, cli_id: str | None,
               token: str | None = None) -> dict[str, str]:
    env = {"SWARM_URL": server.url, "SWARM_DATA_DIR": str(data)}
    if token is not None:
        env["SWARM_TOKEN"] = token
    if cli_id is not None:
        env["CLAUDE_CODE_SESSION_ID"] = cli_id
    return env


@asynccontextmanager
async def bridge(env: dict[str, str], *args: str) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=SWARM, args=["mcp", *args], env=env)
    async with held_open(Client(params)) as client:
        yield client


async def sessions(server: LiveServer) -> dict[str, dict[str, object]]:
    async with AsyncClient(server.url, server.token) as op:
        return {s["id"]: dict(s) for s in await op.sessions()}


async def test_the_bridge_registers_beats_works_and_leaves(sqlite_server: LiveServer,
                                                           tmp_path: Path) -> None:
    env = bridge_env(sqlite_server, tmp_path, "cli-4f1c", sqlite_server.token)
    async with bridge(env, "--heartbeat-interval", "0.6", "--hook-grace", "0",
                      "--capabilities", "build") as mcp:
        status = (await mcp.call_tool("swarm_status", {})).structured_content
        assert status is not None
        me = status["session"]
        assert me["name"] == "claude-cli-4f1c" and me["capabilities"] == ["build"]
        assert me["metadata"]["cli_session_id"] == "cli-4f1c"
        assert me["metadata"]["joined_by"] == "mcp"
        path = identity.token_path(tmp_path, "cli-4f1c")  # for the hooks of this CLI session
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert identity.read_identity(tmp_path, "cli-4f1c").session_id == me["id"]  # type: ignore[union-attr]
        # the heartbeat thread keeps the session alive while no tool is called
        first = (await sessions(sqlite_server))[me["id"]]["last_heartbeat"]
        for _ in range(100):  # at most 10 s
            await anyio.sleep(0.1)
            if (await sessions(sqlite_server))[me["id"]]["last_heartbeat"] != first:
                break
        assert (await sessions(sqlite_server))[me["id"]]["last_heartbeat"] != first
        async with AsyncClient(sqlite_server.url, sqlite_server.token) as op:
            await op.add_tasks([{"id": "a", "type": "build"}, {"id": "b", "type": "build"}])
        a = (await mcp.call_tool("claim_task", {"task_id": "a"})).structured_content
        assert a is not None and a["lease"]["session_id"] == me["id"]
        done = (await mcp.call_tool("complete_task", {
            "task_id": "a", "fencing_token": a["lease"]["fencing_token"], "result": 1}))
        assert done.structured_content is not None
        assert done.structured_content["task"]["status"] == "completed"
        b = (await mcp.call_tool("claim_task", {"task_id": "b"})).structured_content
        assert b is not None and b["task"]["status"] == "in_progress"
    # the client closed the bridge's stdin: the session left, what it held went back
    s = (await sessions(sqlite_server))[me["id"]]
    assert s["status"] == "offline"
    async with AsyncClient(sqlite_server.url, sqlite_server.token) as op:
        assert (await op.get_task("b"))["task"]["status"] == "ready"
    assert not path.exists()


async def test_the_bridge_acts_as_the_hooks_session(sqlite_server: LiveServer,
                                                    tmp_path: Path) -> None:
    async with AsyncClient(sqlite_server.url, sqlite_server.token) as op:
        reg = await op.register(["research"], id="from-hook",
                                metadata={"cli_session_id": "abc"})
    identity.write_token(tmp_path, "abc", reg["token"], session_id="from-hook",
                         url=sqlite_server.url)
    # no operator token at all: the hook's session token is all the bridge needs
    async with bridge(bridge_env(sqlite_server, tmp_path, "abc"), "--hook-grace", "0") as mcp:
        status = (await mcp.call_tool("swarm_status", {})).structured_content
        assert status is not None and status["session"]["id"] == "from-hook"
    assert set(await sessions(sqlite_server)) == {"from-hook"}  # no second session


def test_stdin_closed_the_bridge_leaves_and_exits_by_itself(sqlite_server: LiveServer,
                                                            tmp_path: Path) -> None:
    env = {**os.environ, **bridge_env(sqlite_server, tmp_path, "eof-1", sqlite_server.token)}
    with subprocess.Popen([SWARM, "mcp", "--hook-grace", "0"], env=env,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        try:
            sid, token = registered(tmp_path, "eof-1")
            with SyncClient(sqlite_server.url, sqlite_server.token) as op:
                assert op.session(sid)["status"] in ("idle", "busy")
                op.add_task("build", id="t")
                assert op.with_token(token).offer_work() is not None
                assert proc.stdin is not None
                proc.stdin.close()  # the agent CLI is gone
                t0 = time.monotonic()
                assert proc.wait(timeout=15) == 0
                assert time.monotonic() - t0 < 10
                assert op.session(sid)["status"] == "offline"
                # the offer it held went back at once
                assert op.get_task("t")["task"]["status"] == "ready"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(15)
        assert proc.stdout is not None and proc.stderr is not None
        out, err = proc.stdout.read(), proc.stderr.read()
    assert out == b""  # nothing but the protocol on stdout (and no message was sent)
    assert b"left the swarm" in err


def registered(data: Path, cli_id: str) -> tuple[str, str]:
    """The session the bridge registered, once its token file is there (at most 30 s: a
    loaded machine starts a process slowly)."""
    for _ in range(300):
        found = identity.read_identity(data, cli_id)
        if found is not None:
            return found.session_id, found.token
        time.sleep(0.1)
    raise AssertionError("the bridge wrote no token file")


def test_without_a_hook_or_an_operator_token_it_says_why(sqlite_server: LiveServer,
                                                         tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SWARM_TOKEN"}
    env.update(bridge_env(sqlite_server, tmp_path, "lost"))
    done = subprocess.run([SWARM, "mcp", "--hook-grace", "0"], env=env, input=b"",
                          capture_output=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 6, done.stderr
    assert b"no operator token" in done.stderr
    with SyncClient(sqlite_server.url, sqlite_server.token) as op:
        assert op.sessions() == []


def test_a_lent_bridge_leaves_the_lenders_session_alone(sqlite_server: LiveServer,
                                                         tmp_path: Path) -> None:
    """The Claude executor lends the worker's own session to the bridge of one `claude -p`
    run: when that run ends (stdin closes), the bridge must not end the worker's session nor
    give back what the worker holds."""
    with SyncClient(sqlite_server.url, sqlite_server.token) as op:
        reg = op.register(["build"], id="worker-1")
        op.add_task("build", id="held")
        me = op.with_token(reg["token"])
        lease = me.request_work()
        assert lease is not None and lease["task"]["id"] == "held"
        path = identity.write_token(tmp_path, "attempt-1", reg["token"], session_id="worker-1",
                                    url=sqlite_server.url)
        env = {k: v for k, v in os.environ.items() if k != "SWARM_TOKEN"}
        env.update(bridge_env(sqlite_server, tmp_path, "attempt-1"))
        env["SWARM_MCP_LENT"] = "1"
        done = subprocess.run([SWARM, "mcp", "--hook-grace", "0"], env=env, input=b"",
                              capture_output=True, timeout=60, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert b"was lent, so it stays" in done.stderr and b"left the swarm" not in done.stderr
        assert op.session("worker-1")["status"] == "busy"
        task = op.get_task("held")["task"]
        assert task["status"] == "in_progress" and task["assigned_to"] == "worker-1"
        assert path.exists()  # the lender's file: the lender removes it
        assert [s["id"] for s in op.sessions()] == ["worker-1"]  # it registered nobody


def test_a_lent_bridge_without_a_token_file_registers_nobody(sqlite_server: LiveServer,
                                                             tmp_path: Path) -> None:
    env = {**os.environ, **bridge_env(sqlite_server, tmp_path, "nothing-lent",
                                      sqlite_server.token), "SWARM_MCP_LENT": "1"}
    done = subprocess.run([SWARM, "mcp", "--hook-grace", "0"], env=env, input=b"",
                          capture_output=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 6, done.stderr
    assert b"no usable token file was lent" in done.stderr
    with SyncClient(sqlite_server.url, sqlite_server.token) as op:
        assert op.sessions() == []
