"""End to end with the REAL `claude` binary (scripts/agent-clis.sh installs it into
.agent-clis/), against a scripted fake of the Anthropic Messages API on loopback
(tests/agents/fake_anthropic.py) and a real swarm server.

A project joined with `swarm join --claude --autopilot`: the session's hooks register it,
the Stop hook names the offered task, the scripted model claims it through the bridge
(`swarm mcp`, spawned by Claude Code from .mcp.json), completes it with its fencing token,
and the swarm records exactly that result; `kill -9` of claude ends the session (the
bridge's stdin closes) and a task it held goes back to the queue.

Skipped when the CLI is not installed, failed when CI is set (`make test` installs it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents.fake_anthropic import RESULT, Script, fake_anthropic
from tests.conftest import LiveServer
from unified_swarm.cli import main as swarm
from unified_swarm.client import Client

ROOT = Path(__file__).resolve().parents[2]
CLAUDE = Path(os.environ.get("SWARM_E2E_CLAUDE") or ROOT / ".agent-clis/node_modules/.bin/claude")
pytestmark = pytest.mark.slow


def _claude_works() -> bool:
    try:
        done = subprocess.run([str(CLAUDE), "--version"], capture_output=True, timeout=60,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture(scope="module")
def claude_bin() -> Path:
    if not _claude_works():
        if os.environ.get("CI"):
            pytest.fail(f"the real claude is missing at {CLAUDE}: run scripts/agent-clis.sh")
        pytest.skip("the real claude is not installed (bash scripts/agent-clis.sh)")
    return CLAUDE


class Joined:
    """A project joined to the server, and a claude -p session started in it."""

    def __init__(self, server: LiveServer, root: Path, claude: Path) -> None:
        self.server, self.claude = server, claude
        self.project, self.home = root / "project", root / "home"
        self.project.mkdir()
        self.home.mkdir()
        assert swarm(["join", "--claude", "--autopilot", "--dir", str(self.project),
                      "--url", server.url]) == 0
        # the onboarding and the folder's trust dialog, as an interactive run once accepted
        (self.home / ".claude.json").write_text(json.dumps({
            "hasCompletedOnboarding": True,
            "projects": {str(self.project): {"hasTrustDialogAccepted": True}}}))
        self.out = root / "claude.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, api: str) -> None:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.home),
               "ANTHROPIC_BASE_URL": api, "ANTHROPIC_API_KEY": "sk-test-not-a-key",
               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
               "SWARM_TOKEN": self.server.token}
        with self.out.open("wb") as out:
            # its own process group: the hooks and the bridge it spawns can be found after
            self.proc = subprocess.Popen(
                [str(self.claude), "-p", "hello", "--output-format", "stream-json",
                 "--verbose"], cwd=self.project, env=env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.out.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    #: bounded by the CLI's progress, not a rate: 40 s on a quiet machine, over 4 minutes
    #: at load 20 (node's start, the bridge importing the MCP SDK, three model turns)
    def wait_for(self, what: str, check: Callable[[], Any], seconds: float = 600) -> Any:
        deadline = time.monotonic() + seconds
        while True:
            got = check()
            if got:
                return got
            assert time.monotonic() < deadline, f"{what}: not within {seconds} s\n" + \
                self.out.read_text(errors="replace")[-4000:]
            time.sleep(0.25)

    def session(self) -> dict[str, Any] | None:
        with Client(self.server.url, self.server.token) as op:
            found = [s for s in op.sessions()
                     if s["metadata"].get("joined_by") == "hook"]
        return dict(found[0]) if found else None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def cleanup(self) -> None:
        if self.proc is not None:
            # what claude started and left (a background hook) dies with its group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(30)


@pytest.fixture
def joined(sqlite_server: LiveServer, tmp_path: Path, claude_bin: Path) -> Iterator[Joined]:
    j = Joined(sqlite_server, tmp_path, claude_bin)
    try:
        yield j
    finally:
        j.cleanup()


def add_task(server: LiveServer, task_id: str) -> None:
    with Client(server.url, server.token) as op:
        op.add_task("build", id=task_id, title="answer the question",
                    input={"prompt": "What is six times seven?"})


def task_of(server: LiveServer, task_id: str) -> dict[str, Any]:
    with Client(server.url, server.token) as op:
        return dict(op.get_task(task_id))


def test_a_joined_session_claims_completes_and_kill_ends_it(joined: Joined) -> None:
    add_task(joined.server, "t-e2e")
    script = Script()
    with fake_anthropic(script) as api:
        joined.start(api)
        done = joined.wait_for("the task completed", lambda: (
            d := task_of(joined.server, "t-e2e"))["task"]["status"] == "completed" and d)
        assert done["task"]["result"] == RESULT  # exactly what the model sent
        session = joined.session()
        assert session is not None
        (attempt,) = done["history"]
        assert attempt["session_id"] == session["id"] and attempt["outcome"] == "completed"
        init = next(e for e in joined.events() if e.get("subtype") == "init")
        assert session["metadata"]["cli_session_id"] == init["session_id"]
        assert script.claimed == ["t-e2e"] and len(script.completed) == 1
        joined.kill9()
        gone = joined.wait_for("the session left", lambda: (
            s := joined.session()) is not None and s["status"] == "offline", 300)
        assert gone


def test_kill_9_gives_a_held_task_back(joined: Joined) -> None:
    add_task(joined.server, "t-held")
    script = Script(hold=True)
    with fake_anthropic(script) as api:
        joined.start(api)
        joined.wait_for("the model claimed", lambda: script.holding.is_set())
        held = task_of(joined.server, "t-held")["task"]
        assert held["status"] == "in_progress"
        session = joined.session()
        assert session is not None and held["assigned_to"] == session["id"]
        joined.kill9()
        back = joined.wait_for("the task went back", lambda: (
            t := task_of(joined.server, "t-held")["task"])["status"] == "ready" and t, 300)
        assert back["assigned_to"] is None
        session = joined.session()
        assert session is not None and session["status"] == "offline"



def test_the_claude_executor_reports_what_the_real_run_spent(
        sqlite_server: LiveServer, tmp_path: Path, claude_bin: Path) -> None:
    """`swarm worker --executor claude` with the real CLI (through a wrapper that notes its
    argv) and the swarm bridge lent: --session-id and --max-budget-usd reach the CLI, what the
    run spent lands on the attempt and the session, and the bridge's end (its stdin closing
    when the run exits) does not end the worker's session."""
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    (home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True,
        "projects": {str(project): {"hasTrustDialogAccepted": True}}}))
    argv_log = tmp_path / "argv.log"
    wrapper = tmp_path / "claude"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{argv_log}"\n'
                       f'exec "{claude_bin}" "$@"\n')
    wrapper.chmod(0o755)
    swarm_bin = Path(sys.executable).parent / "swarm"
    config = tmp_path / "worker.toml"
    config.write_text(f'executor = "claude"\n[claude]\nbinary = "{wrapper}"\n'
                      f'bridge = true\nswarm_bin = "{swarm_bin}"\ncwd = "{project}"\n')
    with Client(sqlite_server.url, sqlite_server.token) as op:
        op.add_task("review", id="t1", input={"prompt": "Say hello.", "max_budget_usd": 5})
    script = Script()
    with fake_anthropic(script) as api:
        env = {**os.environ, "HOME": str(home), "ANTHROPIC_BASE_URL": api,
               "ANTHROPIC_API_KEY": "sk-test-not-a-key",
               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}
        env.pop("SWARM_TOKEN", None)
        log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen(
            [str(swarm_bin), "worker", "--url", sqlite_server.url, "--token",
             sqlite_server.token, "--id", "w-claude", "-c", "review", "--config", str(config),
             "--heartbeat-interval", "2"], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            deadline = time.monotonic() + 600  # the CLI's own pace on a loaded machine
            with Client(sqlite_server.url, sqlite_server.token) as op:
                while op.get_task("t1")["task"]["status"] != "completed":
                    assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                    assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
                    time.sleep(0.5)
                done = op.get_task("t1")
                # the run's bridge has exited by now: the worker's session must be unharmed
                assert op.session("w-claude")["status"] in ("idle", "busy")
                session = op.session("w-claude")
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(60)
            log.close()
    argv = argv_log.read_text().splitlines()
    result = done["task"]["result"]
    assert argv[argv.index("--session-id") + 1] == result["session_id"]  # honoured by the CLI
    assert argv[argv.index("--max-budget-usd") + 1] == "5"
    assert "--mcp-config" in argv and "--strict-mcp-config" in argv
    (attempt,) = done["history"]
    spent = attempt["usage"]
    assert spent is not None and spent["input_tokens"] > 0 and spent["num_turns"] >= 1
    assert spent["cost_usd"] == round(result["total_cost_usd"], 6)
    assert spent["output_tokens"] == result["usage"]["output_tokens"]
    assert session["usage"] == {**spent, "attempts": 1}
