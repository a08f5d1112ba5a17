"""The demo's processes: one `swarm server` and N `swarm worker`s, each in its own session
(so a Ctrl-C at the terminal reaches only the demo, which then stops them in order), with
its output in a log file under the data directory."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def swarm_argv() -> list[str]:
    """How to run `swarm` with this interpreter, installed or not."""
    return [sys.executable, "-c", "import sys; from unified_swarm.cli import main; "
                                  "sys.exit(main())"]


@dataclass(slots=True)
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)

    def wait(self, within: float) -> int | None:
        try:
            return self.popen.wait(within)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL its whole group (its children too) and reap it."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; the exit status (None: killed)."""
        self.signal(signal.SIGTERM)
        code = self.wait(grace)
        if code is None:
            self.kill()
        return code


def spawn(name: str, args: list[str], env: dict[str, str], log: Path) -> Proc:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        popen = subprocess.Popen([*swarm_argv(), *args], stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    return Proc(name, popen, log)


def base_env(url: str, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update({"SWARM_URL": url, "SWARM_TOKEN": token, "PYTHONUNBUFFERED": "1"})
    return env


def start_server(data: Path, port: int, token: str) -> Proc:
    env = base_env(f"http://127.0.0.1:{port}", token)
    return spawn("server", ["server", "--host", "127.0.0.1", "--port", str(port),
                            "--data-dir", str(data), "--log-level", "warning"],
                 env, data / "server.log")


def wait_healthy(url: str, server: Proc, within: float = 30.0) -> None:
    """Until /healthz answers ok; RuntimeError (with the server's log) when it exits or
    does not come up in time."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"the server exited with status {server.popen.returncode}:\n"
                               + tail(server.log))
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the server did not answer within {within:g} s:\n" + tail(server.log))


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
