"""The SDK's operation journal: turns each settled client call into a history line.

Installed by the client when `SWARM_JOURNAL_DIR` is set, so real `swarm worker` processes
journal every request, claim, progress, complete and fail they make, with its outcome.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..jsonutil import digest
from .history import HistoryWriter, Op

#: (method, path) -> operation name; calls not listed are journaled under their path
OPS = {
    ("GET", "/work/request"): "request",
    ("POST", "/work/claim"): "claim",
    ("POST", "/work/progress"): "progress",
    ("POST", "/work/complete"): "complete",
    ("POST", "/work/fail"): "fail",
    ("POST", "/work"): "add",
    ("POST", "/session/heartbeat"): "heartbeat",
    ("POST", "/session/register"): "register",
}


class ClientJournal:
    """A CallHook writing `history.Op` lines; learns which session a token belongs to."""

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

    def __call__(self, call: Any, token: str | None, invoke: float, complete: float,
                 outcome: str, value: Any) -> None:
        name = OPS.get((call.method, call.path))
        if name is None:
            if call.method == "PUT" and call.path.startswith("/knowledge/"):
                name = "knowledge_put"
            else:
                return  # reads and the rest prove nothing about the invariants
        body = call.body if isinstance(call.body, dict) else {}
        op = Op(self.writer.proc, name, invoke, complete, outcome,  # type: ignore[arg-type]
                body.get("task_id"), body.get("fencing_token"))
        if outcome == "ok" and isinstance(value, dict):
            self._learn(op, token, value, body)
        elif outcome != "ok":
            op.data["error"] = type(value).__name__
        if name == "complete":
            op.data["result_digest"] = digest(body.get("result"))
        if name == "add":  # the ids sent; an accepted batch has exactly these
            tasks = body.get("tasks", [body])
            op.data["ids"] = [t.get("id") for t in tasks if isinstance(t, dict)]
        op.session = self._sessions.get(token or "")
        self.writer.record(op)

    def _learn(self, op: Op, token: str | None, value: dict[str, Any],
               body: dict[str, Any]) -> None:
        lease = value.get("lease")
        if isinstance(lease, dict):  # request / claim
            op.task, op.token = lease["task_id"], lease["fencing_token"]
            self._sessions[token or ""] = lease["session_id"]
        session = value.get("session")
        if isinstance(session, dict) and op.op in ("heartbeat", "register"):
            key = value.get("token") if op.op == "register" else token
            self._sessions[str(key or "")] = session["id"]
        entry = value.get("entry", value)  # the raw answer, or the SDK's unwrapped entry
        if op.op == "knowledge_put" and isinstance(entry, dict) and "version" in entry:
            op.data.update(topic=entry["topic"], version=entry["version"],
                           content_digest=digest(body.get("content")))
