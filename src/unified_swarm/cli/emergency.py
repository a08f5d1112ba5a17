"""`swarm emergency`: a task above every priority, placed at once (POST /swarm/emergency)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..client.types import Emergency
from . import output
from .common import add_client_options, parse_json

if TYPE_CHECKING:
    from rich.console import Console

HELP = "add an emergency task: offered to the best idle session, else one is preempted"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("type", metavar="TYPE",
                        help="the task type (also its capability unless --capability)")
    parser.add_argument("--id", help="a task id of your own (default: generated)")
    parser.add_argument("--title")
    parser.add_argument("--input", metavar="JSON", help="the task's input as JSON")
    parser.add_argument("--capability", help="the capability a session needs to take it")
    parser.add_argument("--max-attempts", type=int)
    parser.add_argument("--no-interrupt", action="store_true",
                        help="let the other sessions go on taking new work meanwhile")
    parser.add_argument("--no-preempt", action="store_true",
                        help="never preempt a running task for it (wait for a free session)")
    parser.set_defaults(handler=emergency)
    add_client_options(parser)


def emergency(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {
        "id": args.id, "title": args.title, "required_capability": args.capability,
        "max_attempts": args.max_attempts,
        "input": parse_json(args.input, "--input") if args.input is not None else None}
    return output.command(
        args, lambda c: c.emergency(args.type, interrupt=not args.no_interrupt,
                                    preempt=not args.no_preempt, **fields), None, _human)


def _human(con: Console, e: Emergency) -> None:
    task = e["task"]
    con.print(f"emergency task {output.escape(task['id'])} added")
    if e["assigned_to"] is not None:
        con.print(f"offered to idle session {output.escape(e['assigned_to'])}")
    elif e["preempted"] is not None:
        p = e["preempted"]
        con.print(f"preempted task {output.escape(p['task_id'])} on session "
                  f"{output.escape(p['session_id'])}: it takes the emergency once it lets go")
    else:
        con.print("no session can take it now: it heads the queue")
