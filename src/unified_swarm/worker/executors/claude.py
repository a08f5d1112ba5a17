"""`claude`: run Claude Code headless for each task, reading its event stream live.

    claude -p "<prompt>" --output-format stream-json --verbose --session-id <uuid>
           [--model M] [--allowedTools A,B] [--permission-mode P] [--max-turns N]
           [--max-budget-usd X] [--mcp-config FILE --strict-mcp-config] [extra args...]

The prompt is built from the task (`build_prompt`): its id, type and title, its input, and
what the swarm knows that helps (the attempt, the previous failure, the last progress note,
the parent and the dependencies). It always starts with "Task ", so it can never be read as
an option; a prompt too long for one argument goes to stdin instead. No shell runs, and the
task's `SWARM_*` variables are set as for the shell executor.

`--output-format stream-json --verbose` prints one JSON event a line, read as they come
(`ClaudeStream`): `system/init` (model, tools, MCP servers), `assistant` messages (their
text and tool calls become progress messages), `system/api_retry` (a rate limit or an
overload: progress with a `rate_limit`, so the worker's session shows `rate_limited` until
the next plain progress; counted in `api_retries`), and the final `result`:

    {"type": "result", "subtype": "success", "is_error": false, "result": "...",
     "session_id": "...", "total_cost_usd": 0.012, "usage": {...}, "num_turns": 3, ...}

A success completes the task with `result`, `session_id`, `total_cost_usd`, `usage`,
`num_turns`, `duration_ms`, ... (see KEPT) and `api_retries`; `is_error` or another subtype
(`error_max_turns`, `error_max_budget_usd`, `error_during_execution`) fails the attempt with
the text, the cost and the session id in the error. Either way what the run spent
(`total_cost_usd`, the token counts of `usage`, `num_turns`: `usage_of`) goes to the worker,
which sends it with the outcome: the server keeps it on the attempt and sums it per
session, task type and swarm. Each attempt runs under its own
`--session-id` (a fresh UUID, kept in the result), so `claude --resume` finds it.

`--max-budget-usd` comes from the task's input (`{"max_budget_usd": 0.5, ...}`) or the
`max_budget_usd` option. With `bridge` on, the run gets the swarm's MCP bridge (`swarm mcp`
through `--mcp-config`) acting as this worker's session (a 0600 token file named after the
attempt's session id, in a private directory removed after the run), so the model can report
progress, read and write knowledge and add tasks.

When the worker gives the task back (drain, preemption, a second signal) the run is stopped
with SIGINT (Claude Code ends its turn), then SIGTERM, then SIGKILL, each after a grace.
The real CLI needs an API key; the tests run a stand-in executable that prints the same
stream (tests/worker/fake_claude.py), and tests/agents drives the real one against a fake
Messages API.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...agents import identity
from ...client.types import JSON, RateLimit, Task, Usage
from .base import (
    ExecutorConfigError,
    Options,
    ProgressFn,
    RateLimitFn,
    TaskContext,
    TaskFailed,
)
from .process import Finished, child_environment, run_process, text_of

OPTIONS = frozenset({"binary", "model", "allowed_tools", "permission_mode", "max_turns",
                     "max_budget_usd", "bridge", "swarm_bin", "cwd", "timeout", "extra_args",
                     "env"})
#: Linux refuses a single argument longer than 128 KiB (MAX_ARG_STRLEN); stay well below
MAX_ARG_PROMPT = 100_000
DEFAULT_TIMEOUT = 1800.0
KEPT = ("result", "session_id", "total_cost_usd", "duration_ms", "duration_api_ms",
        "num_turns", "subtype", "usage", "model", "terminal_reason")
#: SIGINT ends Claude Code's turn; SIGTERM ends the process (exit 143)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_GRACE = 5.0
MESSAGE_CHARS = 300


def build_prompt(task: Task) -> str:
    """The prompt: the task's id, type and title, then its input (a string input, or an
    object's "prompt" field, is the instruction; anything else is given as JSON), then the
    task's context when it has some."""
    title = task.get("title") or ""
    head = f"Task {task['id']} ({task['type']})" + (f": {title}" if title else "")
    value = task.get("input")
    parts = [head]
    if isinstance(value, str):
        parts.append(value)
    elif isinstance(value, Mapping) and isinstance(value.get("prompt"), str):
        parts.append(value["prompt"])
        rest = {k: v for k, v in value.items() if k not in ("prompt", "max_budget_usd")}
        if rest:
            parts.append("Details (JSON):\n" + json.dumps(rest, indent=2, ensure_ascii=False))
    elif value is not None:
        parts.append("Input (JSON):\n" + json.dumps(value, indent=2, ensure_ascii=False))
    facts = task_context(task)
    if facts:
        parts.append("About this task:\n" + "\n".join(f"- {line}" for line in facts))
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


def task_context(task: Task) -> list[str]:
    """What the swarm knows about the task beyond its input, as short facts."""
    lines: list[str] = []
    attempt, most = task.get("attempts") or 0, task.get("max_attempts") or 0
    if attempt > 1:
        lines.append(f"this is attempt {attempt} of {most}")
        if task.get("error"):
            lines.append(f"the previous attempt failed: {task['error']}")
    note = (task.get("progress") or {}).get("message") if isinstance(
        task.get("progress"), Mapping) else None
    if note and attempt > 1:
        lines.append(f"the last progress note: {note}")
    if task.get("parent_id"):
        lines.append(f"it is part of task {task['parent_id']}")
    if task.get("dependencies"):
        lines.append("it came after: " + ", ".join(task["dependencies"]))
    if task.get("critical"):
        lines.append("it is on the critical path")
    return lines


@dataclass(slots=True)
class ClaudeStream:
    """The live reading of one run's stream-json: progress as it goes, the result at the
    end."""

    progress: ProgressFn
    max_turns: int | None = None
    #: how a rate-limit retry is reported (None: as plain progress)
    rate_limited: RateLimitFn | None = None
    model: str | None = None
    turns: int = 0
    retries: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    unparsed: int = 0

    def feed(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        try:
            event = json.loads(line)
        except ValueError:
            self.unparsed += 1
            return
        if isinstance(event, dict):
            self._event(event)
        elif isinstance(event, list):  # `--output-format json --verbose`: one list at the end
            for item in event:
                if isinstance(item, dict):
                    self._event(item)

    def _event(self, event: dict[str, Any]) -> None:
        kind, subtype = event.get("type"), event.get("subtype")
        if kind == "result" or (kind is None and "result" in event):
            self.result = event
        elif kind == "system" and subtype == "init":
            self.model = event.get("model") or self.model
            servers = ", ".join(f"{s.get('name')} {s.get('status')}"
                                for s in event.get("mcp_servers") or [] if isinstance(s, dict))
            self._say(f"claude started ({self.model or 'default model'}"
                      + (f"; MCP: {servers}" if servers else "") + ")")
        elif kind == "system" and subtype == "api_retry":
            self.retries.append({k: event.get(k) for k in (
                "attempt", "max_retries", "retry_delay_ms", "error_status", "error")})
            info = rate_limit_of(event)
            message = (f"waiting on the API: {info.get('error') or 'error'} "
                       f"{info.get('error_status') or ''}, retry {info.get('attempt')} of "
                       f"{info.get('max_retries')} in {info.get('retry_in_s', 0):.0f} s"
                       ).replace("  ", " ")[:MESSAGE_CHARS]
            if self.rate_limited is None:
                self._say(message)
            else:  # the session shows it until the next plain progress
                self.rate_limited(self.fraction(), message, info)
        elif kind == "assistant":
            self.turns += 1
            said = _said(event.get("message"))
            if said:
                self._say(said)

    def _say(self, message: str) -> None:
        self.progress(self.fraction(), message[:MESSAGE_CHARS])

    def fraction(self) -> float:
        """How far along: turns against --max-turns, else a curve that never reaches 1."""
        if self.max_turns:
            return min(0.95, self.turns / self.max_turns)
        return round(min(0.95, self.turns / (self.turns + 10)), 3)


def _count(value: Any, high: int) -> int | None:
    """A whole number within 0..high, or None (the stream is another program's output:
    what it says is clamped to what the server takes, never trusted to fit)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return int(min(max(value, 0), high))


def rate_limit_of(event: Mapping[str, Any]) -> RateLimit:
    """A `system/api_retry` event as a progress report's `rate_limit`."""
    info: RateLimit = {}
    for key in ("attempt", "max_retries"):
        n = _count(event.get(key), 10_000)
        if n is not None:
            info[key] = n
    delay = _count(event.get("retry_delay_ms"), 86_400_000)
    if delay is not None:
        info["retry_in_s"] = delay / 1000
    status = _count(event.get("error_status"), 599)
    if status is not None and status >= 100:
        info["error_status"] = status
    if event.get("error") is not None:
        info["error"] = str(event["error"])[:300]
    return info


def usage_of(report: Mapping[str, Any]) -> Usage:
    """What a run spent, from its `result` event: `total_cost_usd`, the token counts of
    its `usage`, and `num_turns`."""
    given = report.get("usage")
    tokens: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    spent: Usage = {}
    cost = report.get("total_cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and 0 <= cost < 1e6:
        spent["cost_usd"] = float(cost)
    for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                "cache_read_input_tokens"):
        n = _count(tokens.get(key), 10**12)
        if n is not None:
            spent[key] = n
    turns = _count(report.get("num_turns"), 10**12)
    if turns is not None:
        spent["num_turns"] = turns
    return spent


def _said(message: Any) -> str:
    """An assistant message in a line: its text, or the tools it calls."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content.strip()
    bits: list[str] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and str(block.get("text", "")).strip():
            bits.append(str(block["text"]).strip())
        elif block.get("type") == "tool_use":
            bits.append(f"[tool {block.get('name')}]")
    return " ".join(bits)


@dataclass(frozen=True, slots=True)
class ClaudeExecutor:
    """See the module docstring."""

    binary: str = "claude"
    model: str | None = None
    allowed_tools: tuple[str, ...] = ()
    permission_mode: str | None = None
    max_turns: int | None = None
    max_budget_usd: float | None = None
    bridge: bool = False
    swarm_bin: str | None = None
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
        if self.max_budget_usd is not None and not self.max_budget_usd > 0:
            raise ExecutorConfigError("max_budget_usd must be > 0")
        if shutil.which(self.binary) is None:
            raise ExecutorConfigError(
                f"the claude executor's binary {self.binary!r} was not found; install Claude "
                "Code (npm install -g @anthropic-ai/claude-code) or pass --claude-bin PATH")
        if self.bridge and not self.swarm_command():
            raise ExecutorConfigError("bridge needs the `swarm` command (for `swarm mcp`); "
                                      "set swarm_bin")

    @classmethod
    def from_options(cls, raw: Mapping[str, object]) -> ClaudeExecutor:
        """From config keys: binary (default $SWARM_CLAUDE_BIN or "claude"), model,
        allowed_tools, permission_mode, max_turns, max_budget_usd, bridge, swarm_bin, cwd,
        timeout, extra_args, env."""
        opts = Options("claude", raw, OPTIONS)
        cwd = opts.text("cwd")
        timeout = opts.number("timeout")
        bridge = raw.get("bridge", False)
        if not isinstance(bridge, bool):
            raise ExecutorConfigError("claude: bridge must be true or false")
        return cls(
            binary=opts.text("binary") or os.environ.get("SWARM_CLAUDE_BIN") or "claude",
            model=opts.text("model"),
            allowed_tools=tuple(opts.strings("allowed_tools")),
            permission_mode=opts.text("permission_mode"),
            max_turns=opts.integer("max_turns"),
            max_budget_usd=opts.number("max_budget_usd"),
            bridge=bridge,
            swarm_bin=opts.text("swarm_bin"),
            cwd=Path(cwd) if cwd else None,
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
            extra_args=tuple(opts.strings("extra_args")),
            env={k: str(v) for k, v in opts.mapping("env").items()},
        )

    def swarm_command(self) -> str | None:
        return self.swarm_bin or shutil.which("swarm")

    def describe(self) -> str:
        bits = [self.binary, "-p", "--output-format stream-json"]
        if self.model:
            bits.append(f"--model {self.model}")
        if self.allowed_tools:
            bits.append(f"--allowedTools {','.join(self.allowed_tools)}")
        if self.bridge:
            bits.append("--mcp-config (swarm mcp)")
        return "claude: " + " ".join(bits)

    def budget_for(self, task: Task) -> float | None:
        """The task's own `max_budget_usd` (in its input) wins over the executor's."""
        value = task.get("input")
        if isinstance(value, Mapping):
            own = value.get("max_budget_usd")
            if isinstance(own, int | float) and not isinstance(own, bool) and own > 0:
                return float(own)
        return self.max_budget_usd

    def argv(self, prompt: str | None, *, session_id: str | None = None,
             budget: float | None = None, mcp_config: Path | None = None) -> list[str]:
        argv = [self.binary, "-p"] + ([prompt] if prompt is not None else [])
        argv += ["--output-format", "stream-json", "--verbose"]
        if session_id:
            argv += ["--session-id", session_id]
        if self.model:
            argv += ["--model", self.model]
        if self.allowed_tools:
            argv += ["--allowedTools", ",".join(self.allowed_tools)]
        if self.permission_mode:
            argv += ["--permission-mode", self.permission_mode]
        if self.max_turns is not None:
            argv += ["--max-turns", str(self.max_turns)]
        if budget is not None:
            argv += ["--max-budget-usd", f"{budget:g}"]
        if mcp_config is not None:
            argv += ["--mcp-config", str(mcp_config), "--strict-mcp-config"]
        return argv + list(self.extra_args)

    async def run(self, ctx: TaskContext) -> JSON:
        prompt = build_prompt(ctx.task)
        as_arg = len(prompt.encode()) <= MAX_ARG_PROMPT
        attempt_session = str(uuid.uuid4())
        stream = ClaudeStream(ctx.progress, max_turns=self.max_turns, model=self.model,
                              rate_limited=ctx.rate_limited)
        ctx.progress(0.0, f"claude running ({self.model or 'default model'}, session "
                          f"{attempt_session})")
        with tempfile.TemporaryDirectory(prefix="swarm-claude-") as private:
            mcp_config = self._attach_bridge(ctx, attempt_session, Path(private))
            done = await run_process(
                self.argv(prompt if as_arg else None, session_id=attempt_session,
                          budget=self.budget_for(ctx.task), mcp_config=mcp_config),
                stdin=b"" if as_arg else prompt.encode(),
                env=child_environment(os.environ, self.env, ctx.environment()),
                cwd=self.cwd, time_limit=self.timeout, max_output=4 * 1024 * 1024,
                progress=ctx.progress, on_line=stream.feed, stop_signals=STOP_SIGNALS,
                kill_grace=STOP_GRACE)
        if stream.result is not None:  # a failed run cost money too: the worker sends it
            ctx.spent(usage_of(stream.result))
        return self.outcome(done, stream, attempt_session)

    def _attach_bridge(self, ctx: TaskContext, attempt_session: str,
                       private: Path) -> Path | None:
        """With `bridge`: the MCP config naming `swarm mcp`, and the token file it reads to
        act as this worker's session (CLAUDE_CODE_SESSION_ID is the attempt's id)."""
        swarm = self.swarm_command()
        if not (self.bridge and swarm and ctx.session_token and ctx.server_url):
            return None
        data = private / "data"
        identity.write_token(data, attempt_session, ctx.session_token,
                             session_id=ctx.session_id, url=ctx.server_url)
        config = {"mcpServers": {"swarm": {
            "type": "stdio", "command": swarm, "args": ["mcp"], "alwaysLoad": True,
            # lent: the bridge must not leave (end the worker's session) when the run ends
            "env": {"SWARM_URL": ctx.server_url, "SWARM_DATA_DIR": str(data),
                    "SWARM_MCP_LENT": "1"}}}}
        path = private / "mcp.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(config, f)
        return path

    def outcome(self, done: Finished, stream: ClaudeStream | None = None,
                attempt_session: str | None = None) -> JSON:
        """The task's result from a finished run, or TaskFailed."""
        if stream is None:
            stream = ClaudeStream(lambda value, message: None)
            for line in text_of(done.stdout).splitlines():
                stream.feed(line)
        report = stream.result
        if report is None:
            what = done.stderr_tail or text_of(done.stdout)[-2000:].strip() or "no output"
            raise TaskFailed(f"claude ({done.describe_exit()}) printed no JSON result: {what}")
        if report.get("is_error") or report.get("subtype", "success") != "success":
            raise TaskFailed(_error_text(report, done))
        kept = {k: report[k] for k in KEPT if k in report}
        if "model" not in kept and (stream.model or self.model):
            kept["model"] = stream.model or self.model
        if attempt_session and "session_id" not in kept:
            kept["session_id"] = attempt_session
        kept["api_retries"] = len(stream.retries)
        return kept


def parse_output(text: str) -> dict[str, Any] | None:
    """The result event of a run's output (stream-json lines, or the object or list of
    `--output-format json`); None when there is none."""
    stream = ClaudeStream(lambda value, message: None)
    for line in text.splitlines() or [text]:
        stream.feed(line)
    if stream.result is None and text.strip().startswith("["):
        stream.feed(text.replace("\n", " "))
    return stream.result


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
