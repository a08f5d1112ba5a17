"""The SDK's operation journal: turns each settled client call into a history line.

`swarm worker` passes it to its clients when `SWARM_JOURNAL_DIR` is set (`JOURNAL_ENV`), so
real worker processes journal every request, claim, progress, complete and fail they make,
with its outcome; the campaign passes it to its own clients.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from ..jsonutil import digest
from .history import HistoryWriter, Op

#: the directory a `swarm worker` journals into when it is set
JOURNAL_ENV = "SWARM_JOURNAL_DIR"
#: (method, path) -> operation name; calls not listed are journaled under their path
OPS = {
    ("GET", "/work/request"): "request",
    ("POST", "/work/claim"): "claim",
    ("POST", "/work/progress"): "progress",
    ("POST", "/work/complete"): "complete",
    ("POST", "/work/fail"): "fail",
    ("POST", "/work/release"): "release",
    ("POST", "/swarm/emergency"): "emergency",
    ("POST", "/work"): "add",
    ("POST", "/session/heartbeat"): "heartbeat",
    ("POST", "/session/register"): "register",
}


def _may_claim(name: str, call: Any, body: dict[str, Any]) -> int:
    """How many tasks this call may claim."""
    if name == "request":
        return int((call.params or {}).get("max", 1))
    if name == "complete":
        return int(body.get("max") or (1 if body.get("next") else 0))
    return 0


def _claims_in(name: str, value: Any) -> list[dict[str, Any]]:
    """The claims an answer carries: a batch request's list, or a complete's `claimed`."""
    if name == "request" and isinstance(value, list):
        return [c for c in value if isinstance(c, dict)]
    if name == "complete" and isinstance(value, dict):
        return [c for c in value.get("claimed") or [] if isinstance(c, dict)]
    return []


class ClientJournal:
    """A CallHook writing an invoke line and a completion line per call (history.Op);
    learns which session a token belongs to."""

    _by_dir: dict[str, ClientJournal] = {}
    _lock = threading.Lock()

    def __init__(self, writer: HistoryWriter) -> None:
        self.writer = writer
        self._sessions: dict[str, str] = {}

    @classmethod
    def in_dir(cls, directory: str) -> ClientJournal:
        """One journal (one file) per directory per process."""
        with cls._lock:
            if directory not in cls._by_dir:
                cls._by_dir[directory] = cls(HistoryWriter(Path(directory)))
            return cls._by_dir[directory]

    def begin(self, call: Any, token: str | None) -> Op | None:
        """Journal the invocation before anything is sent: if this process dies before the
        answer, the reader still knows the call may have happened."""
        name = OPS.get((call.method, call.path))
        if name is None and call.method == "PUT" and call.path.startswith("/knowledge/"):
            name = "knowledge_put"
        if name is None and call.method == "POST" and call.path.endswith("/split"):
            name = "split"
        if name is None:
            return None  # reads and the rest prove nothing about the invariants
        body = call.body if isinstance(call.body, dict) else {}
        task_id = body.get("task_id")
        emergency = body.get("task") if name == "emergency" else None
        if isinstance(emergency, dict):  # the task is the body's own: its id names it
            task_id = emergency.get("id")
        if name == "split":  # the task is named in the path: /work/{id}/split
            task_id = urllib.parse.unquote(call.path.removeprefix("/work/").removesuffix("/split"))
        op = Op(self.writer.proc, name, time.time(), float("inf"), "info",
                task_id, body.get("fencing_token"),
                self._sessions.get(token or ""), {"id": uuid.uuid4().hex})
        if call.key is not None:  # one key however many tries: the server's dedup handle
            op.data["key"] = call.key
        if name == "complete":
            op.data["result_digest"] = digest(body.get("result"))
        if name == "add":  # the ids sent; an accepted batch has exactly these
            tasks = body.get("tasks", [body])
            op.data["ids"] = [t.get("id") for t in tasks if isinstance(t, dict)]
        if name == "split":  # the subtasks sent: an accepted split added exactly these
            op.data["ids"] = [t.get("id") for t in body.get("subtasks", [])
                              if isinstance(t, dict)]
            merge = body.get("merge", "list")
            op.data["merge"] = merge  # the checker holds the parent's result to it
            merger = merge.get("task") if isinstance(merge, dict) else None
            if isinstance(merger, dict) and merger.get("id"):  # a merge task is added too
                op.data["ids"].append(merger["id"])
        if name == "emergency":  # an accepted emergency added exactly this task
            op.data["ids"] = [task_id]
            op.data["interrupt"] = body.get("interrupt", True)
        if name == "knowledge_put":
            op.data["content_digest"] = digest(body.get("content"))
        self.writer.invoke(op)
        # a call that may claim more than one task (`max`, or a complete asking for the next)
        # gets one more "request" line per further task it may claim, so every claim it
        # makes (or may have made, when no answer came) is in the history like any other
        companions = []
        for _ in range(_may_claim(name, call, body) - (1 if name == "request" else 0)):
            extra = Op(op.proc, "request", op.invoke, float("inf"), "info", None, None,
                       op.session, {"id": uuid.uuid4().hex, "via": op.data["id"]})
            self.writer.invoke(extra)
            companions.append(extra)
        op.data["_token"] = token
        op.data["_companions"] = companions
        return op

    def end(self, op: Op | None, outcome: str, value: Any) -> None:
        if op is None:
            return
        token = op.data.pop("_token")
        companions: list[Op] = op.data.pop("_companions", [])
        claimed = _claims_in(op.op, value) if outcome == "ok" else []
        if op.op == "request" and isinstance(value, list):  # a batch: the first is op's own
            value = claimed.pop(0) if claimed else None
        done: dict[str, Any] = {"id": op.data["id"], "outcome": outcome}
        if outcome == "ok" and isinstance(value, dict):
            done.update(self._learn(op.op, token, value))
        elif outcome != "ok":
            done["error"] = type(value).__name__
        self.writer.complete(done)
        for extra, got in zip(companions, claimed + [None] * len(companions), strict=False):
            line: dict[str, Any] = {"id": extra.data["id"], "outcome": outcome}
            if got is not None:
                line.update(self._learn("request", token, got))
            elif outcome != "ok":
                line["error"] = type(value).__name__
            self.writer.complete(line)

    def _learn(self, name: str, token: str | None, value: dict[str, Any]) -> dict[str, Any]:
        learned: dict[str, Any] = {}
        lease = value.get("lease")
        if isinstance(lease, dict):  # request / claim
            learned.update(task=lease["task_id"], token=lease["fencing_token"],
                           session=lease["session_id"])
            self._sessions[token or ""] = lease["session_id"]
        session = value.get("session")
        if isinstance(session, dict) and name in ("heartbeat", "register"):
            key = value.get("token") if name == "register" else token
            self._sessions[str(key or "")] = session["id"]
        entry = value.get("entry", value)  # the raw answer, or the SDK's unwrapped entry
        if name == "knowledge_put" and isinstance(entry, dict) and "version" in entry:
            learned.update(topic=entry["topic"], version=entry["version"])
        if name == "emergency":  # where it went: offered to a session, or a task preempted
            learned.update(assigned_to=value.get("assigned_to"),
                           preempted=value.get("preempted"))
        return learned
