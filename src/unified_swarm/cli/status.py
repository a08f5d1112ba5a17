"""`swarm status`: the swarm's global metrics."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..client.types import Status
from . import output
from .common import add_client_options

if TYPE_CHECKING:
    from rich.console import Console

HELP = "the swarm's metrics: sessions, tasks by status, times, utilization"


def register(parser: argparse.ArgumentParser) -> None:
    add_client_options(parser)
    parser.set_defaults(handler=show_status)


def show_status(args: argparse.Namespace) -> int:
    return output.command(args, lambda c: c.status(), None, render)


def render(con: Console, status: Status) -> None:
    rows: list[tuple[str, object]] = []
    for key, value in status.items():
        if key == "utilization" and isinstance(value, int | float):
            value = f"{value:.0%}"
        elif key == "avg_task_time" and isinstance(value, int | float):
            value = f"{value:.2f} s"
        rows.append((key.replace("_", " "), value))
    con.print(output.pairs("swarm status", rows))
