"""What `swarm join` writes for Codex and Gemini CLI, read back by those CLIs' own config
readers (`codex mcp get --json`, `gemini mcp list`), not by ours: the real binaries from npm
(`SWARM_AGENT_CLIS=all bash scripts/agent-clis.sh`, which `make test` runs). Gemini's list
goes further: it starts our stdio bridge from the written entry and speaks MCP to it, against
a live server. Each CLI gets a private home, so nothing of the user's is read or written.

Both CLIs are optional installs (about 0.6 GB): without them these tests skip, saying so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LiveServer
from unified_swarm.cli import main
from unified_swarm.client import Client

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".agent-clis/node_modules/.bin"
SWARM = str(Path(sys.executable).parent / "swarm")


def cli(name: str) -> Path:
    path = BIN / name
    if not os.access(path, os.X_OK):
        pytest.skip(f"{name} is not installed (SWARM_AGENT_CLIS=all bash scripts/agent-clis.sh)")
    return path


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # bounded: both CLIs answer these in seconds; Gemini's list waits for the bridge's
    # MCP handshake, which its own timeout caps
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = (tmp_path / "project").resolve()
    (root / ".codex").mkdir(parents=True)
    (root / ".codex/config.toml").write_text('[mcp_servers.docs]\ncommand = "docs-server"\n')
    return root


def codex_env(tmp_path: Path, project: Path) -> dict[str, str]:
    home = tmp_path / "codex-home"
    home.mkdir()
    # Codex reads a project's .codex/config.toml only for a project its user trusts
    (home / "config.toml").write_text(f'[projects."{project}"]\ntrust_level = "trusted"\n')
    return {**os.environ, "CODEX_HOME": str(home), "HOME": str(tmp_path)}


def gemini_env(tmp_path: Path, project: Path, token: str) -> dict[str, str]:
    home = tmp_path / "gemini-user"
    (home / ".gemini").mkdir(parents=True)
    # likewise, Gemini CLI starts a project's MCP servers only in a folder its user trusts
    (home / ".gemini/trustedFolders.json").write_text(json.dumps({str(project): "TRUST_FOLDER"}))
    # Gemini strips every variable named like *TOKEN* from the servers it starts, so
    # SWARM_TOKEN never reaches the bridge (docs/agents.md): the bridge finds the operator
    # token where a local server keeps it, .swarm/token in the project
    (project / ".swarm").mkdir()
    (project / ".swarm/token").write_text(token)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    return env | {"HOME": str(home)}


def codex_entry(project: Path, env: dict[str, str], name: str) -> dict[str, object] | None:
    done = run([str(cli("codex")), "mcp", "get", name, "--json"], project, env)
    return json.loads(done.stdout) if done.returncode == 0 else None


def test_codex_reads_the_joined_server_and_no_trace_after_leave(tmp_path: Path,
                                                                project: Path) -> None:
    env = codex_env(tmp_path, project)
    url = "http://127.0.0.1:8765"
    assert main(["join", "--codex", "--dir", str(project), "--url", url]) == 0
    entry = codex_entry(project, env, "swarm")
    assert entry is not None, "codex does not see the swarm server join wrote"
    assert entry["enabled"] is True and entry["tool_timeout_sec"] == 60.0
    assert entry["transport"] == {"type": "stdio", "command": SWARM, "args": ["mcp"],
                                  "env": {"SWARM_URL": url}, "env_vars": [], "cwd": None}
    assert codex_entry(project, env, "docs") is not None, "the user's own server is gone"

    assert main(["leave", "--dir", str(project)]) == 0
    assert codex_entry(project, env, "swarm") is None
    assert codex_entry(project, env, "docs") is not None


def test_gemini_starts_the_joined_bridge_and_it_answers(
        tmp_path: Path, project: Path, sqlite_server: LiveServer) -> None:
    gemini = cli("gemini")
    env = gemini_env(tmp_path, project, sqlite_server.token)
    assert main(["join", "--gemini", "--dir", str(project), "--url", sqlite_server.url]) == 0
    listed = run([str(gemini), "mcp", "list"], project, env)
    said = listed.stdout + listed.stderr
    line = next((x for x in said.splitlines() if "swarm:" in x), "")
    assert f"{SWARM} mcp (stdio)" in line, said
    assert "Connected" in line and "Disconnected" not in line, said
    with Client(sqlite_server.url, sqlite_server.token) as op:
        names = [s["name"] for s in op.sessions()]
    assert any(n.startswith("gemini-") for n in names), names

    assert main(["leave", "--dir", str(project)]) == 0
    listed = run([str(gemini), "mcp", "list"], project, env)
    assert "swarm:" not in listed.stdout + listed.stderr
