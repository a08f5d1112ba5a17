"""Real processes for the campaign, each in its own process group so one pid can be
killed, stopped or continued without touching the others."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def swarm_argv() -> list[str]:
    """The `swarm` command of this interpreter (works from a venv or an installed wheel)."""
    return [sys.executable, "-m", "unified_swarm.cli"]


class Proc:
    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, dict(env), log
        self.popen: subprocess.Popen[bytes] | None = None
        self.stopped = False

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=out,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        self.stopped = False
        return self

    def signal(self, sig: int) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(10)
        self.stopped = False

    def stop(self) -> None:
        self.signal(signal.SIGSTOP)
        self.stopped = True

    def cont(self) -> None:
        self.signal(signal.SIGCONT)
        self.stopped = False

    def terminate(self, grace: float = 10.0) -> None:
        if not self.alive:
            return
        self.cont()
        self.signal(signal.SIGTERM)
        try:
            assert self.popen is not None
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()


def wait_until(predicate: object, timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class RedisProc(Proc):
    """A private redis-server: AOF with fsync always, noeviction, loopback only."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (make system-deps)")
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", str(workdir),
                "--maxmemory-policy", "noeviction"]
        super().__init__("redis", argv, os.environ, workdir / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProc:
        super().start()
        wait_until(self._pong, 20, "redis-server")
        return self

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False


class ServerProc(Proc):
    """`swarm server` on a fixed loopback port (kept across restarts)."""

    def __init__(self, name: str, store: str, data_dir: Path, token: str,
                 extra_env: Mapping[str, str], log: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "SWARM_TOKEN": token, "SWARM_RATE_LIMIT": "0",
               "SWARM_REPLICA_ID": name, **extra_env}
        env.pop("SWARM_JOURNAL_DIR", None)
        argv = [*swarm_argv(), "server", "--port", str(self.port), "--data-dir", str(data_dir),
                "--store", store]
        super().__init__(name, argv, env, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict[str, object] | None:
        try:
            r = httpx.get(f"{self.url}/healthz", timeout=0.5)
        except httpx.HTTPError:
            return None
        body: dict[str, object] | None = r.json() if r.status_code == 200 else None
        return body

    def start(self) -> ServerProc:
        super().start()
        wait_until(lambda: self.health() is not None or not self.alive, 30, self.name)
        if not self.alive:
            raise RuntimeError(f"{self.name} exited at start; see {self.log}")
        return self
