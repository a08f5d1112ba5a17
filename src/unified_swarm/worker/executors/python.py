"""`python`: call `module:function` with each task.

The function takes the task (the wire dict: id, type, title, input, context, ...) and, when
it has a second parameter, the `TaskContext` (for `ctx.progress(0.5, "halfway")`); a
parameter named `context` gets the task's context (its dependencies' results, knowledge,
notes). It may be a plain or an `async` function. What it returns is the result (it must
be JSON), or a `SplitInto(subtasks, merge)` to split the task instead; what it raises fails
the attempt (`TaskFailed(msg, retry=False)` asks for no retry).

A plain function runs in a daemon thread of its own, so it never blocks the worker's event
loop, and a worker that gives its task back (a second signal) does not wait for it. A
thread cannot be killed: on `timeout` the attempt fails at once and the call runs on,
unobserved, until the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import inspect
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ...client.types import JSON
from ...futures import settle
from .base import ExecutorConfigError, Options, SplitInto, TaskContext, TaskFailed, ensure_json

T = TypeVar("T")
OPTIONS = frozenset({"function", "timeout", "path"})


def load_function(target: str, path: list[str] | None = None) -> Callable[..., Any]:
    """Import `package.module:function` (`:Class.method` works too). `path` entries are
    put in front of sys.path first (the worker's default: its working directory)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ExecutorConfigError(f"the python executor takes module:function, got {target!r}")
    for entry in reversed(path or []):
        resolved = str(Path(entry).resolve())
        if resolved not in sys.path:
            sys.path.insert(0, resolved)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ExecutorConfigError(f"cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ExecutorConfigError(f"{module_name!r} has no {attr!r}") from None
    if not callable(obj):
        raise ExecutorConfigError(f"{target!r} is not callable")
    return obj  # type: ignore[no-any-return]


def call_arguments(fn: Callable[..., Any], ctx: TaskContext) -> tuple[tuple[Any, ...],
                                                                     dict[str, Any]]:
    """How `fn` is called: the task, then the TaskContext when it takes a second positional
    argument; a parameter named `context` gets the task's context by keyword."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return (ctx.task,), {}
    kwargs = {"context": ctx.context} if any(p.name == "context" for p in params) else {}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                  and p.name != "context"]
    two = len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)
    return ((ctx.task, ctx) if two else (ctx.task,)), kwargs


async def in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` in a new daemon thread and await its outcome. Cancelling the await
    abandons the thread (it cannot be stopped) instead of waiting for it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def target() -> None:
        try:
            value, error = fn(*args), None
        except BaseException as exc:  # handed to the awaiting task, raised there
            value, error = None, exc
        # the loop may have closed meanwhile: then nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, future, value, error)

    threading.Thread(target=target, name=f"swarm-task-{getattr(fn, '__name__', 'fn')}",
                     daemon=True).start()
    return await future


@dataclass(frozen=True, slots=True)
class PythonExecutor:
    """See the module docstring."""

    target: str
    function: Callable[..., Any]
    timeout: float | None = None
    kind: str = "python"

    @classmethod
    def load(cls, target: str, *, timeout: float | None = None,
             path: list[str] | None = None) -> PythonExecutor:
        if timeout is not None and timeout <= 0:
            raise ExecutorConfigError("timeout must be > 0")
        return cls(target, load_function(target, path if path is not None else ["."]),
                   timeout)

    @classmethod
    def from_options(cls, raw: Mapping[str, object]) -> PythonExecutor:
        """From config keys: function (module:function), timeout, path (list)."""
        opts = Options("python", raw, OPTIONS)
        target = opts.text("function")
        if not target:
            raise ExecutorConfigError("the python executor needs a function (--function "
                                      "module:function)")
        path = opts.strings("path") if "path" in opts.raw else None
        return cls.load(target, timeout=opts.number("timeout"), path=path)

    def describe(self) -> str:
        extra = f", timeout {self.timeout:g} s" if self.timeout else ""
        return f"python: {self.target}{extra}"

    async def run(self, ctx: TaskContext) -> JSON:
        args, kwargs = call_arguments(self.function, ctx)
        scope = asyncio.timeout(self.timeout)
        try:
            async with scope:
                result = await self._call(args, kwargs)
        except TaskFailed:
            raise
        except TimeoutError as exc:
            if scope.expired():
                raise TaskFailed(f"timed out after {self.timeout:g} s") from None
            raise TaskFailed(describe_exception(exc)) from exc
        except Exception as exc:
            raise TaskFailed(describe_exception(exc)) from exc
        if isinstance(result, SplitInto):  # the worker splits the task instead
            ensure_json([result.subtasks, result.merge], f"the split of {self.target}")
            return result
        return ensure_json(result, f"the result of {self.target}")

    async def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(self.function):
            return await self.function(*args, **kwargs)
        result = await in_daemon_thread(functools.partial(self.function, **kwargs), *args)
        if inspect.isawaitable(result):  # a plain function that returned a coroutine
            result = await result
        return result


def describe_exception(exc: BaseException, frames: int = 3) -> str:
    """`Type: message` and the innermost frames, for a task's error."""
    head = f"{type(exc).__name__}: {exc}"
    stack = traceback.extract_tb(exc.__traceback__)[-frames:]
    where = "".join(traceback.format_list(stack)).rstrip()
    return f"{head}\n{where}" if where else head
