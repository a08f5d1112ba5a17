"""Child processes: `swarm` commands, a private `redis-server`, free loopback ports.

The one way the swarm starts processes of its own, for everything that does: the chaos
campaign (servers, workers, Redis, under faults), `swarm demo` (a server and its workers),
the tests and the benchmarks, and a local spawner (an autoscaler's).

Each child runs in a process group of its own (a new session), so it can be signalled,
paused, resumed or killed together with its children, without touching the others or the
parent (a Ctrl-C at the terminal reaches only the parent, which then stops its children
in order). Its output goes to a log file, whose end `tail` shows when it fails.

    redis = RedisServer(tmp / "redis").start()
    server = SwarmServer("server", store=redis.url, data_dir=tmp / "data", token=token,
                         log=tmp / "server.log").start()
    worker = swarm_worker("w1", server.url, token, ["-c", "build", "--command", "./run"],
                          log=tmp / "w1.log").start()
    worker.stop()      # SIGTERM: the worker drains and exits 0; SIGKILL past the grace
    server.stop()
    redis.stop()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def swarm_argv() -> list[str]:
    """The `swarm` command of this interpreter (from a venv, an installed wheel or a source
    tree alike)."""
    return [sys.executable, "-m", "unified_swarm.cli"]


def swarm_env(url: str | None = None, token: str | None = None,
              **extra: str) -> dict[str, str]:
    """This process's environment without any `SWARM_*` setting of its own (none leaks into
    a child by accident), then `SWARM_URL`, `SWARM_TOKEN` and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env["PYTHONUNBUFFERED"] = "1"
    if url is not None:
        env["SWARM_URL"] = url
    if token is not None:
        env["SWARM_TOKEN"] = token
    env.update(extra)
    return env


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               every: float = 0.05) -> None:
    """Poll until `predicate()` is true; TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Proc:
    """One child process in its own process group, its output appended to `log`.

    `start()` may be called again after it exited (a restart with the same command)."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None,
                 log: Path, cwd: Path | None = None) -> None:
        self.name, self.argv, self.log, self.cwd = name, list(argv), log, cwd
        self.env = dict(os.environ if env is None else env)
        self.popen: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        self.paused = False
        return self

    def signal(self, sig: int) -> None:
        """Send `sig` to the whole process group, if it still runs."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def pause(self) -> None:
        """SIGSTOP: the group stops running, as a process the OS has descheduled would."""
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def wait(self, timeout: float) -> int | None:
        """The exit status once it exited within `timeout` seconds, else None."""
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL the group (a paused one too: SIGKILL needs no SIGCONT) and reap it."""
        if self.alive:
            self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(10)
        self.paused = False

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM (a `swarm` process then finishes in order), SIGKILL after `grace` seconds.
        The exit status, or None when it had to be killed (or never ran)."""
        if not self.alive:
            return self.returncode
        self.resume()
        self.signal(signal.SIGTERM)
        code = self.wait(grace)
        if code is None:
            self.kill()
        return code

    def tail(self, lines: int = 15) -> str:
        return tail(self.log, lines)


def swarm(name: str, args: Sequence[str], log: Path, env: Mapping[str, str] | None = None,
          cwd: Path | None = None) -> Proc:
    """`swarm <args>` as a child process (not started yet); `env` defaults to `swarm_env()`."""
    return Proc(name, [*swarm_argv(), *args], swarm_env() if env is None else env, log, cwd)


def swarm_worker(name: str, url: str, token: str, args: Sequence[str], log: Path,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Proc:
    """`swarm worker` for the swarm at `url`, as session `name` (not started yet): `args`
    are its further flags (capabilities, executor); `env` adds to `swarm_env(url, token)`."""
    full_env = {**swarm_env(url, token), **(env or {})}
    return swarm(name, ["worker", "--id", name, "--name", name, *args], log, full_env, cwd)


class RedisServer(Proc):
    """A private redis-server on a free loopback port, configured as the swarm requires of
    its Redis (AOF, `appendfsync always` unless told otherwise, noeviction); `aof=False`
    for a throwaway one (a benchmark's counter). Restarts keep its port and data."""

    def __init__(self, workdir: Path, *, appendfsync: str = "always", aof: bool = True) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (make system-deps)")
        self.port = free_port()
        self.workdir = workdir
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes" if aof else "no", "--appendfsync", appendfsync,
                "--dir", str(workdir), "--maxmemory-policy", "noeviction",
                "--protected-mode", "yes"]
        super().__init__("redis", argv, None, workdir / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        super().start()
        try:
            wait_until(lambda: self.ping() or not self.alive, 20, "redis-server", 0.02)
        except TimeoutError:
            self.kill()
            raise
        if not self.alive:
            raise RuntimeError(f"redis-server exited at start:\n{self.tail()}")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False


class SwarmServer(Proc):
    """`swarm server` on a free loopback port, kept across restarts. `env` adds `SWARM_*`
    settings to `swarm_env(token=...)`; `args` adds flags."""

    def __init__(self, name: str, *, data_dir: Path, token: str, log: Path,
                 store: str = "sqlite", env: Mapping[str, str] | None = None,
                 args: Sequence[str] = ()) -> None:
        self.port = free_port()
        full_env = {**swarm_env(token=token), **(env or {})}
        argv = [*swarm_argv(), "server", "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(data_dir), "--store", store, *args]
        super().__init__(name, argv, full_env, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict[str, Any] | None:
        """GET /healthz when it answers 200, else None."""
        try:
            r = httpx.get(f"{self.url}/healthz", timeout=0.5)
        except httpx.HTTPError:
            return None
        body: dict[str, Any] | None = r.json() if r.status_code == 200 else None
        return body

    def start(self, within: float = 30.0) -> SwarmServer:
        """Start it and wait until it is healthy; RuntimeError (with its log) otherwise."""
        super().start()
        try:
            wait_until(lambda: self.health() is not None or not self.alive, within, self.name)
        except TimeoutError:
            raise RuntimeError(f"{self.name} did not answer within {within:g} s:\n"
                               f"{self.tail()}") from None
        if not self.alive:
            raise RuntimeError(f"{self.name} exited at start with status {self.returncode}:"
                               f"\n{self.tail()}")
        return self
