"""`swarm`: the command line. One module per command group: parse -> validated config ->
call -> print, and a named exit code (cli.common.Exit).

A command group is a module with `HELP` (one line) and `register(parser)`, which adds its
arguments (or sub-actions) and sets `handler`. Adding one is one line in COMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from .. import __version__
from .common import EXIT_HELP, Exit, add_client_options, run

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
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swarm", description="Unified Swarm: one orchestrator for many agent sessions.",
        epilog=EXIT_HELP)
    parser.add_argument("--version", action="version", version=f"swarm {__version__}")
    add_client_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        module.register(sub.add_parser(name, help=module.HELP, description=module.HELP,
                                       epilog=EXIT_HELP))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `swarm` command; returns its exit code (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help and --version (0), a usage error (2)
        return exc.code if isinstance(exc.code, int) else int(Exit.USAGE)
    return run(args.handler, args)
