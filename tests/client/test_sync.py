"""`Client` against a real server on loopback (SQLite unless the backend matters)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import LiveServer
from unified_swarm import errors
from unified_swarm.client import Client


@pytest.fixture
def op(sqlite_server: LiveServer) -> Iterator[Client]:
    with Client(sqlite_server.url, sqlite_server.token) as client:
        yield client


def test_health_needs_no_token(sqlite_server: LiveServer) -> None:
    with Client(sqlite_server.url, token="") as anon:
        health = anon.healthz()
        assert health["status"] == "ok" and health["store"] == "sqlite"
        assert health["leader"] is True
        with pytest.raises(errors.Unauthorized):
            anon.status()


def test_sessions_register_heartbeat_leave(op: Client) -> None:
    reg = op.register(["build", "research"], id="w1", name="worker one",
                      metadata={"host": "laptop"}, heartbeat_interval=5)
    assert reg["session"]["id"] == "w1" and reg["session"]["status"] == "idle"
    assert reg["session"]["metadata"] == {"host": "laptop"} and reg["token"]
    with pytest.raises(errors.AlreadyExists):
        op.register(["build"], id="w1")
    me = op.with_token(reg["token"])
    beat = me.heartbeat()
    assert beat["session"]["id"] == "w1" and beat["held"] == []
    assert beat["directives"] == {"assignments": [], "interrupt": None, "drain": False,
                                  "preempt": []}
    assert [s["id"] for s in op.sessions()] == ["w1"]
    assert op.sessions(status="busy") == []
    assert op.session("w1")["name"] == "worker one"
    with pytest.raises(errors.NotFound):
        op.session("nobody")
    with pytest.raises(errors.Forbidden):
        me.leave("someone-else")
    assert me.leave("w1")["status"] == "offline"
    with pytest.raises(errors.Unauthorized):  # the session's token died with it
        me.heartbeat()
    assert op.register(["build"], id="w1")["token"] != reg["token"]  # offline id resumes


def test_task_round_trip(op: Client) -> None:
    me = op.with_token(op.register(["build"], id="w1")["token"])
    added = op.add_tasks([{"id": "a", "type": "build", "input": {"prompt": "hi"}},
                          {"id": "b", "type": "build", "dependencies": ["a"],
                           "critical": True}])
    assert [(t["id"], t["status"]) for t in added] == [("a", "ready"), ("b", "pending")]
    got = me.request_work(wait=1)
    assert got is not None
    task, lease = got["task"], got["lease"]
    assert task["id"] == "a" and task["input"] == {"prompt": "hi"}
    assert lease["session_id"] == "w1" and lease["fencing_token"] == 1
    prog = me.progress("a", 1, 0.5, "halfway")
    assert prog["task"]["progress"] == {"value": 0.5, "message": "halfway"}
    done = me.complete("a", 1, {"answer": 42})
    assert done["task"]["status"] == "completed" and done["duplicate"] is False
    assert me.complete("a", 1, {"answer": 42})["duplicate"] is True  # a retry is harmless
    with pytest.raises(errors.OutcomeMismatch):
        me.complete("a", 1, {"answer": 41})
    detail = op.get_task("a")
    assert detail["task"]["result"] == {"answer": 42}
    assert [(h["attempt"], h["outcome"]) for h in detail["history"]] == [(1, "completed")]
    nxt = me.request_work()
    assert nxt is not None and nxt["task"]["id"] == "b" and nxt["task"]["priority"] == 9
    failed = me.fail("b", nxt["lease"]["fencing_token"], "boom", retry=False)
    assert failed["task"]["status"] == "failed" and failed["task"]["error"] == "boom"
    assert op.status()["tasks_completed"] == 1


def test_request_work_wait_times_out_with_none(op: Client) -> None:
    me = op.with_token(op.register(["build"])["token"])
    t0 = time.monotonic()
    assert me.request_work(wait=0.3) is None
    assert time.monotonic() - t0 >= 0.29


def test_long_poll_outlasts_the_client_timeout(sqlite_server: LiveServer) -> None:
    """The read timeout of a long-poll is stretched past `wait`."""
    with Client(sqlite_server.url, sqlite_server.token, timeout=0.5) as op:
        me = op.with_token(op.register(["build"])["token"])
        t0 = time.monotonic()
        assert me.request_work(wait=1.0) is None
        assert time.monotonic() - t0 >= 0.99


def test_add_task_fields_and_listing_pages(op: Client) -> None:
    one = op.add_task("research", id="r1", title="read", input=[1, 2], priority=7,
                      required_capability="build", estimated_hours=2.5, max_attempts=5)
    assert (one["title"], one["priority"], one["required_capability"]) == ("read", 7, "build")
    assert one["max_attempts"] == 5 and one["estimated_hours"] == 2.5
    op.add_tasks([{"id": f"t{i}", "type": "build"} for i in range(5)])
    first = op.list_tasks(limit=2)
    assert len(first["tasks"]) == 2 and first["next_cursor"]
    second = op.list_tasks(limit=2, cursor=first["next_cursor"])
    assert not {t["id"] for t in first["tasks"]} & {t["id"] for t in second["tasks"]}
    assert sorted(t["id"] for t in op.iter_tasks(page_size=2)) == [
        "r1", "t0", "t1", "t2", "t3", "t4"]
    assert [t["id"] for t in op.list_tasks(capability="build", status="ready",
                                           limit=1000)["tasks"]] != []


def test_errors_come_back_as_the_server_raised_them(op: Client) -> None:
    me = op.with_token(op.register(["build"], id="w1")["token"])
    with pytest.raises(errors.NotFound):
        op.get_task("missing")
    with pytest.raises(errors.ValidationFailed) as bad:
        op.add_task("build", priority=11)
    assert isinstance(bad.value, errors.InvalidInput) and "priority" in bad.value.message
    with pytest.raises(errors.UnknownDependency):
        op.add_task("build", dependencies=["ghost"])
    with pytest.raises(errors.DependencyCycle):
        op.add_tasks([{"id": "x", "type": "build", "dependencies": ["y"]},
                      {"id": "y", "type": "build", "dependencies": ["x"]}])
    with pytest.raises(errors.Forbidden):
        me.drain("w1")  # operator only
    with pytest.raises(errors.Unauthorized):
        op.with_token("not-a-token").status()
    with pytest.raises(errors.InvalidInput):
        op.add_task("build", input=float("nan"))  # refused before it is sent


def test_stale_fencing_token_raises_lease_lost(op: Client) -> None:
    """A session whose lease ran out is refused, and its late result is not recorded."""
    quiet = op.with_token(op.register(["build"], id="quiet", heartbeat_interval=0.2)["token"])
    alive = op.with_token(op.register(["build"], id="alive")["token"])
    op.add_task("build", id="job")
    first = quiet.claim("job")["lease"]
    second = alive.request_work(wait=10)  # the lease (0.6 s) expires, the task comes back
    assert second is not None and second["lease"]["fencing_token"] > first["fencing_token"]
    with pytest.raises(errors.LeaseLost):
        quiet.complete("job", first["fencing_token"], "late")
    with pytest.raises(errors.NotClaimable):
        op.with_token(op.register(["build"], id="third")["token"]).claim("job")
    fresh = alive.complete("job", second["lease"]["fencing_token"], "fresh")
    assert fresh["task"]["result"] == "fresh"
    assert [h["outcome"] for h in op.get_task("job")["history"]] == ["expired", "completed"]


def test_outcome_of_an_ended_attempt_is_not_rewritten(op: Client) -> None:
    me = op.with_token(op.register(["build"], id="w1")["token"])
    op.add_task("build", id="job", max_attempts=3)
    first = me.claim("job")["lease"]
    me.fail("job", first["fencing_token"], "flaky", retry=True)
    assert me.fail("job", first["fencing_token"], "flaky")["duplicate"] is True
    with pytest.raises(errors.OutcomeMismatch):
        me.complete("job", first["fencing_token"], "late")
    again = me.claim("job")["lease"]
    assert again["fencing_token"] > first["fencing_token"]
    with pytest.raises(errors.LeaseLost):
        me.progress("job", again["fencing_token"] + 1, 0.9)


def test_cancel_blocks_dependents(op: Client) -> None:
    op.add_tasks([{"id": "a", "type": "build"},
                  {"id": "b", "type": "build", "dependencies": ["a"]}])
    assert op.cancel("a", "not needed")["status"] == "cancelled"
    assert op.get_task("b")["task"]["status"] == "blocked"


def test_interrupt_and_drain_reach_the_heartbeat(op: Client) -> None:
    me = op.with_token(op.register(["build"], id="w1")["token"])
    assert op.interrupt("deploy freeze")["reason"] == "deploy freeze"
    directive = me.heartbeat()["directives"]["interrupt"]
    assert directive is not None and directive["reason"] == "deploy freeze"
    op.add_task("build", id="held-back")
    assert me.request_work() is None  # interrupted: nothing is handed out
    op.lift_interrupt()
    assert me.heartbeat()["directives"]["interrupt"] is None
    assert op.drain("w1")["status"] == "draining"
    assert me.heartbeat()["directives"]["drain"] is True


def test_knowledge_versions_tags_and_conflicts(op: Client) -> None:
    v1 = op.put_knowledge("design/api", {"style": "rest"}, expected_version=0, tags=["api"])
    assert (v1["version"], v1["updated_by"], v1["tags"]) == (1, "operator", ["api"])
    with pytest.raises(errors.StaleVersion):
        op.put_knowledge("design/api", {"style": "rpc"}, expected_version=0)
    v2 = op.put_knowledge("design/api", {"style": "graphql"}, expected_version=1)
    assert v2["version"] == 2
    op.put_knowledge("notes", "plain text")
    assert op.get_knowledge("design/api")["content"] == {"style": "graphql"}
    assert op.get_knowledge("design/api", version=1)["content"] == {"style": "rest"}
    assert op.list_knowledge(tag="api") == []  # the latest version has no tags
    op.put_knowledge("design/api", {"style": "graphql"}, tags=["api", "v3"])
    assert [e["topic"] for e in op.list_knowledge(tag="api")] == ["design/api"]
    assert {e["topic"] for e in op.list_knowledge()} == {"design/api", "notes"}
    with pytest.raises(errors.StaleVersion):
        op.delete_knowledge("notes", expected_version=7)
    assert op.delete_knowledge("notes")["deleted"] is True
    with pytest.raises(errors.NotFound):
        op.get_knowledge("never-written")


def test_with_token_shares_the_connections(sqlite_server: LiveServer) -> None:
    op = Client(sqlite_server.url, sqlite_server.token)
    me = op.with_token(op.register(["build"])["token"])
    assert me.token != op.token and sqlite_server.token not in repr(op)
    me.close()  # leaves the shared pool open
    assert op.status()["total_sessions"] == 1
    op.close()


def test_round_trip_on_each_backend(live_server: LiveServer) -> None:
    with Client(live_server.url, live_server.token) as op:
        me = op.with_token(op.register(["build"], id="w1")["token"])
        op.add_task("build", id="job")
        got = me.request_work(wait=2)
        assert got is not None
        lease = got["lease"]
        assert me.complete("job", lease["fencing_token"], {"ok": 1})["duplicate"] is False
        with pytest.raises(errors.LeaseLost):
            me.complete("job", lease["fencing_token"] + 1, {"ok": 1})
        assert op.get_task("job")["task"]["status"] == "completed"
