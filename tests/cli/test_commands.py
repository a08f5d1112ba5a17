"""`swarm` commands run in-process (`main([...])`) against a real server."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer
from unified_swarm.cli import COMMANDS, main
from unified_swarm.cli.common import Exit
from unified_swarm.client import Client
from unified_swarm.procs import free_port


class Swarm:
    """Runs `swarm --url U --token T ...` and captures what it printed."""

    def __init__(self, server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
        self.server, self.capsys = server, capsys

    def __call__(self, *argv: str, token: str | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--url", self.server.url, "--token", token or self.server.token, *argv])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str) -> Any:
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture(autouse=True)
def _no_swarm_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SWARM_URL", "SWARM_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SWARM_DATA_DIR", str(tmp_path / "no-data-here"))
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: no folded cells to search through


@pytest.fixture
def swarm(sqlite_server: LiveServer, capsys: pytest.CaptureFixture[str]) -> Swarm:
    return Swarm(sqlite_server, capsys)


def test_task_add_list_show_cancel(swarm: Swarm) -> None:
    added = swarm.json("task", "add", "--type", "build", "--id", "a", "--title", "first",
                       "--input", '{"prompt": "hi"}', "--priority", "7", "--max-attempts", "2")
    task = added["tasks"][0]
    assert (task["id"], task["priority"], task["input"], task["max_attempts"]) == (
        "a", 7, {"prompt": "hi"}, 2)
    dep = swarm.json("task", "add", "--type", "research", "--id", "b", "--depends-on", "a",
                     "--capability", "build", "--critical")["tasks"][0]
    assert (dep["status"], dep["dependencies"], dep["required_capability"]) == (
        "pending", ["a"], "build")
    assert dep["critical"] is True
    listed = swarm.json("task", "list")
    assert [t["id"] for t in listed["tasks"]] == ["a", "b"] and listed["next_cursor"] is None
    assert [t["id"] for t in swarm.json("task", "list", "--status", "pending")["tasks"]] == ["b"]
    page = swarm.json("task", "list", "--limit", "1")
    assert len(page["tasks"]) == 1 and page["next_cursor"]
    rest = swarm.json("task", "list", "--limit", "1", "--cursor", page["next_cursor"])
    assert [t["id"] for t in rest["tasks"]] == ["b"]
    assert len(swarm.json("task", "list", "--limit", "1", "--all")["tasks"]) == 2
    shown = swarm.json("task", "show", "a")
    assert shown["task"]["title"] == "first" and shown["history"] == []
    cancelled = swarm.json("task", "cancel", "a", "--reason", "not needed")
    assert cancelled["task"]["status"] == "cancelled"
    assert swarm.json("task", "show", "b")["task"]["status"] == "blocked"


def test_task_add_batch_from_a_file(swarm: Swarm, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    batch = tmp_path / "tasks.json"
    batch.write_text(json.dumps({"tasks": [
        {"id": "x", "type": "build"}, {"id": "y", "type": "build", "dependencies": ["x"]}]}))
    added = swarm.json("task", "add", "--file", str(batch))
    assert [(t["id"], t["status"]) for t in added["tasks"]] == [("x", "ready"), ("y", "pending")]
    monkeypatch.setattr("sys.stdin", io.StringIO('[{"id": "z", "type": "research"}]'))
    assert [t["id"] for t in swarm.json("task", "add", "--file", "-")["tasks"]] == ["z"]
    cycle = tmp_path / "cycle.json"
    cycle.write_text(json.dumps([{"id": "p", "type": "build", "dependencies": ["q"]},
                                 {"id": "q", "type": "build", "dependencies": ["p"]}]))
    code, _, err = swarm("task", "add", "--file", str(cycle))
    assert code == Exit.USAGE and "dependency_cycle" in err
    code, _, err = swarm("task", "add", "--file", str(batch), "--type", "build")
    assert code == Exit.USAGE and "--type" in err
    code, _, err = swarm("task", "add", "--file", str(tmp_path / "missing.json"))
    assert code == Exit.USAGE and "cannot read" in err


def test_task_show_has_result_error_and_each_attempt(swarm: Swarm) -> None:
    with Client(swarm.server.url, swarm.server.token) as op:
        me = op.with_token(op.register(["build"], id="w1")["token"])
        op.add_task("build", id="job", title="compile [all]")
        first = me.claim("job")["lease"]
        me.fail("job", first["fencing_token"], "compiler crashed", retry=True)
        second = me.claim("job")["lease"]
        me.complete("job", second["fencing_token"], {"binary": "app.bin"})
    shown = swarm.json("task", "show", "job")
    assert [(h["attempt"], h["outcome"]) for h in shown["history"]] == [
        (1, "failed"), (2, "completed")]
    code, out, _ = swarm("task", "show", "job")
    assert code == 0
    assert "compile [all]" in out and "completed" in out
    assert '"binary": "app.bin"' in out  # the result
    assert "compiler crashed" in out  # the failed attempt's error
    assert "attempts" in out and "failed" in out and "w1" in out


def test_human_output_is_tables(swarm: Swarm) -> None:
    swarm("task", "add", "--type", "build", "--id", "t1", "--title", "[bold]x[/bold]")
    code, out, _ = swarm("task", "list")
    assert code == 0 and "t1" in out and "ready" in out and "[bold]x[/bold]" in out
    code, out, _ = swarm("status")
    assert code == 0 and "tasks ready" in out and "utilization" in out
    with Client(swarm.server.url, swarm.server.token) as op:
        op.register(["build", "research"], id="w7")
    code, out, _ = swarm("session", "list")
    assert code == 0 and "w7" in out and "build,research" in out
    code, out, _ = swarm("session", "show", "w7")
    assert code == 0 and "idle" in out


def test_sessions_and_status_as_json(swarm: Swarm) -> None:
    with Client(swarm.server.url, swarm.server.token) as op:
        op.register(["build"], id="w1")
        op.register(["research"], id="w2")
    sessions = swarm.json("session", "list")["sessions"]
    assert sorted(s["id"] for s in sessions) == ["w1", "w2"]
    assert swarm.json("session", "list", "--status", "offline")["sessions"] == []
    assert swarm.json("session", "show", "w2")["session"]["capabilities"] == ["research"]
    assert swarm.json("session", "drain", "w1")["session"]["status"] == "draining"
    status = swarm.json("status")
    assert status["total_sessions"] == 2 and status["tasks_completed"] == 0


def test_session_show_says_what_it_spent_and_whether_it_waits_on_the_api(
        swarm: Swarm) -> None:
    with Client(swarm.server.url, swarm.server.token) as op:
        me = op.with_token(op.register(["build"], id="w1")["token"])
        code, out, _ = swarm("session", "show", "w1")
        assert code == 0 and "spent" in out and "rate limited" in out
        op.add_task("build", id="a")
        got = me.request_work()
        assert got is not None
        me.progress("a", got["lease"]["fencing_token"], 0.5, "waiting",
                    rate_limit={"attempt": 1, "retry_in_s": 3, "error_status": 429,
                                "error": "rate_limit"})
        code, out, _ = swarm("session", "show", "w1")
        assert code == 0 and "yes, since" in out and "rate_limit 429" in out
        me.complete("a", got["lease"]["fencing_token"], "ok",
                    usage={"cost_usd": 0.125, "input_tokens": 1500, "output_tokens": 20,
                           "num_turns": 2})
    code, out, _ = swarm("session", "show", "w1")
    assert code == 0 and "$0.1250, 1,500 in / 20 out tokens" in out
    assert "2 turns over 1 attempt(s)" in out
    (line,) = [x for x in out.splitlines() if "rate limited" in x]
    assert line.replace("│", " ").split()[-1] == "no"
    shown = swarm.json("session", "show", "w1")["session"]
    assert shown["usage"]["cost_usd"] == 0.125 and shown["rate_limited"] is None
    assert swarm.json("status")["usage"]["input_tokens"] == 1500


def test_knowledge_get_put_list_delete(swarm: Swarm, monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = swarm.json("knowledge", "put", "design/api", '{"style": "rest"}', "--tag", "api",
                    "--tag", "v1", "--expected-version", "0")["entry"]
    assert (v1["version"], v1["tags"], v1["content"]) == (1, ["api", "v1"], {"style": "rest"})
    code, _, err = swarm("knowledge", "put", "design/api", '"x"', "--expected-version", "0")
    assert code == Exit.CONFLICT and "stale_version" in err and err.count("\n") == 1
    monkeypatch.setattr("sys.stdin", io.StringIO('{"style": "rpc"}'))
    assert swarm.json("knowledge", "put", "design/api", "-")["entry"]["version"] == 2
    assert swarm.json("knowledge", "get", "design/api")["entry"]["content"] == {"style": "rpc"}
    old = swarm.json("knowledge", "get", "design/api", "--version", "1")["entry"]
    assert old["content"] == {"style": "rest"}
    code, out, _ = swarm("knowledge", "get", "design/api")
    assert code == 0 and "version 2" in out and '"style": "rpc"' in out
    swarm.json("knowledge", "put", "notes", '"plain"', "--tag", "misc")
    assert [e["topic"] for e in swarm.json("knowledge", "list", "--tag", "misc")["entries"]] == [
        "notes"]
    code, out, _ = swarm("knowledge", "list")
    assert code == 0 and "design/api" in out and "notes" in out
    assert swarm.json("knowledge", "delete", "notes")["entry"]["deleted"] is True
    code, _, err = swarm("knowledge", "put", "bad", "{not json")
    assert code == Exit.USAGE and "not valid JSON" in err


def test_exit_codes(swarm: Swarm) -> None:
    swarm("task", "add", "--type", "build", "--id", "dup")
    cases: list[tuple[tuple[str, ...], Exit, str]] = [
        (("task", "show", "nope"), Exit.NOT_FOUND, "not_found"),
        (("knowledge", "get", "nope"), Exit.NOT_FOUND, "not_found"),
        (("task", "add", "--type", "build", "--id", "dup"), Exit.CONFLICT, "already_exists"),
        (("task", "add", "--type", "build", "--priority", "11"), Exit.USAGE,
         "validation_error"),
        (("task", "add", "--type", "build", "--input", "{oops"), Exit.USAGE, "--input"),
        (("task", "add", "--title", "no type"), Exit.USAGE, "--type"),
        (("task", "add", "--type", "build", "--depends-on", "ghost"), Exit.USAGE,
         "unknown_dependency"),
        (("task", "list", "--limit", "0"), Exit.USAGE, "--limit"),
        (("task", "frobnicate"), Exit.USAGE, "invalid choice"),
        (("status", "--bogus"), Exit.USAGE, "unrecognized"),
    ]
    for argv, expected, words in cases:
        code, out, err = swarm(*argv)
        assert (code, out) == (expected, ""), (argv, code, out, err)
        assert words in err, (argv, err)
    code, _, err = swarm("status", token="wrong-token")
    assert code == Exit.AUTH and "unauthorized" in err


def test_unreachable_server_is_exit_5(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--url", f"http://127.0.0.1:{free_port()}", "--token", "t", "status"])
    err = capsys.readouterr().err
    assert code == Exit.UNAVAILABLE and err.startswith("swarm: error: unavailable")
    assert err.count("\n") == 1


def test_help_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS) and "exit codes" in out
    assert main([]) == Exit.USAGE
    assert main(["task", "add", "--help"]) == 0
    assert "--depends-on" in capsys.readouterr().out
    assert main(["--url", "ftp://x", "--token", "t", "status"]) == Exit.USAGE


def test_options_go_before_or_after_the_command(sqlite_server: LiveServer,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    url, token = sqlite_server.url, sqlite_server.token
    assert main(["task", "list", "--url", url, "--token", token, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"] == []
    assert main(["--json", "--url", url, "status", "--token", token]) == 0
    assert json.loads(capsys.readouterr().out)["total_sessions"] == 0


def test_token_comes_from_the_environment_or_the_data_dir(
        sqlite_server: LiveServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SWARM_URL", sqlite_server.url)
    assert main(["status"]) == Exit.AUTH  # none anywhere: said before any request
    assert "no operator token" in capsys.readouterr().err
    data = tmp_path / "data"
    data.mkdir()
    (data / "token").write_text(sqlite_server.token + "\n")
    monkeypatch.setenv("SWARM_DATA_DIR", str(data))
    assert main(["status", "--json"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("SWARM_TOKEN", "from-env-and-wrong")
    assert main(["status"]) == Exit.AUTH  # SWARM_TOKEN wins over the file


def test_commands_are_registered_modules() -> None:
    import importlib

    assert set(COMMANDS) >= {"server", "task", "session", "status", "knowledge"}
    for module_name in COMMANDS.values():
        module = importlib.import_module(module_name)
        assert callable(module.register) and isinstance(module.HELP, str)


def test_task_split_as_the_holder(swarm: Swarm, tmp_path: Path) -> None:
    swarm.json("task", "add", "--type", "build", "--id", "big", "--context-topic", "style")
    with Client(swarm.server.url, swarm.server.token) as op:
        me = op.with_token(op.register([], id="w1")["token"])
        token = me.claim("big")["lease"]["fencing_token"]
        session_token = me.token
    subs = tmp_path / "subs.json"
    subs.write_text(json.dumps([{"id": "s1", "type": "build"}, {"id": "s2", "type": "build",
                                                                 "dependencies": ["s1"]}]))
    code, out, err = swarm("task", "split", "big", "--fencing-token", str(token), "--file",
                           str(subs), "--merge", "task", "--merge-type", "build",
                           "--merge-id", "m", token=session_token)
    assert code == 0, err
    assert "big is waiting" in out and "s2" in out and " m " in out
    code, _, err = swarm("task", "split", "big", "--fencing-token", str(token), "--file",
                         str(subs), "--merge-type", "build", token=session_token)
    assert code != 0 and "--merge task" in err
    shown = swarm.json("task", "show", "big")["task"]
    assert shown["status"] == "waiting" and shown["context_topics"] == ["style"]
