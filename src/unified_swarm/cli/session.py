"""`swarm session list|show|drain`: the registry of sessions."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..client.types import Session
from . import output
from .common import Actions

if TYPE_CHECKING:
    from rich.console import Console

HELP = "list, show and drain sessions"


def register(parser: argparse.ArgumentParser) -> None:
    actions = Actions(parser)
    ls = actions.add("list", list_sessions, "every session, those that left included (offline)")
    ls.add_argument("--status", choices=("idle", "busy", "draining", "offline"))
    actions.add("show", show_session, "one session", ("session_id", "ID"))
    actions.add("drain", drain_session, "the session finishes what it holds, then leaves",
                ("session_id", "ID"))
    actions.done()


def list_sessions(args: argparse.Namespace) -> int:
    return output.command(args, lambda c: c.sessions(args.status), "sessions",
                          lambda con, found: con.print(output.sessions_table(found)))


def show_session(args: argparse.Namespace) -> int:
    return output.command(args, lambda c: c.session(args.session_id), "session", render)


def render(con: Console, s: Session) -> None:
    con.print(output.pairs(f"session {s['id']}", (
        ("name", s["name"]), ("status", s["status"]),
        ("capabilities", ", ".join(s["capabilities"])),
        ("current tasks", ", ".join(s["current_tasks"])),
        ("max concurrent", s["max_concurrent_tasks"]),
        ("heartbeat every", f"{s['heartbeat_interval']:g} s"),
        ("last heartbeat", s["last_heartbeat"]), ("registered", s["registered_at"]),
        ("score", f"{s['performance_score']:.2f}"),
        ("completed / failed", f"{s['tasks_completed']} / {s['tasks_failed']}"),
        ("detected", ", ".join(s.get("detected_capabilities") or []) or "-"),
        ("quarantined until", s.get("quarantined_until") or "-"),
        ("metadata", output.compact(s["metadata"], 200)),
    )))
    stats = s.get("stats") or {}
    if stats:
        con.print(output.stats_table(stats))


def drain_session(args: argparse.Namespace) -> int:
    return output.command(args, lambda c: c.drain(args.session_id), "session",
                          lambda con, s: con.print(f"session {s['id']} is now {s['status']}"))
