"""`swarm join` / `swarm leave` round trips on temporary projects that already have config
files of their own: nothing of theirs lost, nothing of ours left, byte-identical restore."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import LiveServer
from unified_swarm.agents import identity
from unified_swarm.cli import main
from unified_swarm.client import Client

URL = "http://127.0.0.1:8765"
SWARM = str(Path(sys.executable).parent / "swarm")

EXISTING = {
    ".mcp.json": b'{\n    "mcpServers": {"docs": {"command": "docs-server", "args": []}}\n}',
    ".claude/settings.local.json": json.dumps({
        "permissions": {"allow": ["Bash(npm test)"]},
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}]},
    }).encode(),
    ".claude/settings.json": b'{"model": "opus"}\n',
    ".codex/config.toml": b'model = "o5"\n\n[mcp_servers.docs]\ncommand = "docs-server"\n',
    ".gemini/settings.json": b'{"theme": "dark"}',
    "src/main.py": b"print('hi')\n",
}


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()} | {str(p.relative_to(root)) + "/": b"" for p in root.rglob("*")
                               if p.is_dir()}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for rel, data in EXISTING.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def swarm(*argv: str) -> int:
    return main(list(argv))


def test_join_all_then_leave_restores_every_byte(project: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = tree(project)
    assert swarm("join", "--claude", "--codex", "--gemini", "--autopilot", "--dir",
                 str(project), "--url", URL) == 0
    said = capsys.readouterr().out
    assert "merged into (backup kept)" in said and "joined claude, codex, gemini" in said
    mcp = json.loads((project / ".mcp.json").read_text())
    assert mcp["mcpServers"]["docs"] == {"command": "docs-server", "args": []}
    assert mcp["mcpServers"]["swarm"] == {"type": "stdio", "command": SWARM, "args": ["mcp"],
                                          "env": {"SWARM_URL": URL}, "alwaysLoad": True}
    settings = json.loads((project / ".claude/settings.local.json").read_text())
    assert settings["permissions"]["allow"] == ["Bash(npm test)", "mcp__swarm__*"]
    stops = [h for g in settings["hooks"]["Stop"] for h in g["hooks"]]
    assert stops[0]["command"] == "notify-send done"
    assert any("stop-wait" in h["command"] and h.get("asyncRewake") for h in stops)
    assert {"SessionStart", "UserPromptSubmit", "Notification", "PreCompact",
            "SessionEnd"} <= set(settings["hooks"])
    codex = tomllib.loads((project / ".codex/config.toml").read_text())
    assert codex["model"] == "o5" and codex["mcp_servers"]["docs"]["command"] == "docs-server"
    assert codex["mcp_servers"]["swarm"]["args"] == ["mcp"]
    assert "SessionStart" in json.loads((project / ".codex/hooks.json").read_text())["hooks"]
    gemini = json.loads((project / ".gemini/settings.json").read_text())
    assert gemini["theme"] == "dark" and gemini["mcpServers"]["swarm"]["timeout"] == 60_000
    assert "AfterAgent" in gemini["hooks"]
    assert (project / ".claude/settings.json").read_bytes() == EXISTING[".claude/settings.json"]

    assert swarm("leave", "--dir", str(project)) == 0
    assert tree(project) == before  # every byte back, every file and directory we made gone


def test_join_into_an_empty_project_and_leave_leaves_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    assert swarm("join", "--claude", "--codex", "--gemini", "--dir", str(root),
                 "--url", URL) == 0
    assert (root / ".swarm" / ".gitignore").read_text() == "*\n"
    assert (root / ".claude/settings.local.json").stat().st_mode & 0o077 == 0
    assert swarm("leave", "--dir", str(root)) == 0
    assert list(root.iterdir()) == []
    assert swarm("leave", "--dir", str(root)) == 0
    assert "nothing to undo" in capsys.readouterr().out


def test_a_file_edited_since_join_keeps_the_users_edits(project: Path) -> None:
    assert swarm("join", "--claude", "--codex", "--dir", str(project), "--url", URL) == 0
    settings_path = project / ".claude/settings.local.json"
    settings = json.loads(settings_path.read_text())
    settings["permissions"]["allow"].append("Bash(make)")
    settings_path.write_text(json.dumps(settings))
    with (project / ".codex/config.toml").open("a") as f:
        f.write('\n[profiles.fast]\nmodel = "o5-mini"\n')
    assert swarm("leave", "--dir", str(project)) == 0
    kept = json.loads(settings_path.read_text())
    original = json.loads(EXISTING[".claude/settings.local.json"])
    assert kept["permissions"]["allow"] == ["Bash(npm test)", "Bash(make)"]
    assert kept["hooks"] == original["hooks"]
    codex = tomllib.loads((project / ".codex/config.toml").read_text())
    assert "swarm" not in codex["mcp_servers"] and codex["profiles"]["fast"]["model"] == "o5-mini"
    assert (project / ".mcp.json").read_bytes() == EXISTING[".mcp.json"]
    assert not (project / ".swarm").exists()


def test_rejoin_with_other_flags_then_leave_still_restores(project: Path) -> None:
    before = tree(project)
    assert swarm("join", "--claude", "--dir", str(project), "--url", URL) == 0
    assert swarm("join", "--claude", "--autopilot", "--dir", str(project), "--url", URL) == 0
    stops = json.loads((project / ".claude/settings.local.json").read_text())["hooks"]["Stop"]
    assert sum("stop-wait" in h["command"] for g in stops for h in g["hooks"]) == 1
    assert swarm("leave", "--dir", str(project)) == 0
    assert tree(project) == before


def test_a_broken_file_stops_join_before_anything_is_written(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / ".gemini/settings.json").write_text("{not json")
    before = tree(project)
    assert swarm("join", "--claude", "--gemini", "--dir", str(project), "--url", URL) == 2
    assert "nothing written" in capsys.readouterr().err
    assert tree(project) == before


def test_global_is_a_personal_plugin_and_leave_removes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude/settings.json").write_text('{"theme": "light"}')
    monkeypatch.setenv("HOME", str(home))
    before = tree(home)
    assert swarm("join", "--claude", "--global", "--url", URL) == 0
    plugin = home / ".claude/skills/unified-swarm"
    assert json.loads((plugin / ".claude-plugin/plugin.json").read_text())["name"] == \
        "unified-swarm"
    assert "swarm" in json.loads((plugin / ".mcp.json").read_text())["mcpServers"]
    assert "SessionStart" in json.loads((plugin / "hooks/hooks.json").read_text())["hooks"]
    assert "claim_task" in (plugin / "skills/swarm/SKILL.md").read_text()
    assert swarm("leave", "--global") == 0
    assert tree(home) == before


def test_no_token_is_written_and_the_written_hook_runs(
        sqlite_server: LiveServer, tmp_path: Path) -> None:
    """The hook command join wrote, run by a shell as Claude Code runs it, registers a session;
    no file under the project holds the operator's token, and the session token sits in the
    0600 file only."""
    root = tmp_path / "p"
    root.mkdir()
    assert swarm("join", "--claude", "--dir", str(root), "--url", sqlite_server.url) == 0
    settings = json.loads((root / ".claude/settings.local.json").read_text())
    command = settings["hooks"]["SessionStart"][0]["hooks"][0]["command"]
    payload = {"session_id": "5b1c0de4-0000-4000-8000-000000000001", "cwd": str(root),
               "source": "startup", "hook_event_name": "SessionStart"}
    env = {**os.environ, "SWARM_TOKEN": sqlite_server.token}
    done = subprocess.run(["sh", "-c", command], input=json.dumps(payload), cwd=root, env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    assert "claim_task" in done.stdout, done.stderr
    who = identity.read_identity(root / ".swarm", payload["session_id"])
    assert who is not None
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert sqlite_server.token.encode() not in data, path
            if who.token.encode() in data:
                assert path == identity.token_path(root / ".swarm", payload["session_id"])
    assert swarm("leave", "--dir", str(root)) == 0
    # the session's token file outlives leave (the session may still run) and stays ignored
    assert (root / ".swarm/agents/.gitignore").read_text() == "*\n"
    assert not (root / ".claude").exists() and not (root / ".mcp.json").exists()


def test_check_says_what_works(sqlite_server: LiveServer, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """--check drives the hooks against the server and asks each CLI; a CLI that is not on
    PATH is a FAIL line and exit 1, the rest still checked."""
    root = tmp_path / "p"
    root.mkdir()
    monkeypatch.setenv("SWARM_TOKEN", sqlite_server.token)
    monkeypatch.setenv("PATH", str(Path(SWARM).parent))  # no claude here
    code = swarm("join", "--claude", "--check", "--dir", str(root), "--url", sqlite_server.url)
    out = capsys.readouterr().out
    assert "ok   server" in out and "ok   hooks" in out
    assert "FAIL claude: `claude` is not on PATH" in out and code == 1
    with Client(sqlite_server.url, sqlite_server.token) as op:
        (checked,) = op.sessions()
    assert checked["status"] == "offline"  # the check's session left again
    assert swarm("leave", "--dir", str(root)) == 0
