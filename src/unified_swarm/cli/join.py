"""`swarm join`: this project's agent CLIs join the swarm (the MCP bridge and the hooks).

    swarm join [--claude] [--codex] [--gemini] [--autopilot] [--global] [--check] [--url URL]

With no CLI named, every one on PATH. `--global` writes to your home instead of the project
(Claude Code: a personal plugin). `--check` then drives each CLI against the server and
prints what works. `swarm leave` undoes it all (see agents/join.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from ..agents.files import ConfigFileError
from ..agents.http import CallFailed, call
from ..agents.join import CLIS, JoinOptions, found_clis, join
from ..client.base import DEFAULT_URL
from .common import CliError, Exit

HELP = "join this project's agent CLIs (Claude Code, Codex, Gemini) to the swarm"


def register(parser: argparse.ArgumentParser) -> None:
    for cli, name in (("claude", "Claude Code"), ("codex", "Codex CLI"),
                      ("gemini", "Gemini CLI")):
        parser.add_argument(f"--{cli}", action="store_true", help=f"join {name}")
    parser.add_argument("--autopilot", action="store_true",
                        help="idle sessions take offered tasks by themselves (Claude Code: a "
                             "background hook wakes the session when an offer comes)")
    parser.add_argument("--global", dest="globally", action="store_true",
                        help="for every project: write to your home (Claude Code: a personal "
                             "plugin in ~/.claude/skills/unified-swarm)")
    parser.add_argument("--check", action="store_true",
                        help="after joining, drive each CLI against the server and say what "
                             "works")
    parser.add_argument("--capabilities", default="build",
                        help="what joined sessions can do, comma-separated (default: build)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="the project (default: the current directory)")
    parser.add_argument("--url", default=argparse.SUPPRESS,
                        help=f"server URL (default: $SWARM_URL or {DEFAULT_URL})")
    parser.set_defaults(handler=run_join)


def server_url(args: argparse.Namespace) -> str:
    url: str = getattr(args, "url", None) or os.environ.get("SWARM_URL") or DEFAULT_URL
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--url must start with http:// or https://, got {url!r}")
    return url.rstrip("/")


def swarm_command() -> str:
    """The absolute path of this `swarm`, so the CLIs find it without this virtualenv on
    their PATH."""
    beside = Path(sys.executable).parent / "swarm"
    found = str(beside) if beside.exists() else shutil.which("swarm")
    if not found:
        raise CliError("cannot find the `swarm` command to point the CLIs at; install "
                       "unified-swarm so that `swarm` is on PATH", Exit.ERROR)
    return str(Path(found).absolute())


def root_of(args: argparse.Namespace) -> Path:
    if args.globally:
        return Path.home()
    return (args.dir or Path.cwd()).absolute()


def run_join(args: argparse.Namespace) -> int:
    named = tuple(cli for cli in CLIS if getattr(args, cli))
    clis = named or found_clis()
    if not clis:
        raise CliError("no agent CLI found on PATH (claude, codex, gemini); name one with "
                       "--claude, --codex or --gemini")
    caps = ",".join(c.strip() for c in args.capabilities.split(",") if c.strip())
    opts = JoinOptions(url=server_url(args), swarm=swarm_command(), clis=clis,
                       autopilot=args.autopilot, globally=args.globally,
                       capabilities=caps or "build")
    root = root_of(args)
    try:
        lines = join(root, opts)
    except ConfigFileError as exc:
        raise CliError(f"nothing written: {exc}") from None
    for line in lines:
        print(line)
    print(f"joined {', '.join(clis)} to {opts.url}"
          + (" (autopilot)" if opts.autopilot else "")
          + "; start a new session of the CLI to use it; `swarm leave` undoes this")
    if "codex" in clis:
        print("codex: open /hooks once in Codex to trust the new hooks (untrusted hooks do "
              "not run)")
    return check(opts, root) if args.check else int(Exit.OK)


# -- --check -------------------------------------------------------------------------------


def check(opts: JoinOptions, root: Path) -> int:
    """Each step prints ok or FAIL with why; the exit code says whether all passed."""
    results = [_check_server(opts.url), _check_hooks(opts, root)]
    results += [_check_cli(cli, root) for cli in opts.clis]
    return int(Exit.OK if all(results) else Exit.ERROR)


def _say(ok: bool, what: str, detail: str = "") -> bool:
    print(f"  {'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail else ""))
    return ok


def _check_server(url: str) -> bool:
    try:
        got = call(url, "GET", "/healthz", None)
    except CallFailed as exc:
        return _say(False, "server", str(exc))
    status = got.body.get("status") if isinstance(got.body, dict) else None
    return _say(True, "server", f"{url} answers ({status})")


def _check_hooks(opts: JoinOptions, root: Path) -> bool:
    """The hooks as a CLI would run them: a session starts (registers), then ends (leaves)."""
    payload = {"session_id": f"check-{uuid.uuid4().hex[:12]}", "cwd": str(root),
               "source": "startup"}
    env = dict(os.environ)
    for event in ("session-start", "session-end"):
        done = subprocess.run(
            [opts.swarm, "hook", event, "--cli", "claude", "--url", opts.url],
            input=json.dumps(payload), capture_output=True, text=True, timeout=60, env=env,
            cwd=root, check=False)
        if event == "session-start" and "additionalContext" not in done.stdout:
            why = done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}"
            return _say(False, "hooks", f"session-start registered nothing: {why}")
    return _say(True, "hooks", "session-start registered a session, session-end left")


def _check_cli(cli: str, root: Path) -> bool:
    argv = {"claude": ["claude", "mcp", "get", "swarm"],
            "codex": ["codex", "mcp", "get", "swarm", "--json"],
            "gemini": ["gemini", "mcp", "list"]}[cli]
    if shutil.which(argv[0]) is None:
        return _say(False, cli, f"`{argv[0]}` is not on PATH")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=root,
                              check=False)
    except subprocess.TimeoutExpired:
        return _say(False, cli, f"`{' '.join(argv)}` did not answer in 120 s")
    text = (done.stdout + done.stderr).strip()
    connected = done.returncode == 0 and "swarm" in text and (
        cli != "claude" or "connected" in text.lower())
    first = next((ln.strip() for ln in text.splitlines() if "status" in ln.lower()),
                 text.splitlines()[0] if text else "")
    return _say(connected, cli, f"`{' '.join(argv)}`: {first}")
