"""`swarm mcp`: the stdio MCP bridge, one per agent session, spawned by the agent CLI.

- Identity comes from the CLI (`agents.identity.cli_session_id`: `CLAUDE_CODE_SESSION_ID`
  for Claude Code; for other CLIs a handle from `SWARM_CLI_SESSION_ID`, else one minted
  here). When the CLI's session-start hook has written the token file of that id, the bridge
  acts as that session; else it registers a session itself with the operator token (after
  giving a hook that runs alongside it a moment to write the file first), named after the
  CLI session id (`metadata.cli_session_id` too), and writes the file for the hooks.
- Its own heartbeat thread keeps the session alive while the model thinks (leases follow
  liveness, not tool calls).
- When stdin closes (the CLI exited or was killed) it leaves: the server puts what the
  session held (offers and leases) back in the queue at once.
- A *lent* bridge (`SWARM_MCP_LENT=1`, set by the Claude executor of `swarm worker`) acts as
  a session that someone else owns: the worker's own, lent to the `claude -p` run of one
  attempt through a token file. It never registers, never beats (the worker's liveness is
  the worker's to prove) and, when stdin closes at the end of the run, neither leaves nor
  removes the token file: leaving would end the worker's session and give back every
  task it holds.
- Logs go to stderr; stdout carries only the protocol.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

import anyio
from mcp.server.mcpserver import Context

from ..agents import identity
from ..client import AsyncClient, Client, RetryPolicy
from ..errors import Forbidden, NotFound, SwarmError, Unauthorized
from .tools import Link, make_server

log = logging.getLogger("unified_swarm.mcp.bridge")
#: how long a bridge with a CLI session id waits for the session-start hook's token file
#: before it registers by itself (Claude Code starts hooks and MCP servers together)
HOOK_GRACE = 3.0
#: beats per heartbeat interval (a lease lives lease_factor intervals: 3 by default)
BEATS_PER_INTERVAL = 3
BRIDGE_RETRY = RetryPolicy(attempts=4, backoff=0.2, budget=10.0)
#: set to "1" by whoever lends its own session to the bridge (see the module docstring)
LENT_ENV = "SWARM_MCP_LENT"


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    url: str
    #: the operator token, when one was given or found (only needed to register)
    operator_token: str | None
    capabilities: tuple[str, ...] = ()
    #: the heartbeat interval to register with (None: the server's default)
    heartbeat_interval: float | None = None
    hook_grace: float = HOOK_GRACE


@dataclass(frozen=True, slots=True)
class Joined:
    who: identity.AgentIdentity
    heartbeat_interval: float
    data_dir: Any


def lent(env: Mapping[str, str]) -> bool:
    """Whether the session is lent to this bridge (it must not end it)."""
    return env.get(LENT_ENV, "").strip().lower() in ("1", "true", "yes")


def join(cfg: BridgeConfig, env: Mapping[str, str]) -> Joined:
    """The session this bridge acts as: the hook's, else one it registers (or resumes).
    A lent bridge only ever acts as the session of its token file."""
    cli_id = identity.cli_session_id(env)
    data = identity.data_dir(env)
    if lent(env):
        found = None if cli_id is None else _hooks_session(cfg, data, cli_id)
        if found is None:
            raise Unauthorized(f"{LENT_ENV} is set but no usable token file was lent for "
                               f"CLI session {cli_id!r} in {data}")
        return found
    if cli_id is not None:
        found = _hooks_session(cfg, data, cli_id)
        if found is not None:
            return found
    cli_id = cli_id or identity.mint_handle()
    if not cfg.operator_token:
        raise Unauthorized("no session-start hook ran for this CLI session and there is no "
                           "operator token to register with: set SWARM_TOKEN, or run where "
                           "the server's <data dir>/token is readable")
    cli = identity.cli_of(env)
    with Client(cfg.url, cfg.operator_token, retry=BRIDGE_RETRY) as op:
        meta = {"cli": cli, "cli_session_id": cli_id, "joined_by": "mcp"}
        name = identity.session_name(cli, cli_id)
        reg = op.register(list(cfg.capabilities), name=name, metadata=meta,
                          heartbeat_interval=cfg.heartbeat_interval)
    session = reg["session"]
    who = identity.AgentIdentity(cli_id, session["id"], reg["token"], cfg.url)
    identity.write_token(data, cli_id, who.token, session_id=who.session_id, url=cfg.url)
    log.info("registered session %s for CLI session %s", who.session_id, cli_id)
    return Joined(who, float(session["heartbeat_interval"]), data)


def _hooks_session(cfg: BridgeConfig, data: Any, cli_id: str) -> Joined | None:
    """The hook's session for this CLI session, once its file is there and its token still
    works; None when no hook wrote one within the grace."""
    deadline = time.monotonic() + cfg.hook_grace
    while True:
        found = identity.read_identity(data, cli_id)
        if found is not None:
            url = found.url or cfg.url
            try:
                with Client(url, found.token, retry=BRIDGE_RETRY) as me:
                    beat = me.heartbeat()
            except (Unauthorized, Forbidden, NotFound):
                log.info("the hook's session for %s is gone; registering anew", cli_id)
                return None
            who = identity.AgentIdentity(cli_id, found.session_id or beat["session"]["id"],
                                         found.token, url)
            return Joined(who, float(beat["session"]["heartbeat_interval"]), data)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


class Heartbeat(threading.Thread):
    """Beats for the session from its own thread until stopped."""

    def __init__(self, url: str, token: str, period: float) -> None:
        super().__init__(name="swarm-mcp-heartbeat", daemon=True)
        self.url, self.token, self.period = url, token, period
        self.stopped = threading.Event()
        self.beats = 0

    def run(self) -> None:
        with Client(self.url, self.token, retry=BRIDGE_RETRY) as me:
            while not self.stopped.wait(self.period):
                try:
                    me.heartbeat()
                    self.beats += 1
                except SwarmError as exc:  # the server is away: the next beat tries again
                    log.warning("heartbeat failed: %s", exc.message)

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)


def leave(who: identity.AgentIdentity, data: Any) -> None:
    """Leave the swarm (what the session held goes back at once) and forget the token."""
    try:
        with Client(who.url, who.token, retry=BRIDGE_RETRY) as me:
            me.leave(who.session_id)
    except SwarmError as exc:
        log.warning("could not leave: %s", exc.message)
    identity.remove_token(data, who.cli_session_id)


async def serve(who: identity.AgentIdentity) -> None:
    """The tools over stdio, acting as the session, until stdin closes."""
    async with AsyncClient(who.url, who.token, retry=BRIDGE_RETRY) as client:
        link = Link(client, who=who.session_id)

        async def connect(_: Context[Any, Any]) -> Link:
            return link
        await make_server(connect).run_stdio_async()


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run(cfg: BridgeConfig, env: Mapping[str, str] | None = None) -> int:
    """Join, serve until stdin closes (or SIGTERM), leave. Returns the exit code."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="swarm mcp: %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    env = os.environ if env is None else env
    joined = join(cfg, env)
    borrowed = lent(env)
    beat = None if borrowed else Heartbeat(
        joined.who.url, joined.who.token,
        max(joined.heartbeat_interval / BEATS_PER_INTERVAL, 0.05))
    if beat is not None:
        beat.start()
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        anyio.run(serve, joined.who)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if beat is not None:
            beat.stop()
        if borrowed:
            log.info("done; session %s was lent, so it stays", joined.who.session_id)
        else:
            leave(joined.who, joined.data_dir)
            log.info("left the swarm (session %s)", joined.who.session_id)
    return 0
