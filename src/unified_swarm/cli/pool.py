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
from .common import Actions, ClientConfig, CliError

HELP = "list autoscaled pools, or pin a pool's size (docs/scaling.md)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    actions = Actions(parser)
    actions.add("list", list_pools, "each pool: min, max, current, desired, and why")
    actions.add("scale", scale_pool, "pin a pool's size within its min..max, or 'auto' to "
                "lift the pin", ("name", "NAME"), ("size", "N|auto"))
    actions.done()


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
