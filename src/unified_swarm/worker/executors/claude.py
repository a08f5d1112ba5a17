"""`claude`: run Claude Code headless for each task.

    claude -p "<prompt>" --output-format json [--model M] [--allowedTools A,B]
           [--permission-mode P] [--max-turns N] [extra args...]

The prompt is built from the task's title and input (`build_prompt`). It always starts with
"Task ", so it can never be read as an option; a prompt too long for one argument goes to
stdin instead (`claude -p` reads its prompt from stdin when none is given). No shell runs,
and the task's `SWARM_*` variables are set as for the shell executor.

`--output-format json` prints one JSON object when the run ends (or, with `--verbose`, a
list of messages ending with it):

    {"type": "result", "subtype": "success", "is_error": false, "result": "...",
     "session_id": "...", "total_cost_usd": 0.012, "duration_ms": 5400, "num_turns": 3, ...}

A success completes the task with `result`, `session_id`, `total_cost_usd`, `duration_ms`,
`num_turns`, `subtype` (and `usage` and `model` when known); `is_error` or another subtype
(`error_max_turns`, `error_during_execution`) fails the attempt with the text, the cost and
the session id in the error. The real CLI needs an API key; the tests run a stand-in
executable that prints this same format (tests/worker/fake_claude.py).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...client.types import JSON, Task
from .base import ExecutorConfigError, Options, TaskContext, TaskFailed
from .process import Finished, child_environment, run_process, text_of

OPTIONS = frozenset({"binary", "model", "allowed_tools", "permission_mode", "max_turns",
                     "cwd", "timeout", "extra_args", "env"})
#: Linux refuses a single argument longer than 128 KiB (MAX_ARG_STRLEN); stay well below
MAX_ARG_PROMPT = 100_000
DEFAULT_TIMEOUT = 1800.0
KEPT = ("result", "session_id", "total_cost_usd", "duration_ms", "duration_api_ms",
        "num_turns", "subtype", "usage", "model")


def build_prompt(task: Task) -> str:
    """The prompt: the task's id, type and title, then its input. A string input, or an
    object's "prompt" field, is the instruction; anything else is given as JSON."""
    title = task.get("title") or ""
    head = f"Task {task['id']} ({task['type']})" + (f": {title}" if title else "")
    value = task.get("input")
    parts = [head]
    if isinstance(value, str):
        parts.append(value)
    elif isinstance(value, Mapping) and isinstance(value.get("prompt"), str):
        parts.append(value["prompt"])
        rest = {k: v for k, v in value.items() if k != "prompt"}
        if rest:
            parts.append("Details (JSON):\n" + json.dumps(rest, indent=2, ensure_ascii=False))
    elif value is not None:
        parts.append("Input (JSON):\n" + json.dumps(value, indent=2, ensure_ascii=False))
    parts += context_parts(task.get("context"))
    return "\n\n".join(parts)


def context_parts(context: Mapping[str, Any] | None) -> list[str]:
    """The context the server handed with the task, as prompt sections: the results of the
    tasks it depends on, the shared knowledge it names, the notes earlier attempts left."""
    if not context:
        return []
    sections = (("dependencies", "Results of the tasks this one depends on (JSON)"),
                ("knowledge", "Shared knowledge (JSON)"),
                ("notes", "Notes from earlier attempts (JSON)"))
    parts = [f"{title}:\n" + json.dumps(context[key], indent=2, ensure_ascii=False)
             for key, title in sections if context.get(key)]
    if context.get("truncated"):
        parts.append("Some context was cut to fit (JSON):\n"
                     + json.dumps(context["truncated"], ensure_ascii=False))
    return parts


@dataclass(frozen=True, slots=True)
class ClaudeExecutor:
    """See the module docstring."""

    binary: str = "claude"
    model: str | None = None
    allowed_tools: tuple[str, ...] = ()
    permission_mode: str | None = None
    max_turns: int | None = None
    cwd: Path | None = None
    timeout: float | None = DEFAULT_TIMEOUT
    extra_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    kind: str = "claude"

    def __post_init__(self) -> None:
        if self.timeout is not None and self.timeout <= 0:
            raise ExecutorConfigError("timeout must be > 0")
        if self.max_turns is not None and self.max_turns < 1:
            raise ExecutorConfigError("max_turns must be >= 1")
        if shutil.which(self.binary) is None:
            raise ExecutorConfigError(
                f"the claude executor's binary {self.binary!r} was not found; install Claude "
                "Code (npm install -g @anthropic-ai/claude-code) or pass --claude-bin PATH")

    @classmethod
    def from_options(cls, raw: Mapping[str, object]) -> ClaudeExecutor:
        """From config keys: binary (default $SWARM_CLAUDE_BIN or "claude"), model,
        allowed_tools, permission_mode, max_turns, cwd, timeout, extra_args, env."""
        opts = Options("claude", raw, OPTIONS)
        cwd = opts.text("cwd")
        timeout = opts.number("timeout")
        return cls(
            binary=opts.text("binary") or os.environ.get("SWARM_CLAUDE_BIN") or "claude",
            model=opts.text("model"),
            allowed_tools=tuple(opts.strings("allowed_tools")),
            permission_mode=opts.text("permission_mode"),
            max_turns=opts.integer("max_turns"),
            cwd=Path(cwd) if cwd else None,
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
            extra_args=tuple(opts.strings("extra_args")),
            env={k: str(v) for k, v in opts.mapping("env").items()},
        )

    def describe(self) -> str:
        bits = [self.binary, "-p", "--output-format json"]
        if self.model:
            bits.append(f"--model {self.model}")
        if self.allowed_tools:
            bits.append(f"--allowedTools {','.join(self.allowed_tools)}")
        return "claude: " + " ".join(bits)

    def argv(self, prompt: str | None) -> list[str]:
        argv = [self.binary, "-p"] + ([prompt] if prompt is not None else [])
        argv += ["--output-format", "json"]
        if self.model:
            argv += ["--model", self.model]
        if self.allowed_tools:
            argv += ["--allowedTools", ",".join(self.allowed_tools)]
        if self.permission_mode:
            argv += ["--permission-mode", self.permission_mode]
        if self.max_turns is not None:
            argv += ["--max-turns", str(self.max_turns)]
        return argv + list(self.extra_args)

    async def run(self, ctx: TaskContext) -> JSON:
        prompt = build_prompt(ctx.task)
        as_arg = len(prompt.encode()) <= MAX_ARG_PROMPT
        ctx.progress(0.0, f"claude running ({self.model or 'default model'})")
        done = await run_process(
            self.argv(prompt if as_arg else None),
            stdin=b"" if as_arg else prompt.encode(),
            env=child_environment(os.environ, self.env, ctx.environment()),
            cwd=self.cwd, time_limit=self.timeout, max_output=4 * 1024 * 1024,
            progress=ctx.progress)
        return self.outcome(done)

    def outcome(self, done: Finished) -> JSON:
        """The task's result from a finished run, or TaskFailed."""
        report = parse_output(text_of(done.stdout))
        if report is None:
            what = done.stderr_tail or text_of(done.stdout)[-2000:].strip() or "no output"
            raise TaskFailed(f"claude ({done.describe_exit()}) printed no JSON result: {what}")
        if report.get("is_error") or report.get("subtype", "success") != "success":
            raise TaskFailed(_error_text(report, done))
        kept = {k: report[k] for k in KEPT if k in report}
        if self.model and "model" not in kept:
            kept["model"] = self.model
        return kept


def parse_output(text: str) -> dict[str, Any] | None:
    """The result message of `--output-format json`: the object itself, or the last
    `"type": "result"` item of a list (`--verbose`); None when there is none."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, list):
        results = [m for m in data if isinstance(m, dict) and m.get("type") == "result"]
        data = results[-1] if results else None
    if not isinstance(data, dict):
        return None
    return data if data.get("type") == "result" or "result" in data else None


def _error_text(report: Mapping[str, Any], done: Finished) -> str:
    subtype = report.get("subtype") or "error"
    bits = [f"claude {subtype}"]
    if report.get("num_turns") is not None:
        bits.append(f"after {report['num_turns']} turn(s)")
    if report.get("session_id"):
        bits.append(f"session {report['session_id']}")
    if report.get("total_cost_usd") is not None:
        bits.append(f"cost ${report['total_cost_usd']}")
    text = str(report.get("result") or done.stderr_tail or "").strip()
    return " ".join(bits) + (f": {text}" if text else "")
