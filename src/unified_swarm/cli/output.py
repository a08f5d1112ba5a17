"""Printing: the server's JSON with --json, rich tables for people.

rich comes with the `server` extra and is imported only to print a table: a worker host with
the light SDK alone runs `swarm worker`, and its other commands print JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..client import Client
from ..client.types import Attempt, CapabilityStats, KnowledgeEntry, Session, Task
from .common import ClientConfig

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

T = TypeVar("T")
NO_RICH = ("swarm: tables need rich (pip install 'unified-swarm[server]'); "
           "printing JSON")


def console() -> Console:
    from rich.console import Console

    # made per call so output follows the current sys.stdout (pytest's capture, a pipe)
    return Console(highlight=False, soft_wrap=False)


def emit(cfg: ClientConfig, value: Any, human: Callable[[Console], None]) -> None:
    """Print `value` as JSON (--json, or when rich is missing) or let `human` render it."""
    if not cfg.json and importlib.util.find_spec("rich") is None:
        print(NO_RICH, file=sys.stderr)
    elif not cfg.json:
        human(console())
        return
    print(json.dumps(value, indent=2, ensure_ascii=False))


def command(args: argparse.Namespace, fetch: Callable[[Client], T], key: str | None,
            human: Callable[[Console, T], None]) -> int:
    """The shape of every client command: the connection from the flags, one call, its
    answer printed (the JSON, `{key: answer}` when a key is given, with --json; else
    `human`). Returns the exit code."""
    cfg = ClientConfig.from_args(args)
    with cfg.client() as client:
        value = fetch(client)
    emit(cfg, value if key is None else {key: value}, lambda con: human(con, value))
    return 0


def escape(text: str) -> str:
    """Text that rich prints as it is ([brackets] are not markup)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def compact(value: Any, limit: int = 60) -> str:
    """A JSON value on one line, cut to `limit` characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cell(value: Any) -> Text:
    """Plain text: a title with [brackets] is not rich markup."""
    from rich.text import Text

    return Text("" if value is None else str(value))


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    from rich import box
    from rich.table import Table

    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for name in columns:
        t.add_column(name, overflow="fold")
    for row in rows:
        t.add_row(*(cell(v) for v in row))
    return t


def pairs(title: str | None, items: Iterable[tuple[str, Any]]) -> Table:
    """A two-column key/value table."""
    from rich import box
    from rich.table import Table

    t = Table(title=title, box=box.SIMPLE, show_header=False, title_justify="left")
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for key, value in items:
        t.add_row(key, cell(value))
    return t


def tasks_table(tasks: Sequence[Task], title: str | None = None) -> Table:
    return table(title, ("id", "type", "status", "prio", "assigned to", "tries", "title"), (
        (t["id"], t["type"], t["status"], t["priority"], t["assigned_to"],
         f"{t['attempts']}/{t['max_attempts']}", compact(t["title"], 40)) for t in tasks))


def sessions_table(sessions: Sequence[Session]) -> Table:
    return table(None, ("id", "status", "capabilities", "tasks", "score", "last heartbeat"), (
        (s["id"], s["status"], ",".join(s["capabilities"]),
         f"{len(s['current_tasks'])}/{s['max_concurrent_tasks']}",
         f"{s['performance_score']:.2f}", when(s["last_heartbeat"])) for s in sessions))


def stats_table(stats: Mapping[str, CapabilityStats]) -> Table:
    """What the learned model says of one session, per capability."""
    def num(x: float | None, fmt: str) -> str | None:
        return None if x is None else format(x, fmt)

    return table("learned", ("capability", "attempts", "success", "median s", "speed"), (
        (cap, st["attempts"], f"{st['success_rate']:.0%}", num(st["duration_p50"], ".3g"),
         num(st["speed"], ".2f")) for cap, st in stats.items()))


def knowledge_table(entries: Sequence[KnowledgeEntry]) -> Table:
    return table(None, ("topic", "version", "tags", "updated by", "updated at", "content"), (
        (e["topic"], e["version"], ",".join(e["tags"]), e["updated_by"], when(e["updated_at"]),
         compact(e["content"], 40)) for e in entries))


def attempts_table(history: Sequence[Attempt]) -> Table:
    return table("attempts", ("#", "session", "token", "started", "seconds", "outcome",
                              "error"), (
        (a["attempt"], a["session_id"], a["fencing_token"], when(a["started_at"]),
         None if a["duration"] is None else f"{a['duration']:.3f}", a["outcome"] or "running",
         compact(a["error"], 80)) for a in history))


def when(stamp: str | None) -> str | None:
    """An ISO 8601 UTC time, shortened for a table cell: 2026-01-02 03:04:05."""
    return None if stamp is None else stamp[:19].replace("T", " ")


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
