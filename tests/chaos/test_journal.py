"""The SDK journals every settled call with the right outcome, against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import LiveServer
from unified_swarm.chaos.history import read_histories
from unified_swarm.chaos.journal import ClientJournal
from unified_swarm.client import Client
from unified_swarm.client.base import NO_RETRY
from unified_swarm.errors import LeaseLost, Unavailable


def test_calls_are_journaled(sqlite_server: LiveServer, tmp_path: Path) -> None:
    hook = ClientJournal.in_dir(str(tmp_path))
    with Client(sqlite_server.url, sqlite_server.token, on_call=hook) as op:
        reg = op.register(["build"], id="w1")
        op.add_tasks([{"id": "a", "type": "build"}])
        op.put_knowledge("k", {"v": 1})
        me = op.with_token(reg["token"])
        got = me.request_work()
        assert got is not None
        with pytest.raises(LeaseLost):
            me.complete("a", 9, result="stale")
        me.complete("a", got["lease"]["fencing_token"], result={"done": True})
    with pytest.raises(Unavailable):  # nobody listens there: indeterminate, "info"
        Client("http://127.0.0.1:9", "x", retry=NO_RETRY, timeout=1, on_call=hook).status()
    with Client("http://127.0.0.1:9", "x", retry=NO_RETRY, timeout=1, on_call=hook) as dead, \
            pytest.raises(Unavailable):
        dead.complete("a", 1)
    ops = [(o.op, o.outcome, o.task, o.token, o.session) for o in read_histories(tmp_path)]
    assert ops == [
        ("register", "ok", None, None, None),
        ("add", "ok", None, None, None),
        ("knowledge_put", "ok", None, None, None),
        ("request", "ok", "a", 1, "w1"),
        ("complete", "fail", "a", 9, "w1"),
        ("complete", "ok", "a", 1, "w1"),
        ("complete", "info", "a", 1, None),
    ]
    journal = read_histories(tmp_path)
    assert journal[1].data["ids"] == ["a"]
    assert journal[2].data["topic"] == "k" and journal[2].data["version"] == 1
    assert all(o.invoke <= o.complete for o in journal)


def test_every_claim_of_a_batch_or_a_complete_and_next_is_journaled(
        sqlite_server: LiveServer, tmp_path: Path) -> None:
    """A call that may claim several tasks writes one "request" line per task it may claim:
    the checker counts every attempt against a journaled claim (or a call with no answer)."""
    hook = ClientJournal.in_dir(str(tmp_path))
    with Client(sqlite_server.url, sqlite_server.token, on_call=hook) as op:
        me = op.with_token(op.register(["build"], id="w1", max_concurrent_tasks=3)["token"])
        op.add_tasks([{"id": t, "type": "build"} for t in ("a", "b", "c")])
        got = me.request_batch(3)  # a, b, c: three claims in one call
        assert len(got) == 3
        first = got[0]["lease"]
        rec = me.complete(first["task_id"], first["fencing_token"], claim_next=1)
        assert rec["claimed"] == []  # nothing left: the companion line claims nothing
    with Client("http://127.0.0.1:9", "x", retry=NO_RETRY, timeout=1, on_call=hook) as dead, \
            pytest.raises(Unavailable):
        dead.complete("b", 1, claim_next=1)  # no answer: it may have claimed one
    ops = [(o.op, o.outcome, o.task, o.session) for o in read_histories(tmp_path)]
    claims = [(outcome, task) for name, outcome, task, _ in ops if name == "request"]
    assert sorted(t for o, t in claims if o == "ok" and t) == ["a", "b", "c"]
    assert ("ok", None) in claims  # the complete's next: answered, claimed nothing
    assert ("info", None) in claims  # the unanswered one: counted as a possible claim
    assert [o for name, o, _, _ in ops if name == "complete"] == ["ok", "info"]
