"""`swarm server`: run the orchestrator under uvicorn.

One flag per `Settings` field (`--heartbeat-interval`, `--task-claim-timeout`, ...), each
defaulting to its `SWARM_*` variable, then to config.py. There is no `--workers`: the
coordination loop and the long-poll waiters live in one process; run replicas on the Redis
store for more.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Settings
from .common import CliError, Exit, need_server_extra

HELP = "run the orchestrator (HTTP API on one process)"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
FLAG_HELP = {
    "host": "address to bind; keep loopback unless remote sessions must reach it",
    "port": "port to listen on",
    "data_dir": "directory of the SQLite file and the generated operator token",
    "store": "'sqlite', 'sqlite:///FILE' or 'redis://HOST:PORT/DB'",
    "token": "operator token (default: generated once into <data dir>/token)",
    "redis_prefix": "key prefix, so several swarms share one Redis",
    "redis_allow_unsafe": "start even when Redis may lose acknowledged writes",
    "heartbeat_interval": "seconds between a session's heartbeats (its default)",
    "task_claim_timeout": "seconds a session has to claim a task offered to it",
    "idle_threshold": "seconds idle before work is pushed to a session",
    "max_concurrent_tasks": "tasks a session runs at once, unless it says otherwise",
    "default_max_attempts": "attempts of a task, unless it says otherwise",
    "lease_factor": "lease TTL in heartbeat intervals (also: offline after this)",
    "strict_capabilities": "accept only the catalogue's capabilities",
    "max_wait": "longest long-poll a session may ask for, seconds",
    "rate_limit": "requests per second per token (0: no limit)",
    "allowed_hosts": "extra Host header values to accept, comma-separated",
    "public_metrics": "serve /metrics without the operator token",
    "pools": "a TOML file of worker pools to scale (docs/scaling.md)",
    "scale_interval": "seconds between scaling decisions, unless a pool says otherwise",
    "scale_up_window": "seconds a pool's growth must be agreed on before it grows",
    "scale_down_window": "seconds a pool's shrinking must be agreed on before it shrinks",
    "on_exit": "what a stopping server does with the workers it started: drain or leave",
    "on_exit_timeout": "seconds a stopping server waits for its drained workers",
}


#: flags with a fixed set of values, and their shown names
CHOICES = {"on_exit": ("drain", "leave")}
METAVARS = {"on_exit": "{drain,leave}", "pools": "FILE"}


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


#: how a field's (string) annotation is parsed from its flag
PARSERS: dict[str, Callable[[str], Any]] = {
    "int": int, "float": float, "Path": Path, "Path | None": Path, "str": str,
    "str | None": str,
    "tuple[str, ...]": _csv,
}


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "every flag also reads its SWARM_<FLAG> environment variable"
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        env = f"SWARM_{f.name.upper()}"
        default = ("<host>-<pid>" if f.default is dataclasses.MISSING else
                   ",".join(f.default) if isinstance(f.default, tuple) else f.default)
        shown = "" if f.name == "token" else f" (default: {default})"
        text = f"{FLAG_HELP.get(f.name, f.name.replace('_', ' '))}{shown} [{env}]"
        if str(f.type) == "bool":
            parser.add_argument(flag, dest=f"set_{f.name}", default=None, help=text,
                                action=argparse.BooleanOptionalAction)
        else:
            parser.add_argument(flag, dest=f"set_{f.name}", default=None, help=text,
                                type=PARSERS.get(str(f.type), str), choices=CHOICES.get(f.name),
                                metavar=METAVARS.get(f.name, f.name.split("_")[-1].upper()))
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    parser.set_defaults(handler=serve)


def settings_from(args: argparse.Namespace) -> Settings:
    """Flags over SWARM_* over defaults, validated."""
    overrides = {f.name: getattr(args, f"set_{f.name}") for f in dataclasses.fields(Settings)}
    if overrides["token"] is None and getattr(args, "token", None):
        overrides["token"] = args.token  # `swarm --token X server`
    return Settings.from_env(**overrides)


def serve(args: argparse.Namespace) -> int:
    if args.workers is not None:
        raise CliError("--workers is not supported: an orchestrator is one process (its "
                       "coordination loop and long-poll waiters live there); for more, run "
                       "replicas on the Redis store")
    settings = settings_from(args)
    need_server_extra("server")
    from ..tokens import operator_token, token_path

    try:
        token, generated = operator_token(settings)
    except OSError as exc:
        raise CliError(f"cannot create the operator token in {settings.data_dir}: {exc}",
                       Exit.ERROR) from None
    lines = [f"Unified Swarm listening on {listen_url(settings)} "
             f"(store: {settings.store_kind}, data dir: {settings.data_dir})"]
    if generated:  # shown once; afterwards it is only in the file
        lines += [f"Operator token (shown only now; saved to {token_path(settings)}, "
                  "mode 0600):", f"    {token}",
                  # the fragment never leaves the browser: not sent, not logged
                  f"Dashboard: {listen_url(settings)}/#token={token}"]
    else:
        lines.append(f"Dashboard: {listen_url(settings)}/ (it asks once for the operator "
                     f"token: SWARM_TOKEN or {token_path(settings)})")
    raise_open_file_limit()
    server_logging(args.log_level)
    return run_uvicorn(settings, args.log_level, lambda: print("\n".join(lines), flush=True))


def server_logging(level: str) -> None:
    """The orchestrator's own lines (leadership, the reaper, every scaling decision that
    changes something) on stderr beside uvicorn's."""
    logger = logging.getLogger("unified_swarm")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if level == "trace" else level.upper())


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one: uvicorn keeps a connection whose
    request never finishes arriving, and at the usual 1,024 a thousand slow clients would
    stop the server accepting anyone. Returns the limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


def listen_url(settings: Settings) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def run_uvicorn(settings: Settings, log_level: str, on_ready: Callable[[], None]) -> int:
    import uvicorn

    from ..app import create_app

    app = create_app(settings)

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                on_ready()

        async def shutdown(self, sockets: Any = None) -> None:
            # the pools' workers drain (or are left, --on-exit) while the server still
            # serves them, so what they finish is recorded; a second Ctrl-C cuts it short
            if app.state.scaler is not None:
                await app.state.scaler.close(cancelled=lambda: self.force_exit)
            await super().shutdown(sockets=sockets)

    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=log_level,
        loop="uvloop" if installed("uvloop") else "asyncio",
        http="httptools" if installed("httptools") else "h11", lifespan="on")
    server = Server(config)
    try:
        server.run()
    except SystemExit:  # uvicorn's way to say the port is taken or the lifespan failed
        print(f"swarm: error: the server could not start on {listen_url(settings)}",
              file=sys.stderr)
        return int(Exit.UNAVAILABLE)
    return int(Exit.OK if server.started else Exit.UNAVAILABLE)
