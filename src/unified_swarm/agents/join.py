"""`swarm join` and `swarm leave`: the MCP server entry and the hooks, for each agent CLI.

Join merges our entries into each CLI's own config files (after a byte copy of each file it
touches) and writes a manifest naming every file and directory it created or changed; leave
reads the manifest and undoes it: a file still as join wrote it gets its backup back byte for
byte (or is deleted when join created it), a file the user edited since loses exactly our
entries and keeps theirs. Then the backups, the manifest and the directories join made go.

Nothing here holds a token: the entries name the `swarm` command and the server's URL; the
session tokens are minted when a session starts and kept in 0600 files outside the project.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import Addition, ConfigFileError, digest, merge, toml_block, unmerge
from .protocol import SKILL_TEXT

CLIS = ("claude", "codex", "gemini")
SERVER = "swarm"
PLUGIN = "unified-swarm"
MANIFEST_VERSION = 1


@dataclass(frozen=True, slots=True)
class JoinOptions:
    url: str
    swarm: str  # the absolute path of the `swarm` command the CLIs will run
    clis: tuple[str, ...]
    autopilot: bool = False
    globally: bool = False
    capabilities: str = "build"


@dataclass(frozen=True, slots=True)
class Change:
    """One file join will write: its path, the bytes before (None: absent), what to add."""

    path: Path
    addition: Addition
    what: str


def hook_command(opts: JoinOptions, cli: str, event: str, *extra: str) -> str:
    argv = [opts.swarm, "hook", event, "--cli", cli, "--url", opts.url, *extra]
    if event == "session-start":
        argv += ["--capabilities", opts.capabilities]
    return " ".join(shlex.quote(a) for a in argv)


#: the hooks join adds, in order: the `swarm hook` event, its timeout in seconds, and the
#: event each CLI fires it on, as in CLIS (None: that CLI does not get it)
HOOK_EVENTS: tuple[tuple[str, float, tuple[str | None, ...]], ...] = (
    ("session-start", 30, ("SessionStart", "SessionStart", "SessionStart")),
    ("prompt-submit", 10, ("UserPromptSubmit", "UserPromptSubmit", "BeforeAgent")),
    ("stop", 30, ("Stop", "Stop", "AfterAgent")),
    ("notification", 10, ("Notification", None, "Notification")),
    ("pre-compact", 30, ("PreCompact", "PreCompact", "PreCompress")),
    ("session-end", 5, ("SessionEnd", "SessionEnd", "SessionEnd")),
)
#: (cli, event) -> the matcher of its group; Claude Code's notifications: only these two
MATCHERS = {("claude", "notification"): "permission_prompt|idle_prompt"}


def _timeout(cli: str, seconds: float) -> int:
    # Gemini counts hook timeouts in milliseconds, Claude Code and Codex in seconds
    return int(seconds * (1000 if cli == "gemini" else 1))


def _command_hook(opts: JoinOptions, cli: str, event: str, timeout: float,
                  **more: Any) -> dict[str, Any]:
    return {"type": "command", "command": hook_command(opts, cli, event),
            "timeout": _timeout(cli, timeout), **more}


def _stop_hooks(opts: JoinOptions, cli: str, timeout: float) -> list[dict[str, Any]]:
    stop = [{"type": "command", "timeout": _timeout(cli, timeout), "command": hook_command(
        opts, cli, "stop", *(("--autopilot",) if opts.autopilot else ()))}]
    if opts.autopilot and cli == "claude":
        # waits in the background for an offer; its exit 2 wakes the idle session
        stop.append(_command_hook(opts, cli, "stop-wait", 3600, asyncRewake=True))
    return stop


def _group(hooks: list[dict[str, Any]], matcher: str | None = None) -> dict[str, Any]:
    return ({"matcher": matcher} if matcher else {}) | {"hooks": hooks}


def hooks_of(opts: JoinOptions, cli: str) -> dict[str, list[dict[str, Any]]]:
    """A CLI's hooks (`HOOK_EVENTS`): its event -> the matcher groups join adds."""
    column = CLIS.index(cli)
    return {name: [_group(_stop_hooks(opts, cli, timeout) if event == "stop"
                          else [_command_hook(opts, cli, event, timeout)],
                          MATCHERS.get((cli, event)))]
            for event, timeout, names in HOOK_EVENTS if (name := names[column]) is not None}


def mcp_entry(opts: JoinOptions, cli: str) -> dict[str, Any]:
    """The stdio bridge as each CLI spells a server entry."""
    base: dict[str, Any] = {"command": opts.swarm, "args": ["mcp"],
                            "env": {"SWARM_URL": opts.url}}
    if cli == "claude":
        # without alwaysLoad Claude Code defers the tools behind ToolSearch (measured)
        return {"type": "stdio", **base, "alwaysLoad": True}
    if cli == "codex":
        return {**base, "tool_timeout_sec": 60}
    return {**base, "timeout": 60_000}


def _appends(prefix: tuple[str, ...],
             hooks: dict[str, list[dict[str, Any]]]) -> tuple[tuple[tuple[str, ...], Any], ...]:
    return tuple(((*prefix, event), group) for event, groups in hooks.items()
                 for group in groups)


def plan(root: Path, opts: JoinOptions) -> list[Change]:
    """Every file join writes for these CLIs under `root` (the project, or home with
    --global), with what it adds to each."""
    changes: list[Change] = []
    for cli in opts.clis:
        changes += PLANNERS[cli](root, opts)
    return changes


def _plan_claude(root: Path, opts: JoinOptions) -> list[Change]:
    if opts.globally:
        return _plan_claude_plugin(root, opts)
    settings = root / ".claude" / "settings.local.json"
    return [
        Change(root / ".mcp.json", Addition(sets=((("mcpServers", SERVER),
                                                    mcp_entry(opts, "claude")),)), ".mcp.json"),
        Change(settings, Addition(appends=(
            (("permissions", "allow"), f"mcp__{SERVER}__*"),
            (("enabledMcpjsonServers",), SERVER),
            *_appends(("hooks",), hooks_of(opts, "claude")))), ".claude/settings.local.json"),
    ]


def _plan_claude_plugin(home: Path, opts: JoinOptions) -> list[Change]:
    """A personal skills-directory plugin: it loads in every project with no install."""
    top = home / ".claude" / "skills" / PLUGIN
    manifest = {"name": PLUGIN, "description": "Join this session to a Unified Swarm"}
    return [
        Change(top / ".claude-plugin" / "plugin.json",
               Addition(sets=tuple(((k,), v) for k, v in manifest.items())), "plugin.json"),
        Change(top / ".mcp.json", Addition(sets=((("mcpServers", SERVER),
                                                  mcp_entry(opts, "claude")),)),
               "the plugin's .mcp.json"),
        Change(top / "hooks" / "hooks.json",
               Addition(appends=_appends(("hooks",), hooks_of(opts, "claude"))),
               "the plugin's hooks/hooks.json"),
        Change(top / "skills" / "swarm" / "SKILL.md", Addition(block=SKILL_TEXT),
               "the plugin's SKILL.md"),
    ]


def _plan_codex(root: Path, opts: JoinOptions) -> list[Change]:
    entry = mcp_entry(opts, "codex")
    return [
        Change(root / ".codex" / "config.toml",
               Addition(block=toml_block(f"mcp_servers.{SERVER}", entry)), ".codex/config.toml"),
        Change(root / ".codex" / "hooks.json",
               Addition(appends=_appends(("hooks",), hooks_of(opts, "codex"))),
               ".codex/hooks.json"),
    ]


def _plan_gemini(root: Path, opts: JoinOptions) -> list[Change]:
    return [Change(root / ".gemini" / "settings.json", Addition(
        sets=((("mcpServers", SERVER), mcp_entry(opts, "gemini")),),
        appends=_appends(("hooks",), hooks_of(opts, "gemini"))), ".gemini/settings.json")]


PLANNERS: dict[str, Callable[[Path, JoinOptions], list[Change]]] = {
    "claude": _plan_claude, "codex": _plan_codex, "gemini": _plan_gemini}


# -- doing and undoing ---------------------------------------------------------------------


def state_dir(root: Path) -> Path:
    """Where the manifest and the backups live: <root>/.swarm (ignored by git: join writes a
    .gitignore of `*` there when it makes the directory)."""
    return root / ".swarm"


def manifest_path(root: Path, globally: bool) -> Path:
    return state_dir(root) / ("join-global.json" if globally else "join.json")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _make_dirs(path: Path, made: list[str]) -> None:
    """mkdir -p, remembering each directory made so leave removes it again."""
    missing: list[Path] = []
    for parent in [path, *path.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for d in reversed(missing):
        d.mkdir()
        made.append(str(d))


def join(root: Path, opts: JoinOptions) -> list[str]:
    """Write every change (leaving first if a manifest is there, so join can be re-run with
    other flags); returns one line per change, for people."""
    lines: list[str] = []
    manifest = manifest_path(root, opts.globally)
    if manifest.exists():
        lines += [f"(re-joining) {line}" for line in leave(root, opts.globally)]
    changes = plan(root, opts)
    befores = [_read(c.path) for c in changes]
    merged = [merge(before, c.addition, c.what) for c, before in zip(changes, befores, strict=True)]
    made: list[str] = []
    state = state_dir(root)
    state_existed = state.exists()
    _make_dirs(state, made)
    if not state_existed:
        (state / ".gitignore").write_text("*\n")
    backups = state / ("join-backups-global" if opts.globally else "join-backups")
    _make_dirs(backups, made)
    entries: list[dict[str, Any]] = []
    for n, (change, before, result) in enumerate(zip(changes, befores, merged, strict=True)):
        backup = None
        if before is not None:
            backup = backups / f"{n}-{change.path.name}"
            backup.write_bytes(before)
        _make_dirs(change.path.parent, made)
        _write_like(change.path, result.data, before is not None)
        entries.append({"path": str(change.path), "created": before is None,
                        "backup": str(backup) if backup else None,
                        "written": digest(result.data), "added": result.added.wire(),
                        "what": change.what})
        verb = "created" if before is None else "merged into (backup kept)"
        lines.append(f"{verb} {change.path}")
    manifest.write_text(json.dumps({"version": MANIFEST_VERSION, "files": entries,
                                    "dirs": made, "gitignore": not state_existed}, indent=2))
    return lines


def _write_like(path: Path, data: bytes, existed: bool) -> None:
    """Write keeping an existing file's mode; a new file is private to the user (0600)."""
    if existed:
        path.write_bytes(data)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def leave(root: Path, globally: bool) -> list[str]:
    """Undo the join the manifest describes; returns one line per file, for people."""
    manifest = manifest_path(root, globally)
    try:
        record = json.loads(manifest.read_text())
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise ConfigFileError(f"{manifest} is not valid JSON ({exc})") from None
    lines: list[str] = []
    for entry in reversed(record.get("files", [])):
        lines.append(_undo(entry))
    manifest.unlink()
    made = [Path(d) for d in reversed(record.get("dirs", []))]
    for d in made:
        if d == state_dir(root) and record.get("gitignore") and \
                [p.name for p in d.iterdir()] == [".gitignore"]:
            (d / ".gitignore").unlink()  # only when nothing else is left to keep out of git
        with contextlib.suppress(OSError):  # not empty: something else lives there now
            d.rmdir()
    return lines


def _put_back(path: Path, content: bytes | None, done: str) -> str:
    """Write what the file should hold now; None: nothing of it is left, so it goes."""
    if content is None:
        path.unlink()
        return f"removed {path}"
    path.write_bytes(content)
    return done


def _undo(entry: dict[str, Any]) -> str:
    path = Path(entry["path"])
    backup = Path(entry["backup"]) if entry.get("backup") else None
    original = backup.read_bytes() if backup else None
    current = _read(path)
    if current is None:
        line = f"gone already: {path}"
    elif digest(current) == entry.get("written"):
        line = _put_back(path, original, f"restored {path}")
    else:  # edited since join: take out only what join added
        kept = unmerge(current, original, Addition.from_wire(entry.get("added", {})),
                       entry.get("what", str(path)))
        line = _put_back(path, kept,
                         f"took our entries out of {path} (edited since join: your edits kept)")
    if backup:
        backup.unlink(missing_ok=True)
    return line


def found_clis(path_dirs: Sequence[str] | None = None) -> tuple[str, ...]:
    """The agent CLIs on PATH."""
    search = os.pathsep.join(path_dirs) if path_dirs is not None else None
    return tuple(cli for cli in CLIS if shutil.which(cli, path=search))
