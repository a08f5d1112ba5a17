"""Operation journals: one JSON line per client operation, in the style of Jepsen histories.

Each process writes its own file (`<dir>/history-<pid>.jsonl`), so lines never interleave.
`outcome` is `ok` (the server answered 2xx), `fail` (it answered an error: nothing happened)
or `info` (no answer: a timeout or a reset, which may or may not have taken effect).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Outcome = Literal["ok", "fail", "info"]


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

    def record(self, op: Op) -> None:
        line = json.dumps({
            "proc": op.proc or self.proc, "op": op.op, "invoke": op.invoke,
            "complete": op.complete, "outcome": op.outcome, "task": op.task,
            "token": op.token, "session": op.session, "data": op.data})
        # open, append, close: no handle outlives the line, and a killed process loses at
        # most the line it was writing (the reader skips a torn one)
        with self._lock, self.path.open("a") as f:
            f.write(line + "\n")


def read_histories(directory: Path) -> list[Op]:
    """Every operation of every journal in `directory`, by invoke time. A torn last line
    (the writer was killed mid-write) is skipped: its operation is unknown, like `info`."""
    ops: list[Op] = []
    for path in sorted(directory.glob("history-*.jsonl")):
        for d in _lines(path):
            ops.append(Op(d["proc"], d["op"], d["invoke"], d["complete"], d["outcome"],
                          d.get("task"), d.get("token"), d.get("session"), d.get("data") or {}))
    ops.sort(key=lambda o: o.invoke)
    return ops


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as f:
        for raw in f:
            try:
                yield json.loads(raw)
            except json.JSONDecodeError:
                continue
