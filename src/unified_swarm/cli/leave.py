"""`swarm leave`: undo `swarm join` (every file restored byte for byte, or our entries taken
out of one you edited since; what join created removed, backups included)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..agents.files import ConfigFileError
from ..agents.join import leave
from .common import CliError, Exit

HELP = "undo `swarm join`: restore the agent CLIs' config files"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--global", dest="globally", action="store_true",
                        help="undo `swarm join --global` (your home)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="the project (default: the current directory)")
    parser.set_defaults(handler=run_leave)


def run_leave(args: argparse.Namespace) -> int:
    root = Path.home() if args.globally else (args.dir or Path.cwd()).absolute()
    try:
        lines = leave(root, args.globally)
    except ConfigFileError as exc:
        raise CliError(str(exc)) from None
    if not lines:
        print(f"nothing to undo: no `swarm join{' --global' if args.globally else ''}` "
              f"recorded under {root}")
        return int(Exit.OK)
    for line in lines:
        print(line)
    print("left: the agent CLIs' config is as it was before `swarm join`")
    return int(Exit.OK)
