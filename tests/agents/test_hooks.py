"""`swarm hook <event>` with the JSON the agent CLIs send, against a real server (uvicorn on
loopback, both stores where the store matters)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer
from unified_swarm.agents import hooks, identity
from unified_swarm.client import Client


class Cli:
    """One agent CLI session: runs its hooks in-process with the JSON the CLI would send."""

    def __init__(self, server: LiveServer, project: Path, cli: str = "claude") -> None:
        self.server, self.project, self.cli = server, project, cli
        self.session_id = str(uuid.uuid4())
        self.env = {"SWARM_TOKEN": server.token, "PATH": os.environ.get("PATH", "")}

    def payload(self, event: str, **more: Any) -> dict[str, Any]:
        return {"session_id": self.session_id, "cwd": str(self.project),
                "hook_event_name": event, "transcript_path": "/dev/null", **more}

    def run(self, event: str, *extra: str, stdin: str | None = None,
            **more: Any) -> tuple[int, dict[str, Any] | None, str]:
        out, err = io.StringIO(), io.StringIO()
        raw = stdin if stdin is not None else json.dumps(self.payload(event, **more))
        argv = [event, "--cli", self.cli, "--url", self.server.url, *extra]
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            code = hooks.main(argv, stdin=io.StringIO(raw), env=self.env)
        finally:
            sys.stdout, sys.stderr = old_out, old_err
        text = out.getvalue().strip()
        return code, (json.loads(text) if text else None), err.getvalue()

    @property
    def who(self) -> identity.AgentIdentity:
        found = identity.read_identity(self.project / ".swarm", self.session_id)
        assert found is not None
        return found

    def client(self) -> Client:
        return Client(self.server.url, self.who.token)


@pytest.fixture
def cli(live_server: LiveServer, tmp_path: Path) -> Iterator[Cli]:
    yield Cli(live_server, tmp_path)


def context_of(out: dict[str, Any] | None) -> str:
    assert out is not None
    return str(out["hookSpecificOutput"]["additionalContext"])


def test_session_start_registers_and_writes_a_private_token_file(cli: Cli) -> None:
    code, out, err = cli.run("session-start", "--capabilities", "build,research",
                             source="startup")
    assert code == 0, err
    text = context_of(out)
    assert "claim_task" in text and cli.who.session_id in text
    assert out is not None and out["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    path = identity.token_path(cli.project / ".swarm", cli.session_id)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with Client(cli.server.url, cli.server.token) as op:
        session = op.session(cli.who.session_id)
    assert session["metadata"]["cli_session_id"] == cli.session_id
    assert cli.session_id in session["name"]
    assert sorted(session["capabilities"]) == ["build", "research"]


def test_session_start_resumes_the_same_session(cli: Cli) -> None:
    cli.run("session-start", source="startup")
    first = cli.who.session_id
    code, out, _ = cli.run("session-start", source="resume")
    assert code == 0 and first in context_of(out)
    assert cli.who.session_id == first
    with Client(cli.server.url, cli.server.token) as op:
        assert [s["id"] for s in op.sessions()] == [first]


def test_compact_reinjects_the_held_lease(cli: Cli) -> None:
    cli.run("session-start", source="startup")
    with Client(cli.server.url, cli.server.token) as op:
        op.add_task("build", id="t-compact", title="write the parser")
    with cli.client() as me:
        claimed = me.request_work()
    assert claimed is not None
    _, out, _ = cli.run("session-start", source="compact")
    text = context_of(out)
    assert "t-compact" in text and f"fencing_token {claimed['lease']['fencing_token']}" in text
    assert "compacted" in text


def test_stop_reminds_once_of_an_unfinished_lease(cli: Cli) -> None:
    cli.run("session-start", source="startup")
    with Client(cli.server.url, cli.server.token) as op:
        op.add_task("build", id="t-held")
    with cli.client() as me:
        assert me.request_work() is not None
    code, out, _ = cli.run("stop", stop_hook_active=False)
    assert code == 0 and out is not None and out["decision"] == "block"
    assert "t-held" in out["reason"] and "complete_task" in out["reason"]
    code, out, _ = cli.run("stop", stop_hook_active=True)
    assert code == 0 and out is None  # once only: no loop


def test_prompt_submit_marks_the_session_busy_and_stop_idle_again(cli: Cli) -> None:
    cli.run("session-start", source="startup")
    with Client(cli.server.url, cli.server.token) as op:
        code, out, _ = cli.run("prompt-submit", prompt="fix the tests")
        assert code == 0 and out is None
        assert op.session(cli.who.session_id)["status"] == "busy"
        cli.run("stop", stop_hook_active=False)
        assert op.session(cli.who.session_id)["status"] == "idle"


def test_notification_and_pre_compact_checkpoint_a_held_lease(cli: Cli) -> None:
    cli.run("session-start", source="startup")
    with Client(cli.server.url, cli.server.token) as op:
        op.add_task("build", id="t-note")
        with cli.client() as me:
            claimed = me.request_work()
            assert claimed is not None
            me.progress("t-note", claimed["lease"]["fencing_token"], 0.4, "half way")
        code, _, err = cli.run("notification", notification_type="permission_prompt",
                               message="Claude needs your permission to use Bash")
        assert code == 0, err
        task = op.get_task("t-note")["task"]
        assert task["progress"]["value"] == pytest.approx(0.4)
        assert "input required (permission_prompt)" in str(task["progress"]["message"])
        code, _, err = cli.run("pre-compact", trigger="auto")
        assert code == 0, err
        assert "compacted" in str(op.get_task("t-note")["task"]["progress"]["message"])


def test_session_end_leaves_and_the_task_goes_back(cli: Cli) -> None:
    cli.run("session-start", source="startup")
    with Client(cli.server.url, cli.server.token) as op:
        op.add_task("build", id="t-end")
        with cli.client() as me:
            assert me.request_work() is not None
        sid = cli.who.session_id
        code, _, err = cli.run("session-end", reason="prompt_input_exit")
        assert code == 0, err
        assert op.session(sid)["status"] == "offline"
        assert op.get_task("t-end")["task"]["status"] == "ready"
    assert identity.read_identity(cli.project / ".swarm", cli.session_id) is None


@pytest.mark.parametrize("stdin", ["", "not json", "[1, 2]", '{"session_id": 5}'])
def test_bad_input_never_breaks_the_cli(cli: Cli, stdin: str) -> None:
    for event in hooks.EVENTS:
        code, out, _ = cli.run(event, stdin=stdin)
        assert code == 0 and out is None


def test_an_unreachable_server_is_one_line_on_stderr(cli: Cli, tmp_path: Path) -> None:
    cli.env = {"SWARM_TOKEN": "x"}
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = hooks.main(["session-start", "--url", "http://127.0.0.1:9"],
                          stdin=io.StringIO(json.dumps(cli.payload("SessionStart"))),
                          env=cli.env)
    finally:
        sys.stdout, sys.stderr = old
    assert code == 0 and out.getvalue() == ""
    assert "cannot reach" in err.getvalue() and len(err.getvalue().splitlines()) == 1


def test_unknown_event_and_codex_always_prints_json(cli: Cli) -> None:
    code, out, err = cli.run("nonsense")
    assert code == 0 and out is None and "unknown" in err
    cli.cli = "codex"
    code, out, _ = cli.run("stop", stop_hook_active=False)
    assert code == 0 and out == {}  # not joined yet: nothing to say, but JSON all the same


@pytest.mark.slow
def test_the_swarm_command_runs_a_hook_without_importing_the_sdk(
        sqlite_server: LiveServer, tmp_path: Path) -> None:
    """The real entry point as a CLI runs it: a fresh process; httpx and pydantic stay out."""
    swarm = Path(sys.executable).parent / "swarm"
    payload = {"session_id": "s-1", "cwd": str(tmp_path), "source": "startup"}
    env = {**os.environ, "SWARM_TOKEN": sqlite_server.token}
    done = subprocess.run([str(swarm), "hook", "session-start", "--url", sqlite_server.url],
                          input=json.dumps(payload), capture_output=True, text=True,
                          env=env, timeout=60, check=True)
    assert "claim_task" in json.loads(done.stdout)["hookSpecificOutput"]["additionalContext"]
    probe = ("import sys, io; from unified_swarm.cli import main; "
             "sys.stdin = io.StringIO(''); main(['hook', 'prompt-submit']); "
             "print(sorted(m for m in ('httpx', 'pydantic', 'fastapi') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, timeout=60, check=True, cwd=tmp_path)
    assert done.stdout.strip() == "[]"


def add_task(server: LiveServer, task_id: str) -> None:
    with Client(server.url, server.token) as op:
        op.add_task("build", id=task_id, title=f"do {task_id}")


@pytest.mark.parametrize(("flavour", "autopilot"), [("claude", False), ("claude", True),
                                                    ("codex", True), ("gemini", True)])
def test_stop_names_an_offer(live_server: LiveServer, tmp_path: Path, flavour: str,
                             autopilot: bool) -> None:
    cli = Cli(live_server, tmp_path, flavour)
    cli.run("session-start", source="startup")
    code, out, _ = cli.run("stop", *(["--autopilot"] if autopilot else []))
    assert code == 0 and out == ({} if flavour == "codex" else None)  # nothing offered
    add_task(live_server, "t-offer")
    code, out, err = cli.run("stop", *(["--autopilot"] if autopilot else []))
    assert code == 0 and out is not None, err
    if not autopilot:
        assert "t-offer" in out["systemMessage"] and "autopilot is off" in out["systemMessage"]
    else:
        assert out["decision"] == ("deny" if flavour == "gemini" else "block")
        assert "claim_task with task_id t-offer" in out["reason"]
    with Client(live_server.url, live_server.token) as op:
        task = op.get_task("t-offer")["task"]
    assert task["status"] == "assigned" and task["assigned_to"] == cli.who.session_id
    code, out, _ = cli.run("stop", *(["--autopilot"] if autopilot else []))
    assert out == ({} if flavour == "codex" else None)  # named once: an ignored offer lapses


def stop_wait(cli: Cli, transcript: Path | None = None, **env: str) -> subprocess.Popen[str]:
    swarm = Path(sys.executable).parent / "swarm"
    payload = cli.project / f"stop-{uuid.uuid4().hex}.json"
    more = {} if transcript is None else {"transcript_path": str(transcript)}
    payload.write_text(json.dumps(cli.payload("Stop", stop_hook_active=False, **more)))
    with payload.open() as stdin:
        return subprocess.Popen(
            [str(swarm), "hook", "stop-wait", "--url", cli.server.url], stdin=stdin,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **cli.env, **env})


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


@pytest.mark.slow
def test_stop_wait_wakes_with_an_offer_and_a_newer_waiter_supersedes(
        sqlite_server: LiveServer, tmp_path: Path) -> None:
    cli = Cli(sqlite_server, tmp_path)
    cli.run("session-start", source="startup")
    first = stop_wait(cli)
    state = identity.token_path(tmp_path / ".swarm", cli.session_id).with_suffix(".hook.json")
    deadline = time.monotonic() + 30
    while json.loads(state.read_text()).get("waiter") != first.pid:
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    second = stop_wait(cli)
    assert finish(first)[0] == 0  # superseded: ends quietly
    add_task(sqlite_server, "t-wake")
    code, err = finish(second)
    assert code == 2, err  # exit 2 wakes the idle Claude Code session
    assert "claim_task with task_id t-wake" in err


@pytest.mark.slow
def test_stop_wait_ends_when_the_user_drives_or_the_cli_is_gone(
        sqlite_server: LiveServer, tmp_path: Path) -> None:
    cli = Cli(sqlite_server, tmp_path)
    cli.run("session-start", source="startup")
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert finish(stop_wait(cli, CLAUDE_PID=str(dead.pid)))[0] == 0
    cli.run("prompt-submit", prompt="hello")
    assert finish(stop_wait(cli))[0] == 0


@pytest.mark.slow
def test_stop_wait_leaves_an_offer_the_stop_hook_named_in_the_same_stop(
        sqlite_server: LiveServer, tmp_path: Path) -> None:
    """Claude Code goes on with the stop hook's block only once every Stop hook has ended:
    the waiter of the Stop whose stop hook named the offer ends at once (else the task sat
    offered for its whole claim timeout, measured); the waiter of a later Stop, the offer
    ignored, waits for it to lapse rather than naming it again."""
    cli = Cli(sqlite_server, tmp_path)
    transcript = tmp_path / "transcript.jsonl"
    transcript.write_text('{"turn": 1}\n')
    cli.run("session-start", source="startup")
    add_task(sqlite_server, "t-named")
    _, out, err = cli.run("stop", "--autopilot", transcript_path=str(transcript))
    assert out is not None and "claim_task with task_id t-named" in out["reason"], err
    code, err = finish(stop_wait(cli, transcript))
    assert code == 0 and "t-named" not in err, err
    with transcript.open("a") as f:
        f.write('{"turn": 2}\n')  # the model went on, ignored the offer and stopped again
    later = stop_wait(cli, transcript)
    state = identity.token_path(tmp_path / ".swarm", cli.session_id).with_suffix(".hook.json")
    try:
        deadline = time.monotonic() + 60
        while json.loads(state.read_text()).get("waiter") != later.pid:
            assert time.monotonic() < deadline and later.poll() is None
            time.sleep(0.05)
        time.sleep(2.0)  # past its first offer read on a quiet machine
        assert later.poll() is None  # waiting for the ignored offer to lapse
    finally:
        later.kill()
        later.communicate(timeout=30)
