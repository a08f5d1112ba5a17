"""`swarm session list|show|drain`: the registry of sessions."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..client.types import Session, Usage
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
        ("spent", spent(s.get("usage"))),
        ("rate limited", limited(s.get("rate_limited"))),
        ("metadata", output.compact(s["metadata"], 200)),
    )))
    stats = s.get("stats") or {}
    if stats:
        con.print(output.stats_table(stats))


def spent(usage: Usage | None) -> str:
    """What the session's attempts reported spending, in one line."""
    if not usage:
        return "-"
    tokens = {k: usage.get(k, 0) for k in ("input_tokens", "output_tokens",
                                            "cache_read_input_tokens",
                                            "cache_creation_input_tokens")}
    return (f"${usage.get('cost_usd', 0):.4f}, {tokens['input_tokens']:,} in / "
            f"{tokens['output_tokens']:,} out tokens (cache {tokens['cache_read_input_tokens']:,}"
            f" read, {tokens['cache_creation_input_tokens']:,} written), "
            f"{usage.get('num_turns', 0):,} turns over {usage.get('attempts', 0):,} attempt(s)")


def limited(state: Mapping[str, object] | None) -> str:
    """`rate_limited`, in one line: the API said what, for which task, retrying when."""
    if not state:
        return "no"
    said = " ".join(str(state[k]) for k in ("error", "error_status") if state.get(k))
    retry = f", retry {state['attempt']} at {state['retry_at']}" if state.get("retry_at") \
        else ""
    return f"yes, since {state.get('at')} on {state.get('task_id')} ({said or 'waiting'}{retry})"


def drain_session(args: argparse.Namespace) -> int:
    return output.command(args, lambda c: c.drain(args.session_id), "session",
                          lambda con, s: con.print(f"session {s['id']} is now {s['status']}"))
