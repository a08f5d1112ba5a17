"""One swarm session per agent CLI session: where its session token is kept.

The CLI's session-start hook registers (or resumes) the swarm session keyed by the CLI's
session id and writes what it got to a 0600 file named after that id; the `swarm mcp` bridge
the same CLI spawns reads it and acts as that session (it registers by itself only when no
hook ran). Both run on the same machine, so a file in the data directory is the channel:
`<data dir>/agents/<cli session id>.json`, the directory 0700.

The data directory is `SWARM_DATA_DIR`, else `.swarm` (the default of `Settings.data_dir`,
relative to the working directory, which for an agent CLI's hooks and MCP servers is the
project's). Stdlib only: this is on the hooks' hot path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: the default of `Settings.data_dir` (config.py); kept here so the hot path imports nothing
DEFAULT_DATA_DIR = ".swarm"
#: the environment variables a CLI session id comes from, first found wins: Claude Code gives
#: its id to stdio MCP servers and hooks; `SWARM_CLI_SESSION_ID` is ours (a handle a hook or a
#: wrapper minted for a CLI that gives none), Gemini CLI gives its id to hooks only.
SESSION_ID_VARIABLES = ("SWARM_CLI_SESSION_ID", "CLAUDE_CODE_SESSION_ID", "GEMINI_SESSION_ID")
#: ids made of these characters name the file as they are; any other id is hashed
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
#: a session name the server takes (core.limits.NAME_PATTERN)
_NAME_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    """What the hook wrote: the swarm session acting for one CLI session."""

    cli_session_id: str
    session_id: str
    token: str
    #: the server the session was registered with ("" when the writer did not say)
    url: str = ""


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """`SWARM_DATA_DIR`, else `.swarm`, made absolute now (so a later chdir changes nothing)."""
    env = os.environ if env is None else env
    return Path(env.get("SWARM_DATA_DIR") or DEFAULT_DATA_DIR).absolute()


def cli_session_id(env: Mapping[str, str] | None = None) -> str | None:
    """The agent CLI's own session id from the environment, or None when it gives none."""
    env = os.environ if env is None else env
    return next((env[name] for name in SESSION_ID_VARIABLES if env.get(name)), None)


def session_name(cli: str, cli_session_id: str) -> str:
    """The swarm session's name: the CLI and its session id (hashed when it does not fit)."""
    name = f"{cli}-{cli_session_id}"
    if _NAME_OK.fullmatch(name):
        return name
    return f"{cli}-{hashlib.sha256(cli_session_id.encode()).hexdigest()[:16]}"


def cli_of(env: Mapping[str, str] | None = None) -> str:
    """Which agent CLI spawned us, from its variables ("agent" when none says)."""
    env = os.environ if env is None else env
    if env.get("CLAUDE_CODE_SESSION_ID") or env.get("CLAUDECODE"):
        return "claude"
    # Gemini CLI gives its session id to hooks only; every process it starts (our bridge
    # among them) gets GEMINI_CLI=1
    if env.get("GEMINI_SESSION_ID") or env.get("GEMINI_CLI") == "1":
        return "gemini"
    return env.get("SWARM_CLI") or "agent"


def mint_handle() -> str:
    """A fresh id for a CLI session that gives none (128 random bits)."""
    return "h-" + secrets.token_hex(16)


def token_path(data_dir: Path, cli_session_id: str) -> Path:
    """The file of one CLI session. An id that is not a plain name is hashed, so no id can
    reach outside the directory."""
    if not cli_session_id:
        raise ValueError("an empty CLI session id names no file")
    name = (cli_session_id if _SAFE_ID.fullmatch(cli_session_id)
            else "sha256-" + hashlib.sha256(cli_session_id.encode()).hexdigest()[:32])
    return data_dir / "agents" / f"{name}.json"


def write_token(data_dir: Path, cli_session_id: str, token: str, *, session_id: str,
                url: str = "") -> Path:
    """Write (or replace) the file atomically, mode 0600 from its first byte; returns its path."""
    path = token_path(data_dir, cli_session_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = json.dumps({"cli_session_id": cli_session_id, "session_id": session_id,
                       "token": token, "url": url})
    # mkstemp creates the file 0600; the rename makes a reader see the old file or the new one
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_identity(data_dir: Path, cli_session_id: str) -> AgentIdentity | None:
    """The hook's record for this CLI session, or None when there is none (or it is unreadable:
    then the caller registers by itself, as when no hook ran)."""
    try:
        raw = json.loads(token_path(data_dir, cli_session_id).read_text())
    except (OSError, ValueError):
        return None
    if not (isinstance(raw, dict) and isinstance(raw.get("token"), str) and raw["token"]
            and isinstance(raw.get("session_id"), str)):
        return None
    url = raw.get("url")
    return AgentIdentity(cli_session_id, raw["session_id"], raw["token"],
                         url if isinstance(url, str) else "")


def read_token(data_dir: Path, cli_session_id: str) -> str | None:
    """The session token the hook wrote for this CLI session, or None."""
    found = read_identity(data_dir, cli_session_id)
    return found.token if found else None


def remove_token(data_dir: Path, cli_session_id: str) -> bool:
    """Forget the CLI session (it ended); True when there was a file."""
    try:
        token_path(data_dir, cli_session_id).unlink()
    except FileNotFoundError:
        return False
    return True
