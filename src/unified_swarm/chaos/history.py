"""Operation journals: one JSON line per client operation, in the style of Jepsen histories.

Each process writes its own file (`<dir>/history-<pid>.jsonl`), so lines never interleave.
`outcome` is `ok` (the server answered 2xx), `fail` (it answered an error: nothing happened)
or `info` (no answer: a timeout or a reset, which may or may not have taken effect).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Outcome = Literal["ok", "fail", "info"]
#: what a completion line may add to its operation's data (journal.ClientJournal._learn)
LEARNED = ("topic", "version", "error", "assigned_to", "preempted")


@dataclass(slots=True)
class Op:
    proc: str
    op: str
    invoke: float
    complete: float
    outcome: Outcome
    task: str | None = None
    token: int | None = None
    session: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class HistoryWriter:
    """Appends operations to this process's journal; safe to share between threads."""

    def __init__(self, directory: Path, proc: str | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.proc = proc or f"pid-{os.getpid()}"
        self.path = directory / f"history-{os.getpid()}-{threading.get_ident()}.jsonl"
        self._lock = threading.Lock()

    def invoke(self, op: Op) -> None:
        """The first half of an operation, written before it is sent."""
        self._write({"phase": "invoke", "proc": op.proc or self.proc, "op": op.op,
                     "invoke": op.invoke, "task": op.task, "token": op.token,
                     "session": op.session, "data": op.data})

    def complete(self, fields: dict[str, Any]) -> None:
        """The second half: `id` names the invocation; `outcome` and anything learned."""
        self._write({"phase": "complete", "complete": time.time(), **fields})

    def _write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record)
        # open, append, close: no handle outlives the line, and a killed process loses at
        # most the line it was writing (the reader skips a torn one)
        with self._lock, self.path.open("a") as f:
            f.write(line + "\n")


def read_histories(directory: Path) -> list[Op]:
    """Every operation of every journal in `directory`, by invoke time. An invocation with
    no completion (its process died, or the line was torn) stays `info`: it may or may not
    have taken effect."""
    ops: dict[str, Op] = {}
    for path in sorted(directory.glob("history-*.jsonl")):
        for d in _lines(path):
            if d.get("phase") == "invoke":
                data = d.get("data") or {}
                ops[data["id"]] = Op(d["proc"], d["op"], d["invoke"], float("inf"), "info",
                                     d.get("task"), d.get("token"), d.get("session"), data)
            elif d.get("phase") == "complete" and d.get("id") in ops:
                op = ops[d["id"]]
                op.complete, op.outcome = d["complete"], d["outcome"]
                op.task = d.get("task", op.task)
                op.token = d.get("token", op.token)
                op.session = d.get("session", op.session)
                op.data.update({k: d[k] for k in LEARNED if k in d})
    return sorted(ops.values(), key=lambda o: o.invoke)


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as f:
        for raw in f:
            try:
                yield json.loads(raw)
            except json.JSONDecodeError:
                continue
