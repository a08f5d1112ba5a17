"""`swarm`: the command line. One module per command group: parse -> validated config ->
call -> print, and a named exit code (cli.common.Exit).

A command group is a module with `HELP` (one line) and `register(parser)`, which adds its
arguments (or sub-actions) and sets `handler`. Adding one is one line in COMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__

#: commands that start on the hot path of an agent CLI: dispatched before anything heavy
#: (httpx, pydantic, the parser of every group) is imported
FAST: dict[str, str] = {"hook": "unified_swarm.agents.hooks"}

#: command -> module; modules are imported when the parser is built
COMMANDS: dict[str, str] = {
    "server": "unified_swarm.cli.server",
    "task": "unified_swarm.cli.task",
    "session": "unified_swarm.cli.session",
    "status": "unified_swarm.cli.status",
    "knowledge": "unified_swarm.cli.knowledge",
    "worker": "unified_swarm.cli.worker",
    "pool": "unified_swarm.cli.pool",
    "emergency": "unified_swarm.cli.emergency",
    "demo": "unified_swarm.cli.demo",
    "selftest": "unified_swarm.cli.selftest",
    "mcp": "unified_swarm.cli.agent_mcp",
    "join": "unified_swarm.cli.join",
    "leave": "unified_swarm.cli.leave",
}


def build_parser() -> argparse.ArgumentParser:
    from .common import EXIT_HELP, add_client_options

    parser = argparse.ArgumentParser(
        prog="swarm", description="Unified Swarm: one orchestrator for many agent sessions.",
        epilog=EXIT_HELP)
    parser.add_argument("--version", action="version", version=f"swarm {__version__}")
    add_client_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in FAST:
        sub.add_parser(name, help="(for agent CLIs' hooks) swarm hook EVENT: see docs/agents.md",
                       add_help=False)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        module.register(sub.add_parser(name, help=module.HELP, description=module.HELP,
                                       epilog=EXIT_HELP))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `swarm` command; returns its exit code (the console script exits with it)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in FAST:
        fast: Any = importlib.import_module(FAST[args_list[0]])
        return int(fast.main(args_list[1:]))
    from .common import Exit, run

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help and --version (0), a usage error (2)
        return exc.code if isinstance(exc.code, int) else int(Exit.USAGE)
    return run(args.handler, args)
