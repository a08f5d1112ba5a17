"""`swarm mcp`: the stdio MCP bridge an agent CLI spawns (one per agent session): the swarm's
tools, acting as the session of that CLI session (unified_swarm.mcp.bridge)."""

from __future__ import annotations

import argparse
import importlib.util
import os

from ..client.base import DEFAULT_URL
from ..errors import NotInstalled
from .common import CliError, _local_token

HELP = "serve the swarm's MCP tools over stdio for one agent session (spawned by the CLI)"
MCP_EXTRA = "pip install 'unified-swarm[mcp]'"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--capabilities", default=os.environ.get("SWARM_CAPABILITIES", ""),
                        help="comma-separated capabilities to register with when no hook "
                             "registered this session (default: $SWARM_CAPABILITIES; none: "
                             "any task)")
    parser.add_argument("--heartbeat-interval", type=float, default=None,
                        help="the session's heartbeat interval when the bridge registers it "
                             "(default: the server's)")
    parser.add_argument("--hook-grace", type=float, default=3.0,
                        help="seconds to wait for the session-start hook's token file before "
                             "registering by itself (default: 3)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("mcp") is None:
        raise NotInstalled(f"`swarm mcp` needs the mcp package: {MCP_EXTRA}")
    from ..mcp import bridge

    url = (args.url or os.environ.get("SWARM_URL") or DEFAULT_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--url must start with http:// or https://, got {url!r}")
    caps = tuple(c.strip() for c in args.capabilities.split(",") if c.strip())
    if args.heartbeat_interval is not None and args.heartbeat_interval <= 0:
        raise CliError("--heartbeat-interval must be > 0")
    cfg = bridge.BridgeConfig(url, args.token or _local_token(), caps,
                              args.heartbeat_interval, max(args.hook_grace, 0.0))
    return bridge.run(cfg)
