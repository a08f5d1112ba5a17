"""Every tool and its error paths, with the official MCP client in memory against the tools
acting as a session of a real server (HTTP on loopback, SQLite)."""

from __future__ import annotations

import time
from typing import Any

from mcp import Client
from starlette.routing import Route

from tests.conftest import LiveServer
from tests.mcp.conftest import Agent, held_open
from unified_swarm.mcp.tools import Link, make_server

PINNED = {"swarm_status", "claim_task", "get_task", "report_progress", "complete_task",
          "fail_task", "release_task", "add_tasks", "split_task", "ask_operator",
          "knowledge_get", "knowledge_put"}
NO_DIRECTIVES: dict[str, object] = {"interrupt": None, "drain": False, "preempt": [], "offer": None}


async def test_the_pinned_tools_with_typed_results(agent: Agent) -> None:
    tools = (await agent.mcp.list_tools()).tools
    assert {t.name for t in tools} == PINNED
    for tool in tools:
        assert tool.output_schema is not None, tool.name
        assert "directives" in tool.output_schema["properties"], tool.name
        assert tool.description and len(tool.description) < 2048


async def test_claim_progress_complete_with_directives(agent: Agent) -> None:
    status = await agent.ok("swarm_status")
    assert status["session"]["id"] == "agent-1" and status["held"] == []
    assert status["directives"] == NO_DIRECTIVES and "tasks_ready" in status["swarm"]
    nothing = await agent.ok("claim_task")
    assert nothing["task"] is None and nothing["retry_after_s"] > 0
    added = await agent.ok("add_tasks", {"tasks": [
        {"id": "t1", "type": "build", "input": {"n": 1}, "priority": 9},
        {"id": "t2", "type": "build", "dependencies": ["t1"]}]})
    assert [t["status"] for t in added["tasks"]] == ["ready", "pending"]
    got = await agent.ok("claim_task")
    lease = got["lease"]
    assert got["task"]["id"] == "t1" and lease["session_id"] == "agent-1"
    args = {"task_id": "t1", "fencing_token": lease["fencing_token"]}
    prog = await agent.ok("report_progress", {**args, "progress": 0.5, "message": "half"})
    assert prog["task"]["progress"] == {"value": 0.5, "message": "half"}
    done = await agent.ok("complete_task", {**args, "result": {"answer": 42}})
    assert done["task"]["status"] == "completed" and done["duplicate"] is False
    again = await agent.ok("complete_task", {**args, "result": {"answer": 42}})
    assert again["duplicate"] is True
    detail = await agent.ok("get_task", {"task_id": "t1"})
    assert detail["task"]["result"] == {"answer": 42}
    assert [a["outcome"] for a in detail["history"]] == ["completed"]
    assert (await agent.ok("get_task", {"task_id": "t2"}))["task"]["status"] == "ready"


async def test_a_stale_fencing_token_records_nothing(agent: Agent) -> None:
    await agent.op.add_task("build", id="t")
    lease = (await agent.ok("claim_task", {"task_id": "t"}))["lease"]
    stale = {"task_id": "t", "fencing_token": lease["fencing_token"] + 7}
    for tool, extra in (("complete_task", {"result": "x"}), ("fail_task", {"error": "e"}),
                        ("report_progress", {"progress": 0.9})):
        error = await agent.refused(tool, {**stale, **extra})
        assert error["code"] == "stale_lease", (tool, error)
    task = (await agent.op.get_task("t"))["task"]
    assert task["status"] == "in_progress" and task["result"] is None
    assert task["progress"]["value"] == 0.0 and task["error"] is None
    # and a session that never held the task gets the same answer
    other = agent.op.with_token((await agent.op.register(["build"], id="other"))["token"])

    async def connect(_: object) -> Link:
        return Link(other, who="other")
    async with held_open(Client(make_server(connect))) as theirs:
        result = await theirs.call_tool("complete_task", {
            "task_id": "t", "fencing_token": lease["fencing_token"], "result": "x"})
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["error"]["code"] == "stale_lease"
    assert (await agent.op.get_task("t"))["task"]["status"] == "in_progress"


async def test_fail_with_retry_requeues(agent: Agent) -> None:
    await agent.op.add_task("build", id="t", max_attempts=2)
    lease = (await agent.ok("claim_task"))["lease"]
    failed = await agent.ok("fail_task", {"task_id": "t", "fencing_token":
                                          lease["fencing_token"], "error": "flaky"})
    assert failed["task"]["status"] == "ready" and failed["task"]["attempts"] == 1


async def test_a_repeated_request_key_answers_the_same_lease(agent: Agent) -> None:
    await agent.op.add_tasks([{"id": "a", "type": "build"}, {"id": "b", "type": "build"}])
    first = await agent.ok("claim_task", {"request_key": "k-1"})
    again = await agent.ok("claim_task", {"request_key": "k-1"})
    assert again["lease"] == first["lease"] and again["duplicate"] is True
    assert first["duplicate"] is False
    assert (await agent.op.get_task("b"))["task"]["status"] == "ready"  # no second claim
    held = (await agent.me.heartbeat())["held"]
    assert [h["task_id"] for h in held] == [first["task"]["id"]]


async def test_the_offer_shows_in_directives_and_is_claimed_by_name(agent: Agent) -> None:
    await agent.op.add_task("build", id="t")
    offered = await agent.me.offer_work()
    assert offered is not None
    status = await agent.ok("swarm_status")
    assert status["directives"]["offer"] == offered["offer"]
    got = await agent.ok("claim_task", {"task_id": "t"})
    assert got["task"]["status"] == "in_progress" and got["directives"]["offer"] is None


async def test_a_waiting_claim_reports_progress_and_takes_new_work(agent: Agent) -> None:
    import anyio

    seen: list[tuple[float, float | None]] = []
    waiting = anyio.Event()

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))
        waiting.set()

    result: dict[str, object] = {}

    async def claim() -> None:
        r = await agent.call("claim_task", {"wait_s": 20}, progress_callback=progress)
        result.update(r.structured_content or {})

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(claim)
        with anyio.fail_after(15):
            await waiting.wait()  # the wait has begun (its first progress)
        await agent.op.add_task("build", id="late")
    assert result["task"]["id"] == "late"  # type: ignore[index]
    assert time.monotonic() - t0 < 15
    assert seen[0] == (0.0, 20.0)


async def test_interrupt_and_drain_reach_every_result(agent: Agent) -> None:
    await agent.op.interrupt("release freeze")
    status = await agent.ok("swarm_status")
    assert status["directives"]["interrupt"]["reason"] == "release freeze"
    await agent.op.lift_interrupt()
    await agent.op.drain("agent-1")
    assert (await agent.ok("knowledge_put", {"topic": "x", "content": 1}))["directives"][
        "drain"] is True


async def test_knowledge_and_its_version_conflict(agent: Agent) -> None:
    put = await agent.ok("knowledge_put", {"topic": "api/style", "content": {"v": 1},
                                           "expected_version": 0, "tags": ["style"]})
    assert put["entry"]["version"] == 1
    got = await agent.ok("knowledge_get", {"topic": "api/style"})
    assert got["entry"]["content"] == {"v": 1} and got["entry"]["tags"] == ["style"]
    error = await agent.refused("knowledge_put", {"topic": "api/style", "content": {"v": 2},
                                                  "expected_version": 0})
    assert error["code"] == "version_conflict" and error["current_version"] == 1
    assert error["current"]["content"] == {"v": 1}
    assert (await agent.op.get_knowledge("api/style"))["version"] == 1  # nothing written
    missing = await agent.refused("knowledge_get", {"topic": "nope"})
    assert missing["code"] == "not_found"


async def test_bad_arguments_are_tool_errors(agent: Agent) -> None:
    for tool, args in (("report_progress", {"task_id": "t", "fencing_token": 1,
                                            "progress": 2}),
                       ("claim_task", {"wait_s": -1}), ("add_tasks", {"tasks": []})):
        result = await agent.call(tool, args)
        assert result.is_error, tool
    error = await agent.refused("add_tasks", {"tasks": [{"type": "build",
                                                         "dependencies": ["ghost"]}]})
    assert error["code"] == "unknown_dependency"


MISSING = {"/work/release", "/work/input-request", "/work/{task_id:path}/split"}


def _drop_routes(router: Any, kept: list[tuple[Any, list[Any]]]) -> None:
    """Take the routes out wherever they sit (recent FastAPI nests included routers, and
    those are the api modules' own, shared by every app of this process: `kept` holds what
    to put back)."""
    kept.append((router, list(router.routes)))
    router.routes[:] = [
        r for r in router.routes
        if not (isinstance(r, Route) and r.path in MISSING and "POST" in (r.methods or ()))]
    for route in router.routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            _drop_routes(inner, kept)


async def test_release_ask_and_split_act_on_a_server_that_has_them(agent: Agent) -> None:
    """Their success paths: a release hands the task back with its note, a split leaves the
    parent waiting over its subtasks, a question puts the task in input_required."""
    async def claim() -> tuple[str, int]:
        lease = (await agent.ok("claim_task"))["lease"]
        return lease["task_id"], lease["fencing_token"]

    await agent.op.add_task("build", id="r")
    task_id, token = await claim()
    released = await agent.ok("release_task", {"task_id": task_id, "fencing_token": token,
                                               "note": "half done"})
    assert released["task"]["status"] == "ready"
    await agent.op.cancel("r")
    await agent.op.add_task("build", id="s")
    task_id, token = await claim()
    split = await agent.ok("split_task", {"task_id": task_id, "fencing_token": token,
                                          "subtasks": [{"type": "build"}, {"type": "build"}]})
    assert split["task"]["status"] == "waiting" and len(split["subtasks"]) == 2
    assert {t["parent_id"] for t in split["subtasks"]} == {"s"}
    task_id, token = await claim()
    asked = await agent.ok("ask_operator", {"task_id": task_id, "fencing_token": token,
                                            "question": "which port?"})
    assert asked["task"]["status"] == "input_required"


async def test_tools_whose_endpoint_is_missing_say_not_available(
        sqlite_server: LiveServer, agent: Agent) -> None:
    """The endpoints other work adds (release, input requests, split): a server without
    them answers a plain tool error (the routes are taken out here if this one has them)."""
    kept: list[tuple[Any, list[Any]]] = []
    _drop_routes(sqlite_server.app.router, kept)
    try:
        await agent.op.add_task("build", id="t")
        lease = (await agent.ok("claim_task"))["lease"]
        held = {"task_id": "t", "fencing_token": lease["fencing_token"]}
        for tool, extra in (("release_task", {"note": "n"}), ("ask_operator", {"question": "?"}),
                            ("split_task", {"subtasks": [{"type": "build"}]})):
            error = await agent.refused(tool, {**held, **extra})
            assert error == {"code": "not_available", "message": "not available on this server"}
        assert (await agent.op.get_task("t"))["task"]["status"] == "in_progress"
    finally:
        for router, routes in kept:
            router.routes[:] = routes
