"""`swarm pool list|scale`: the autoscaled pools of `swarm server --pools FILE`.

    swarm pool list                  # each pool: min, max, current, desired, and why
    swarm pool scale build 3         # pin the pool at 3 (within its min..max)
    swarm pool scale build auto      # lift the pin: the autoscaler decides again

A pin holds on every replica until it is lifted; the budget ([budget] in the pools file)
still caps a pinned pool.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import output
from .common import ClientConfig, CliError, add_client_options

HELP = "list autoscaled pools, or pin a pool's size (docs/scaling.md)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="each pool: min, max, current, desired, and why")
    ls.set_defaults(handler=list_pools)
    scale = sub.add_parser("scale", help="pin a pool's size within its min..max, or 'auto' "
                                         "to lift the pin")
    scale.add_argument("name", metavar="NAME")
    scale.add_argument("size", metavar="N|auto")
    scale.set_defaults(handler=scale_pool)
    for leaf in (ls, scale):
        add_client_options(leaf)


def list_pools(args: argparse.Namespace) -> int:
    cfg = ClientConfig.from_args(args)
    with cfg.client() as client:
        view = client.scaling()
    output.emit(cfg, view, lambda con: con.print(_table(view)))
    return 0


def scale_pool(args: argparse.Namespace) -> int:
    size = _size(args.size)
    cfg = ClientConfig.from_args(args)
    with cfg.client() as client:
        pool = client.scale_pool(args.name, size)
    said = "unpinned: the autoscaler decides" if size is None else f"pinned at {size}"
    output.emit(cfg, {"pool": pool}, lambda con: con.print(
        f"pool {pool['name']} {said}; now {pool['current']} -> {pool['desired']} "
        f"({pool['reason']})"))
    return 0


def _size(raw: str) -> int | None:
    if raw == "auto":
        return None
    try:
        size = int(raw)
    except ValueError:
        raise CliError(f"N must be a whole number or 'auto', got {raw!r}") from None
    if size < 0:
        raise CliError(f"N must be >= 0, got {size}")
    return size


def _table(view: dict[str, Any]) -> Any:
    if not view["pools"]:
        return "this server scales no pools (start it with --pools FILE)"
    rows = []
    for name, p in view["pools"].items():
        backoff = (p.get("spawner_status") or {}).get("backoff") or {}
        note = f" (crash-looping: {backoff['failures']} failed starts)" \
            if backoff.get("crashlooping") else ""
        rows.append((name, p["spawner"], f"{p['min']}..{p['max']}", p["current"],
                     p["desired"], "" if p["pinned"] is None else p["pinned"],
                     p["reason"] + note))
    leader = "" if view["leader"] else " (this replica follows: the leader acts)"
    return output.table(f"pools{leader}", ("pool", "spawner", "size", "current", "desired",
                                            "pinned", "why"), rows)
