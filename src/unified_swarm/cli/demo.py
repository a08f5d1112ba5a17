"""`swarm demo`: start an orchestrator and a few workers on this machine, run a sample
workload through them, show it live, and print a summary (see worker/demo/).

    swarm demo                      # 6 workers, the whole sample workload
    swarm demo --workers 3 --tasks 10 --scale 0.1
    swarm demo --keep               # leave the server (and its dashboard) running

Exit status 0 only when every task completed exactly once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..demo.workload import SAMPLES, SCALE
from .common import CliError, Exit, need_server_extra

HELP = "run a demo swarm: an orchestrator, 6 workers, a sample workload, a summary"


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--workers", type=int, default=6, metavar="N",
                        help="worker processes (default: 6)")
    parser.add_argument("--tasks", type=int, metavar="N",
                        help=f"run only the first N of the {len(SAMPLES)} sample tasks")
    parser.add_argument("--scale", type=float, default=SCALE, metavar="S",
                        help=f"seconds per estimated hour of work (default: {SCALE})")
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="an empty directory for the run (default: a fresh "
                             "./.swarm-demo/run-<time>)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the server running at the end, with its dashboard")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="S",
                        help="give up after this long (default: 120)")
    parser.add_argument("--plain", action="store_true", default=None,
                        help="plain lines instead of the live view (the default when "
                             "stdout is not a terminal)")
    parser.set_defaults(handler=demo)


def demo(args: argparse.Namespace) -> int:
    if not 1 <= args.workers <= 50:
        raise CliError("--workers must be within 1..50")
    if args.tasks is not None and not 1 <= args.tasks <= len(SAMPLES):
        raise CliError(f"--tasks must be within 1..{len(SAMPLES)}")
    if not 0 < args.scale <= 10 or args.timeout <= 0:
        raise CliError("--scale must be within 0..10 and --timeout > 0")
    need_server_extra("demo")
    from ..demo.runner import DemoError, DemoOptions, run_demo

    options = DemoOptions(workers=args.workers, tasks=args.tasks, scale=args.scale,
                          data_dir=args.data_dir, keep=args.keep, timeout=args.timeout,
                          plain=args.plain)
    try:
        return run_demo(options)
    except DemoError as exc:
        raise CliError(str(exc), Exit.ERROR) from None
