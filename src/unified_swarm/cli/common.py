"""What every command shares: exit codes, the global options, the validated client
config, and turning an error into one line on stderr and a named exit code."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from ..client import Client, RetryPolicy
from ..client.base import DEFAULT_URL
from ..errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    NotInstalled,
    PayloadTooLarge,
    RateLimited,
    SwarmError,
    Unauthorized,
    Unavailable,
)

Handler = Callable[[argparse.Namespace], int]
#: a CLI call gives up sooner than a worker would: a person is waiting
CLI_RETRY = RetryPolicy(attempts=3, backoff=0.2, budget=3.0)


class Exit(IntEnum):
    """Exit codes of `swarm`, one per kind of failure a script may want to tell apart."""

    OK = 0
    ERROR = 1  # anything else (a server bug, an unexpected answer)
    USAGE = 2  # bad arguments or input refused by the server (400, 413, 422)
    NOT_FOUND = 3
    CONFLICT = 4  # 409: stale version, not claimable, lease lost, already exists
    UNAVAILABLE = 5  # cannot reach the server, its store is down (503), rate limited (429)
    AUTH = 6  # missing or wrong token (401), not allowed (403)
    INTERRUPTED = 130


EXIT_HELP = ("exit codes: 0 ok, 1 other error, 2 usage or invalid input, 3 not found, "
             "4 conflict, 5 unavailable, 6 unauthorized or forbidden")


class CliError(Exception):
    """A failure the CLI explains itself (bad flag value, unreadable file)."""

    def __init__(self, message: str, code: Exit = Exit.USAGE) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def exit_code(exc: SwarmError) -> Exit:
    table: tuple[tuple[type[SwarmError] | tuple[type[SwarmError], ...], Exit], ...] = (
        (NotFound, Exit.NOT_FOUND), (Conflict, Exit.CONFLICT),
        ((Unavailable, RateLimited), Exit.UNAVAILABLE), ((Unauthorized, Forbidden), Exit.AUTH),
        ((InvalidInput, PayloadTooLarge), Exit.USAGE),
    )
    return next((code for kind, code in table if isinstance(exc, kind)), Exit.ERROR)


def run(handler: Handler, args: argparse.Namespace) -> int:
    """Call the command; every failure becomes one line on stderr and its exit code."""
    try:
        return handler(args)
    except CliError as exc:
        return fail(exc.message, exc.code)
    except SwarmError as exc:
        return fail(f"{exc.code}: {exc.message}", exit_code(exc))
    except KeyboardInterrupt:
        return fail("interrupted", Exit.INTERRUPTED)
    except BrokenPipeError:  # `swarm task list | head`: the reader left, nothing to say
        # keep the interpreter's final flush of stdout from failing a second time
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(Exit.ERROR)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else fail(str(exc.code), Exit.ERROR)


#: what `swarm server` (and what runs one: demo, selftest) needs beyond the light SDK
SERVER_MODULES = ("fastapi", "uvicorn", "pydantic", "rich")
SERVER_EXTRA = "pip install 'unified-swarm[server]'"


def need_server_extra(command: str) -> None:
    """Refuse at once, naming the install command, when the server extra is missing."""
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise NotInstalled(f"`swarm {command}` runs the server, which needs the server extra "
                           f"({', '.join(missing)} missing): {SERVER_EXTRA}")


def fail(message: str, code: Exit) -> int:
    print(f"swarm: error: {message}", file=sys.stderr)
    return int(code)


# -- global options ------------------------------------------------------------------------


def add_client_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """--url, --token and --json, accepted before the command and after it alike.

    The top-level copy holds the defaults; a command's copy sets a value only when given
    (SUPPRESS), so it never overwrites one given earlier.
    """
    default: Any = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("connection") if top else parser
    group.add_argument("--url", default=default,
                       help=f"server URL (default: $SWARM_URL or {DEFAULT_URL})")
    group.add_argument("--token", default=default,
                       help="operator token (default: $SWARM_TOKEN or <data dir>/token)")
    group.add_argument("--json", action="store_true",
                       default=False if top else argparse.SUPPRESS,
                       help="machine output: the server's JSON")


class Actions:
    """The ACTIONs of a command group that talks to a server (`swarm task show ID`): `add`
    makes one with its help, handler and positional arguments (a name, or (name, metavar));
    the caller adds its options; `done` then gives every action the client options, last,
    so `--help` lists the action's own options first."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        self.leaves: list[argparse.ArgumentParser] = []

    def add(self, name: str, handler: Handler, help: str,
            *positionals: str | tuple[str, str]) -> argparse.ArgumentParser:
        leaf = self.sub.add_parser(name, help=help)
        for arg in positionals:
            dest, metavar = (arg, None) if isinstance(arg, str) else arg
            leaf.add_argument(dest, metavar=metavar)
        leaf.set_defaults(handler=handler)
        self.leaves.append(leaf)
        return leaf

    def done(self) -> None:
        for leaf in self.leaves:
            add_client_options(leaf)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where and who, resolved and checked before any request."""

    url: str
    token: str
    json: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ClientConfig:
        url = args.url or os.environ.get("SWARM_URL") or DEFAULT_URL
        if not url.startswith(("http://", "https://")):
            raise CliError(f"--url must start with http:// or https://, got {url!r}")
        token = args.token or _local_token()
        if not token:
            raise CliError("no operator token: pass --token, set SWARM_TOKEN, or run where "
                           "the server's <data dir>/token is readable", Exit.AUTH)
        return cls(url.rstrip("/"), token, bool(args.json))

    def client(self) -> Client:
        return Client(self.url, self.token, retry=CLI_RETRY)


def _local_token() -> str | None:
    from ..config import Settings
    from ..tokens import read_operator_token

    try:
        return read_operator_token(Settings.from_env())
    except OSError as exc:
        raise CliError(f"cannot read the operator token: {exc}", Exit.AUTH) from None


# -- input helpers -------------------------------------------------------------------------


def parse_json(raw: str, what: str) -> Any:
    """A JSON argument; "-" reads stdin."""
    if raw == "-":
        raw = sys.stdin.read()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CliError(f"{what} is not valid JSON ({exc}); quote a string as '\"text\"'"
                       ) from None


def read_json_file(path: str, what: str) -> Any:
    if path == "-":
        return parse_json("-", what)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {what} {path!r}: {exc.strerror}") from None
    return parse_json(text, f"{what} {path!r}")
