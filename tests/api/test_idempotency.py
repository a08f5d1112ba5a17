"""Idempotency-Key over real HTTP, both stores: the header's grammar and scope, a key
reused with another body, and the SDK against a server whose store loses replies after
their write committed (the store's `faults`): every non-idempotent call still acts once."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveServer
from unified_swarm.client import Client
from unified_swarm.store.replay import LostReplies


def faults(server: LiveServer) -> LostReplies:
    f: LostReplies = getattr(server.orchestrator.store, "faults")  # noqa: B009 (test hook)
    return f


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30.0,
                      headers={"authorization": f"Bearer {live_server.token}"}) as c:
        yield c


def add(http: httpx.Client, key: str | None, body: object) -> httpx.Response:
    headers = {} if key is None else {"idempotency-key": key}
    return http.post("/work", json=body, headers=headers)


def test_the_same_key_gets_the_same_answer_and_one_task(http: httpx.Client) -> None:
    first = add(http, "k-1", {"type": "build"})  # the id is generated: a retry would differ
    again = add(http, "k-1", {"type": "build"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert len(http.get("/work").json()["tasks"]) == 1


def test_a_key_reused_with_another_body_is_refused(http: httpx.Client) -> None:
    assert add(http, "k-1", {"type": "build", "id": "a"}).status_code == 201
    r = add(http, "k-1", {"type": "build", "id": "b"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "idempotency_key_reused"
    assert [t["id"] for t in http.get("/work").json()["tasks"]] == ["a"]


@pytest.mark.parametrize("bad", ["x" * 256, "tab\there", "caf\u00e9"])
def test_a_bad_key_is_a_400_and_changes_nothing(http: httpx.Client, bad: str) -> None:
    r = http.post("/work", json={"type": "build"},
                  headers=[(b"idempotency-key", bad.encode("latin-1"))])
    assert r.status_code == 400, r.text
    assert "Idempotency-Key" in r.json()["error"]["message"]
    assert http.get("/work").json()["tasks"] == []


def test_keys_are_scoped_per_credential(live_server: LiveServer, http: httpx.Client) -> None:
    """The operator and a session sending the same key each act once."""
    join = http.post("/session/register", json={"capabilities": ["build"]},
                     headers={"idempotency-key": "same"}).json()
    session = {"authorization": f"Bearer {join['token']}", "idempotency-key": "same"}
    a = http.put("/knowledge/t", json={"content": 1}, headers={"idempotency-key": "same"})
    b = http.put("/knowledge/t", json={"content": 1}, headers=session)
    assert (a.json()["entry"]["version"], b.json()["entry"]["version"]) == (1, 2)


def test_the_sdk_acts_once_when_the_store_loses_replies(live_server: LiveServer) -> None:
    """Each call's first reply is lost after its write committed (503); the SDK retries
    with the call's key and gets the first answer: one task, one session, one lease, one
    knowledge version, and no AlreadyExists."""
    lost = faults(live_server)
    with Client(live_server.url, live_server.token) as op:
        lost.arm("insert_batch")
        added = op.add_task("build", id="a")
        op.add_task("build", id="b")
        assert added["id"] == "a" and lost.lost["insert_batch"] == 1
        lost.arm("register")
        joined = op.register(["build"], max_concurrent_tasks=2)
        assert lost.lost["register"] == 1
        assert len(op.sessions()) == 1
        lost.arm("put_knowledge")
        assert op.put_knowledge("notes", {"v": 1})["version"] == 1
        with op.with_token(joined["token"]) as me:
            assert me.heartbeat()["session"]["id"] == joined["session"]["id"]  # token works
            lost.arm("claim")
            got = me.request_work()
            assert got is not None and got["task"]["id"] == "a"
            lost.arm("claim")
            named = me.claim("b")
            assert named["lease"]["fencing_token"] == 1
            assert lost.lost["claim"] == 2
            held = sorted(me.heartbeat()["session"]["current_tasks"])
        assert held == ["a", "b"]  # no stray lease, and each claimed once
        tasks = {t["id"]: t for t in op.iter_tasks()}
        assert sorted(tasks) == ["a", "b"]
        assert tasks["a"]["attempts"] == tasks["b"]["attempts"] == 1
        assert op.get_knowledge("notes")["version"] == 1


def test_the_sdk_batch_request_acts_once_when_the_store_loses_its_reply(
        live_server: LiveServer) -> None:
    """`GET /work/request?max=N` with the SDK's key: the first reply is lost after its claim
    committed; the retry gets the same leases, and no task is held without its worker
    knowing (the stray leases a retried batch used to leave)."""
    lost = faults(live_server)
    with Client(live_server.url, live_server.token) as op:
        op.add_tasks([{"type": "build", "id": t} for t in ("a", "b", "c")])
        joined = op.register(["build"], max_concurrent_tasks=3)
        with op.with_token(joined["token"]) as me:
            lost.arm("claim_many")
            got = me.request_batch(max=2)
            assert lost.lost["claim_many"] == 1
            ids = sorted(c["task"]["id"] for c in got)
            assert len(ids) == 2
            assert all(c["lease"]["fencing_token"] == 1 for c in got)
            assert sorted(me.heartbeat()["session"]["current_tasks"]) == ids
        assert sum(t["attempts"] for t in op.iter_tasks()) == 2


def emergency(http: httpx.Client, key: str, body: object) -> httpx.Response:
    return http.post("/swarm/emergency", json=body, headers={"idempotency-key": key})


def test_a_keyed_emergency_answers_its_retry_with_the_first_answer(
        http: httpx.Client) -> None:
    """No id given: the task's id comes from the key, so a retry names the same task; the
    whole answer (task, placement) is kept once made, and a retry gets it, acting no
    second time. Another key is another emergency; the key with another body is refused."""
    body = {"task": {"type": "fix", "title": "now"}, "interrupt": False}
    first = emergency(http, "e-1", body)
    again = emergency(http, "e-1", body)
    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == first.json()
    other = emergency(http, "e-2", body)
    assert other.status_code == 201 and other.json()["task"]["id"] != first.json()["task"]["id"]
    reused = emergency(http, "e-1", {**body, "interrupt": True})
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    tasks = http.get("/work").json()["tasks"]
    assert len(tasks) == 2 and {t["priority"] for t in tasks} == {11}


def test_the_sdk_emergency_acts_once_when_the_store_loses_its_reply(
        live_server: LiveServer) -> None:
    """The kept answer's reply is lost after it committed (503); the SDK retries with its
    key and gets that answer: one task, placed once, and no already_exists."""
    lost = faults(live_server)
    with Client(live_server.url, live_server.token) as op:
        op.register(["fix"])
        lost.arm("emergency")
        placed = op.emergency("fix", title="now", interrupt=False)
        assert lost.lost["emergency"] == 1
        (task,) = op.iter_tasks()
        assert task["id"] == placed["task"]["id"] and task["priority"] == 11
        assert task["assigned_to"] == placed["assigned_to"]  # placed once, as answered
