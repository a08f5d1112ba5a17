"""Every executor hands the task's context on: shell in `SWARM_TASK_CONTEXT` (and stdin with
stdin=task), python as an argument, claude in the prompt. Real child processes, no server."""

from __future__ import annotations

import json
from typing import Any

from unified_swarm.worker import PythonExecutor, ShellExecutor
from unified_swarm.worker.executors.base import MAX_ENV_CONTEXT, context_variable
from unified_swarm.worker.executors.claude import build_prompt

from .test_executors import context, make_task

CTX: dict[str, Any] = {"dependencies": {"dep-1": {"built": "lib.so"}},
                       "knowledge": {"style": {"indent": 4}},
                       "notes": [{"kind": "release", "text": "use clang"}]}


async def test_shell_reads_the_context_from_its_environment_and_stdin() -> None:
    task = make_task(context=CTX)
    env_only = ShellExecutor(command=("sh", "-c", 'printf "%s" "$SWARM_TASK_CONTEXT"'))
    assert await env_only.run(context(task)) == CTX
    whole = ShellExecutor.from_options({"command": ["sh", "-c", "cat"], "stdin": "task"})
    got = await whole.run(context(task))
    assert got["context"] == CTX and got["input"] == task["input"]


def test_a_context_too_big_for_the_environment_says_so() -> None:
    big = {"dependencies": {"d": "x" * (MAX_ENV_CONTEXT + 1)}, "knowledge": {}, "notes": []}
    shown = json.loads(context_variable(big))
    assert shown["truncated"]["limit_bytes"] == MAX_ENV_CONTEXT
    assert shown["dependencies"] == {}
    assert json.loads(context_variable(CTX)) == CTX


async def test_python_gets_the_context_as_an_argument() -> None:
    ex = PythonExecutor.load("tests.worker.funcs:context_seen")
    got = await ex.run(context(make_task(context=CTX)))
    assert got == {"context": CTX, "same": True}
    empty = await ex.run(context(make_task()))  # a task sent without one: empty, not absent
    assert empty["context"] == {"dependencies": {}, "knowledge": {}, "notes": []}


def test_claude_gets_the_context_in_its_prompt() -> None:
    prompt = build_prompt(make_task(context=CTX))
    assert "lib.so" in prompt and '"indent": 4' in prompt and "use clang" in prompt
    assert "depends on" in prompt and "knowledge" in prompt.lower()
    assert "lib.so" not in build_prompt(make_task())
