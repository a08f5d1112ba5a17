"""Showing a demo run as it goes: rich progress bars and a table of sessions on a terminal,
plain timestamped lines otherwise (CI, a pipe, a log file). Both are fed the same
`Snapshot`, read from GET /swarm/status, /sessions and /work."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TextIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..client.types import Session, Status, Task
from .workload import CAPABILITIES

#: how often a plain view prints a status line, seconds
PLAIN_STATUS_EVERY = 2.0
#: how many of the latest task events the live view shows
RECENT = 6


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The swarm at one moment; `elapsed` counts from the workload's submission."""

    elapsed: float
    status: Status
    sessions: list[Session]
    tasks: list[Task]

    def count(self, *statuses: str) -> int:
        return sum(1 for t in self.tasks if t["status"] in statuses)

    def headline(self) -> str:
        s = self.status
        return (f"{self.count('completed')}/{len(self.tasks)} done, "
                f"{self.count('in_progress', 'assigned')} running, "
                f"{self.count('ready')} ready, {self.count('pending')} waiting on "
                f"dependencies, {self.count('failed', 'blocked', 'cancelled')} failed; "
                f"{s['busy_sessions']}/{s['active_sessions']} sessions busy")


class View(Protocol):
    def update(self, snap: Snapshot) -> None: ...

    def note(self, text: str) -> None: ...


class Transitions:
    """What changed since the last snapshot, one line per task that moved."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, str | None, int]] = {}

    def lines(self, snap: Snapshot) -> list[str]:
        stamp = f"[{snap.elapsed:6.1f}s]"
        out = []
        for task in snap.tasks:
            line = self._change(task)
            if line:
                out.append(f"{stamp} {task['id']:<17} {line}")
        return out

    def _change(self, task: Task) -> str | None:
        now = (task["status"], task["assigned_to"], task["attempts"])
        before = self._seen.get(task["id"])
        self._seen[task["id"]] = now
        if before == now:
            return None
        status, holder, attempt = now
        if status == "in_progress":
            started = f"started on {holder} (attempt {attempt}): {task['title']}"
            if before is not None and before[0] == "in_progress" and before[2] < attempt:
                return f"{_retry(task, before)}; {started}"
            return started
        if status == "completed":
            by = task["result"].get("by") if isinstance(task["result"], dict) else holder
            return f"completed by {by or (before or ('', None, 0))[1]}"
        if status == "ready" and before is not None and before[0] == "in_progress":
            return f"{_retry(task, before)}; back in the queue"
        if status in ("failed", "blocked", "cancelled"):
            return f"{status}: {(task['error'] or '').strip()[:120]}"
        return None


class PlainView:
    """One line per thing that happened (a task started, finished, failed), plus a status
    line every couple of seconds. No colours, no cursor movement."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._changes = Transitions()
        self._next_status = 0.0

    def note(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def update(self, snap: Snapshot) -> None:
        for line in self._changes.lines(snap):
            self.note(line)
        if snap.elapsed >= self._next_status:
            self.note(f"[{snap.elapsed:6.1f}s] {snap.headline()}")
            self._next_status = snap.elapsed + PLAIN_STATUS_EVERY


def _retry(task: Task, before: tuple[str, str | None, int]) -> str:
    why = (task["error"] or "lease expired").strip().splitlines()[0][:120]
    return f"attempt {before[2]} on {before[1]} did not complete ({why})"


class LiveView:
    """A rich live display: bars per capability, a table of sessions, a status line."""

    def __init__(self, console: Console, title: str) -> None:
        self.console, self.title = console, title
        self._live: Live | None = None
        self._changes = Transitions()
        self._recent: deque[str] = deque(maxlen=RECENT)

    @contextmanager
    def running(self) -> Iterator[LiveView]:
        with Live(Text("starting..."), console=self.console, refresh_per_second=8,
                  transient=False) as live:
            self._live = live
            try:
                yield self
            finally:
                self._live = None

    def note(self, text: str) -> None:
        self.console.print(Text(text))

    def update(self, snap: Snapshot) -> None:
        self._recent.extend(self._changes.lines(snap))
        if self._live is not None:
            self._live.update(self.render(snap))

    def render(self, snap: Snapshot) -> RenderableType:
        recent = Text("\n".join(self._recent), style="dim", no_wrap=True,
                      overflow="ellipsis")
        return Group(Text(f"{self.title} · {snap.elapsed:.1f} s", style="bold"),
                     _bars(snap), _sessions(snap), Text(snap.headline()), recent)


def _bars(snap: Snapshot) -> Table:
    table = Table(box=None, show_header=False, padding=(0, 1))
    table.add_column("what", style="bold", width=13)
    table.add_column("bar", width=40)
    table.add_column("count", justify="right")
    done: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for t in snap.tasks:
        total[t["required_capability"]] += 1
        done[t["required_capability"]] += t["status"] == "completed"
    rows = [("all tasks", sum(done.values()), len(snap.tasks))]
    rows += [(cap, done[cap], total[cap]) for cap in CAPABILITIES if total[cap]]
    for name, d, n in rows:
        table.add_row(name, ProgressBar(total=max(n, 1), completed=d, width=40), f"{d}/{n}")
    return table


def _sessions(snap: Snapshot) -> Table:
    tasks = {t["id"]: t for t in snap.tasks}
    table = Table(box=box.SIMPLE_HEAD, title_justify="left")
    for name in ("session", "capabilities", "status", "running", "done"):
        table.add_column(name, overflow="ellipsis", no_wrap=True)
    for s in sorted(snap.sessions, key=lambda s: s["id"]):
        running = []
        for task_id in s["current_tasks"]:
            t = tasks.get(task_id)
            value = t["progress"]["value"] if t else 0.0
            running.append(f"{task_id} {value:.0%}")
        style = {"busy": "green", "idle": "yellow", "offline": "dim"}.get(s["status"], "")
        table.add_row(s["id"], ",".join(s["capabilities"]), Text(s["status"], style=style),
                      ", ".join(running) or "-", str(s["tasks_completed"]))
    return table
