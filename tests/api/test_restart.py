"""A server restarted on the same data dir finds every session, task, lease and knowledge
version where it was, and the session's token and lease still work."""

from __future__ import annotations

from typing import Any

from unified_swarm.config import Settings

from ..conftest import LiveServer
from .wire import Wire


def snapshot(op: Wire) -> dict[str, Any]:
    """Everything a client can read of the swarm's state."""
    return {
        "sessions": op.ok("GET", "/sessions")["sessions"],
        "tasks": op.ok("GET", "/work")["tasks"],
        "a": op.ok("GET", "/work/a"),
        "knowledge": op.ok("GET", "/knowledge")["entries"],
        "v1": op.ok("GET", "/knowledge/plan", params={"version": 1})["entry"],
        "status": op.ok("GET", "/swarm/status"),
    }


def test_restart_keeps_everything(settings: Settings) -> None:
    first = LiveServer(settings).start()
    try:
        with Wire(first.url, first.token) as op:
            token = op.register("w1", ["build"], heartbeat_interval=60)
            op.register("w2", ["research"])
            op.ok("POST", "/work", json={"tasks": [
                {"id": "a", "type": "build", "input": {"n": 1}},
                {"id": "b", "type": "build", "dependencies": ["a"]}]})
            op.ok("PUT", "/knowledge/plan", json={"content": "v1"})
            op.ok("PUT", "/knowledge/plan", json={"content": "v2", "expected_version": 1})
            with Wire(first.url, token) as me:
                lease = me.ok("GET", "/work/request")["lease"]
            before = snapshot(op)
    finally:
        first.stop()

    second = LiveServer(settings).start()
    try:
        with Wire(second.url, second.token) as op:
            after = snapshot(op)
            assert after == before
            assert after["a"]["task"]["status"] == "in_progress"
            assert after["a"]["task"]["lease_expires_at"] == lease["expires_at"]
            with Wire(second.url, token) as me:  # the session's token and lease survive
                done = me.ok("POST", "/work/complete", json={
                    "task_id": "a", "fencing_token": lease["fencing_token"], "result": "ok"})
                assert done["task"]["status"] == "completed"
            assert op.ok("GET", "/work/b")["task"]["status"] == "ready"
    finally:
        second.stop()
