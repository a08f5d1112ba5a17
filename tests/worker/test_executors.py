"""The executors on their own: real child processes, real imports, no server.

The claude executor runs tests/worker/fake_claude.py, a stand-in that prints the output
format of `claude -p ... --output-format json`: the real CLI needs an API key.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, cast

import pytest

from unified_swarm.client.types import RateLimit, Task, Usage
from unified_swarm.worker import (
    ClaudeExecutor,
    ExecutorConfigError,
    PythonExecutor,
    ShellExecutor,
    TaskContext,
    TaskFailed,
    make_executor,
)
from unified_swarm.worker.executors.claude import (
    MAX_ARG_PROMPT,
    build_prompt,
    parse_output,
    rate_limit_of,
    usage_of,
)
from unified_swarm.worker.executors.shell import parse_command

HERE = Path(__file__).parent


def make_task(**fields: Any) -> Task:
    task: dict[str, Any] = {
        "id": "t-1", "type": "build", "title": "a task", "input": {"seconds": 0.01},
        "required_capability": "build", "priority": 6, "attempts": 1, "max_attempts": 3,
        "fencing_token": 7,
    }
    task.update(fields)
    return cast(Task, task)


class Progress:
    def __init__(self) -> None:
        self.seen: list[tuple[float, str | None]] = []

    def __call__(self, value: float, message: str | None) -> None:
        self.seen.append((value, message))


def context(task: Task | None = None, progress: Progress | None = None) -> TaskContext:
    return TaskContext(task or make_task(), 7, "session-1", "worker-1",
                       report=progress or Progress())


def shell(script: str, **options: Any) -> ShellExecutor:
    return ShellExecutor(command=("sh", "-c", script), **options)


def pid_alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self").exists():
        return True  # no procfs: a zombie looks alive, and the wait times out
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def wait_dead(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        await asyncio.sleep(0.02)
    return False


# -- shell ---------------------------------------------------------------------------------


async def test_shell_gets_the_task_only_through_environment_and_stdin(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_TOKEN", "operator-secret")
    monkeypatch.setenv("SWARM_INPUT_STALE", "from the parent")
    hostile = f"$(touch {tmp_path}/pwned); `touch {tmp_path}/pwned2` ; rm -rf {tmp_path}"
    task = make_task(title=hostile, input={"seconds": 1.5, "name": "x y", "flag": True,
                                           "nested": {"a": 1}})
    script = ('printf \'{"title": "%s", "stdin": %s, "token": "%s", "stale": "%s", '
              '"env": "%s %s %s %s %s %s"}\' "$SWARM_TASK_TITLE" "$(cat)" '
              '"${SWARM_TOKEN:-none}" "${SWARM_INPUT_STALE:-none}" "$SWARM_TASK_ID" '
              '"$SWARM_TASK_TYPE" "$SWARM_FENCING_TOKEN" "$SWARM_INPUT_SECONDS" '
              '"$SWARM_INPUT_NAME" "$SWARM_INPUT_FLAG"')
    # the title carries no quote or backslash, so printf's output stays valid JSON
    result = await shell(script).run(context(task))
    assert result["title"] == hostile  # data, never code
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    assert result["stdin"] == task["input"]
    assert result["token"] == "none"  # the worker's secrets stay with the worker
    assert result["stale"] == "none"
    assert result["env"] == "t-1 build 7 1.5 x y true"


async def test_shell_task_input_as_json_variable() -> None:
    task = make_task(input={"list": [1, 2], "text": "ünï"})
    out = await shell('printf "%s" "$SWARM_TASK_INPUT"').run(context(task))
    assert out == {"list": [1, 2], "text": "ünï"}


async def test_shell_result_is_json_when_it_parses_else_text() -> None:
    assert await shell('echo "[1, 2]"').run(context()) == [1, 2]
    assert await shell("echo 'plain words'").run(context()) == "plain words"
    assert await shell("echo NaN").run(context()) == "NaN"  # not JSON the server takes
    assert await shell("true").run(context()) is None


async def test_shell_nonzero_exit_fails_with_the_stderr_tail() -> None:
    script = 'for i in $(seq 1 50); do echo "line $i" >&2; done; echo out; exit 3'
    with pytest.raises(TaskFailed) as info:
        await shell(script).run(context())
    message = info.value.message
    assert message.startswith("exit status 3: ") and info.value.retry
    assert "line 50" in message and "line 31" in message and "line 30\n" not in message


async def test_shell_progress_lines_are_reported_not_kept() -> None:
    progress = Progress()
    script = ('echo "SWARM_PROGRESS 0.25 a quarter" >&2; echo "SWARM_PROGRESS 2" >&2; '
              'echo "SWARM_PROGRESS oops" >&2; echo real >&2; exit 1')
    with pytest.raises(TaskFailed) as info:
        await shell(script).run(context(progress=progress))
    assert progress.seen == [(0.25, "a quarter"), (1.0, None)]
    assert "SWARM_PROGRESS oops" in info.value.message and "a quarter" not in info.value.message


async def test_shell_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    script = f'sleep 30 & echo $! > {pidfile}; echo started >&2; wait'
    started = time.monotonic()
    with pytest.raises(TaskFailed) as info:
        await shell(script, timeout=0.5).run(context())
    assert time.monotonic() - started < 5
    message = info.value.message
    assert message.startswith("timed out after 0.5 s") and "started" in message
    assert await wait_dead(int(pidfile.read_text()))


async def test_shell_cancellation_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    running = asyncio.create_task(shell(f"sleep 30 & echo $! > {pidfile}; wait").run(context()))
    deadline = time.monotonic() + 5
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await wait_dead(int(pidfile.read_text()))


async def test_shell_per_type_commands_and_missing_ones() -> None:
    ex = ShellExecutor.from_options({"commands": {"build": "echo 1", "research": ["echo", "2"]}})
    assert await ex.run(context(make_task(type="research"))) == 2
    with pytest.raises(TaskFailed, match="no command for task type 'marketing'"):
        await ex.run(context(make_task(type="marketing")))


async def test_shell_output_cap_keeps_the_child_from_blocking() -> None:
    ex = shell("head -c 300000 /dev/zero | tr '\\0' x", max_output=1000)
    out = await ex.run(context())
    assert out == "x" * 1000


def test_shell_options_are_checked() -> None:
    with pytest.raises(ExecutorConfigError, match="needs a command"):
        make_executor("shell", {})
    with pytest.raises(ExecutorConfigError, match="unknown option"):
        make_executor("shell", {"command": "true", "shell": True})
    with pytest.raises(ExecutorConfigError, match="must be a number"):
        make_executor("shell", {"command": "true", "timeout": "soon"})
    with pytest.raises(ExecutorConfigError, match="unknown executor"):
        make_executor("docker", {})
    assert parse_command("sh -c 'echo \"$X\"'") == ("sh", "-c", 'echo "$X"')


async def test_shell_cannot_start_is_a_failure() -> None:
    ex = ShellExecutor(command=("/nonexistent/binary",))
    with pytest.raises(TaskFailed, match="cannot start"):
        await ex.run(context())


# -- python --------------------------------------------------------------------------------


async def test_python_sync_function_gets_the_task() -> None:
    ex = PythonExecutor.load("tests.worker.funcs:echo")
    out = await ex.run(context(make_task(input={"x": 1})))
    assert out == {"id": "t-1", "input": {"x": 1}, "pid": os.getpid()}


async def test_python_async_function_with_context_reports_progress() -> None:
    progress = Progress()
    out = await PythonExecutor.load("tests.worker.funcs:async_echo").run(
        context(progress=progress))
    assert out == {"id": "t-1", "token": 7, "session": "session-1"}
    assert progress.seen == [(0.5, "halfway")]


async def test_python_exceptions_fail_the_attempt() -> None:
    with pytest.raises(TaskFailed) as info:
        await PythonExecutor.load("tests.worker.funcs:boom").run(context())
    assert info.value.message.startswith("ValueError: bad input for t-1") and info.value.retry
    assert "funcs.py" in info.value.message  # where it was raised
    with pytest.raises(TaskFailed) as refused:
        await PythonExecutor.load("tests.worker.funcs:refuse").run(context())
    assert refused.value.message == "not worth retrying" and not refused.value.retry
    with pytest.raises(TaskFailed, match="is not JSON"):
        await PythonExecutor.load("tests.worker.funcs:not_json").run(context())


async def test_python_timeout_does_not_wait_for_the_thread() -> None:
    ex = PythonExecutor.load("tests.worker.funcs:slow", timeout=0.2)
    started = time.monotonic()
    with pytest.raises(TaskFailed, match=r"timed out after 0\.2 s"):
        await ex.run(context(make_task(input={"seconds": 3})))
    assert time.monotonic() - started < 2


def test_python_targets_are_checked() -> None:
    for target, message in (("tests.worker.funcs", "module:function"),
                            ("tests.worker.nope:f", "cannot import"),
                            ("tests.worker.funcs:missing", "has no"),
                            ("tests.worker.funcs:NOT_CALLABLE", "not callable")):
        with pytest.raises(ExecutorConfigError, match=message):
            make_executor("python", {"function": target})
    with pytest.raises(ExecutorConfigError, match="needs a function"):
        make_executor("python", {})


# -- claude (through the stand-in) ---------------------------------------------------------


@pytest.fixture
def fake_claude(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An executable that runs fake_claude.py with this interpreter (the real CLI needs an
    API key)."""
    binary = tmp_path / "claude"
    binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "fake_claude.py"}" "$@"\n')
    binary.chmod(0o755)
    monkeypatch.setenv("FAKE_CLAUDE_LOG", str(tmp_path / "claude.log"))
    return binary


def claude_runs(binary: Path) -> list[dict[str, Any]]:
    lines = (binary.parent / "claude.log").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_claude_result_text_cost_and_session_id(fake_claude: Path, tmp_path: Path) -> None:
    ex = make_executor("claude", {"binary": str(fake_claude), "model": "sonnet",
                                  "allowed_tools": "Read,Edit", "max_turns": 5,
                                  "cwd": str(tmp_path)})
    task = make_task(title="--dangerously-skip-permissions", input={"prompt": "Write it",
                                                                     "lang": "py"})
    out = await ex.run(context(task))
    assert out["result"].startswith("done: Task t-1 (build): --dangerously-skip-permissions")
    assert out["total_cost_usd"] == 0.0123 and out["usage"]["output_tokens"] == 20
    assert out["num_turns"] == 3 and out["duration_ms"] == 1234
    assert out["subtype"] == "success" and out["model"] == "sonnet"
    (run,) = claude_runs(fake_claude)
    argv = run["argv"]
    assert argv[0] == "-p" and argv[1].startswith("Task t-1")  # the prompt is never an option
    assert "Write it" in argv[1] and '"lang": "py"' in argv[1]
    assert argv[argv.index("--output-format") + 1] == "stream-json" and "--verbose" in argv
    assert out["session_id"] == argv[argv.index("--session-id") + 1]  # one per attempt
    assert out["api_retries"] == 0 and out["terminal_reason"] == "completed"
    assert argv[argv.index("--model") + 1] == "sonnet"
    assert argv[argv.index("--allowedTools") + 1] == "Read,Edit"
    assert argv[argv.index("--max-turns") + 1] == "5"
    assert run["env"]["SWARM_TASK_ID"] == "t-1" and "SWARM_TOKEN" not in run["env"]
    assert Path(run["cwd"]) == tmp_path


async def test_claude_errors_fail_with_cost_and_session(
        fake_claude: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ex = ClaudeExecutor(binary=str(fake_claude))
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "error")
    with pytest.raises(TaskFailed) as info:
        await ex.run(context())
    assert info.value.message.startswith("claude error_max_turns after 3 turn(s) session ")
    assert "cost $0.0123" in info.value.message
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "crash")
    with pytest.raises(TaskFailed, match=r"exit status 2.*printed no JSON.*something broke"):
        await ex.run(context())
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "garbage")
    with pytest.raises(TaskFailed, match="printed no JSON result: this is not JSON"):
        await ex.run(context())


async def test_claude_list_output_and_long_prompts_on_stdin(
        fake_claude: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "list")
    ex = ClaudeExecutor(binary=str(fake_claude))
    long_input = "x" * (MAX_ARG_PROMPT + 10)
    out = await ex.run(context(make_task(input=long_input)))
    assert out["result"].startswith("done: Task t-1")
    (run,) = claude_runs(fake_claude)
    assert run["argv"][:3] == ["-p", "--output-format", "stream-json"]  # no prompt argument
    assert run["stdin"].endswith(long_input)


async def test_claude_timeout_kills_it(fake_claude: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "slow")
    with pytest.raises(TaskFailed, match=r"timed out after 0\.5 s"):
        await ClaudeExecutor(binary=str(fake_claude), timeout=0.5).run(context())


def test_claude_prompt_and_output_parsing() -> None:
    assert build_prompt(make_task(title="", input=None)) == "Task t-1 (build)"
    assert build_prompt(make_task(input="Do it")) == "Task t-1 (build): a task\n\nDo it"
    assert "Input (JSON):\n[\n  1\n]" in build_prompt(make_task(input=[1]))
    assert parse_output("[]") is None and parse_output("{}") is None
    assert parse_output('{"type": "result", "result": "x"}') == {"type": "result",
                                                                 "result": "x"}
    with pytest.raises(ExecutorConfigError, match="not found"):
        ClaudeExecutor(binary="/nonexistent/claude")


async def test_claude_stream_is_read_live_into_progress(fake_claude: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "retry")
    progress = Progress()
    out = await ClaudeExecutor(binary=str(fake_claude), max_turns=4).run(
        context(progress=progress))
    messages = [m or "" for _, m in progress.seen]
    assert any(m.startswith("claude started (claude-fake-1; MCP: swarm connected)")
               for m in messages)
    assert any("waiting on the API: rate_limit 429, retry 2 of 10 in 1 s" in m
               for m in messages)
    assert "Reading the task. [tool Read]" in messages
    assert progress.seen[-1] == (0.5, "Done.")  # 2 of --max-turns 4
    assert out["api_retries"] == 2


async def test_claude_reports_rate_limits_and_what_the_run_spent(
        fake_claude: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "retry")
    progress = Progress()
    limits: list[tuple[str | None, RateLimit]] = []
    spent: list[Usage] = []
    ctx = TaskContext(make_task(), 7, "session-1", "worker-1", report=progress,
                      report_rate_limit=lambda v, m, info: limits.append((m, info)),
                      report_usage=spent.append)
    await ClaudeExecutor(binary=str(fake_claude)).run(ctx)
    assert [info for _, info in limits] == [
        {"attempt": n, "max_retries": 10, "retry_in_s": n / 2, "error_status": 429,
         "error": "rate_limit"} for n in (1, 2)]
    assert limits[1][0] == "waiting on the API: rate_limit 429, retry 2 of 10 in 1 s"
    assert not any("waiting on the API" in (m or "") for _, m in progress.seen)
    # the result event's cost, token counts (only the known ones) and turns
    assert spent == [{"cost_usd": 0.0123, "input_tokens": 10, "output_tokens": 20,
                      "cache_creation_input_tokens": 5, "cache_read_input_tokens": 30,
                      "num_turns": 3}]
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "error")
    with pytest.raises(TaskFailed):
        await ClaudeExecutor(binary=str(fake_claude)).run(ctx)
    assert len(spent) == 2 and spent[1]["cost_usd"] == 0.0123  # a failed run cost too


def test_claude_usage_and_rate_limits_are_clamped_to_what_the_server_takes() -> None:
    assert usage_of({"total_cost_usd": -1, "num_turns": True,
                     "usage": {"input_tokens": 1.0, "output_tokens": -5,
                               "cache_read_input_tokens": "9", "cache_creation_input_tokens": 2}}
                    ) == {"input_tokens": 1, "output_tokens": 0,
                          "cache_creation_input_tokens": 2}
    assert usage_of({"usage": None}) == {}
    assert rate_limit_of({"attempt": -3, "max_retries": 1e9, "retry_delay_ms": 1500,
                          "error_status": 42, "error": "x" * 400}) == {
        "attempt": 0, "max_retries": 10_000, "retry_in_s": 1.5, "error": "x" * 300}


async def test_claude_budget_from_the_task_and_context_in_the_prompt(
        fake_claude: Path) -> None:
    ex = ClaudeExecutor(binary=str(fake_claude), max_budget_usd=2.0)
    task = make_task(input={"prompt": "Fix it", "max_budget_usd": 0.25}, attempts=2,
                     error="tests failed", progress={"value": 0.5, "message": "parser done"},
                     parent_id="t-0", dependencies=["t-a", "t-b"])
    await ex.run(context(task))
    await ex.run(context(make_task()))
    first, second = claude_runs(fake_claude)
    assert first["argv"][first["argv"].index("--max-budget-usd") + 1] == "0.25"
    assert second["argv"][second["argv"].index("--max-budget-usd") + 1] == "2"
    prompt = first["argv"][1]
    assert "max_budget_usd" not in prompt
    for fact in ("attempt 2 of 3", "previous attempt failed: tests failed",
                 "last progress note: parser done", "part of task t-0", "came after: t-a, t-b"):
        assert fact in prompt
    assert first["argv"][first["argv"].index("--session-id") + 1] != \
        second["argv"][second["argv"].index("--session-id") + 1]


async def test_claude_is_stopped_with_sigint_then_sigterm(
        fake_claude: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Giving the task back (drain, preempt) cancels the run: SIGINT ends Claude Code's turn,
    then SIGTERM ends it (exit 143)."""
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "hang")
    signals = tmp_path / "signals"
    monkeypatch.setenv("FAKE_CLAUDE_SIGNALS", str(signals))
    monkeypatch.setattr("unified_swarm.worker.executors.claude.STOP_GRACE", 0.5)
    progress = Progress()
    ex = ClaudeExecutor(binary=str(fake_claude))
    running = asyncio.create_task(ex.run(context(progress=progress)))
    deadline = time.monotonic() + 60
    while not any("Reading the task" in (m or "") for _, m in progress.seen):
        assert time.monotonic() < deadline and not running.done()
        await asyncio.sleep(0.05)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert signals.read_text().split() == ["SIGINT", "SIGTERM"]


async def test_claude_bridge_lends_the_session_through_a_private_file(
        fake_claude: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    swarm = Path(sys.executable).parent / "swarm"
    monkeypatch.setenv("FAKE_CLAUDE_EXPECT_TOKEN", "tok-secret")
    ex = ClaudeExecutor(binary=str(fake_claude), bridge=True, swarm_bin=str(swarm))
    ctx = TaskContext(make_task(), 7, "session-1", "worker-1", report=Progress(),
                      server_url="http://127.0.0.1:1", session_token="tok-secret")
    await ex.run(ctx)
    (run,) = claude_runs(fake_claude)
    bridge = run["mcp"]
    server = bridge["config"]["mcpServers"]["swarm"]
    assert server["command"] == str(swarm) and server["args"] == ["mcp"]
    assert server["alwaysLoad"] is True and server["env"]["SWARM_URL"] == "http://127.0.0.1:1"
    # lent: when the run ends, the bridge must not end the worker's own session
    assert server["env"]["SWARM_MCP_LENT"] == "1"
    assert bridge["token_matches"] and bridge["session_id"] == "session-1"
    assert bridge["mode"] == "0o600" and "--strict-mcp-config" in run["argv"]
    data = await asyncio.to_thread(Path(server["env"]["SWARM_DATA_DIR"]).exists)
    assert not data  # removed after the run
    assert "tok-secret" not in json.dumps({k: run[k] for k in ("argv", "env", "stdin")})
