"""A worker host installs the light core (httpx, orjson): `swarm worker` runs there, the
other client commands print JSON, and `swarm server` says which extra it needs. Proven in
processes that cannot import fastapi, starlette, pydantic, uvicorn, rich, redis or
prometheus_client, as if they were not installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LiveServer
from unified_swarm.client import Client
from unified_swarm.procs import swarm_env

#: the packages the `server` (and `redis`, `metrics`) extras bring
SERVER_ONLY = ("fastapi", "starlette", "pydantic", "uvicorn", "rich", "redis",
               "prometheus_client")
#: runs `swarm` with those packages made unimportable
LIGHT = f"""
import sys
from importlib.machinery import PathFinder

class Light(PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in {SERVER_ONLY!r}:
            return None  # what the finder says of a package that is not installed
        return super().find_spec(name, path, target)

sys.meta_path[:] = [Light if f is PathFinder else f for f in sys.meta_path]
from unified_swarm.cli import main
code = main(sys.argv[1:])
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {SERVER_ONLY!r})
assert not leaked, leaked
sys.exit(code)
"""


def light_swarm(*args: str, url: str = "", token: str = "",
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = swarm_env(url or None, token or None)
    return subprocess.run([sys.executable, "-c", LIGHT, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_a_worker_runs_without_the_server_extra(sqlite_server: LiveServer,
                                                tmp_path: Path) -> None:
    with Client(sqlite_server.url, sqlite_server.token) as op:
        op.add_tasks([{"id": "light-1", "type": "build"}])
        ran = light_swarm("worker", "--id", "light", "-c", "build", "--burst", "--wait", "1",
                          "--command", "echo '{\"light\": true}'", url=sqlite_server.url,
                          token=sqlite_server.token, cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
        task = op.get_task("light-1")["task"]
    assert task["status"] == "completed" and task["result"] == {"light": True}
    assert task["assigned_to"] == "light"


def test_client_commands_print_json_without_rich(sqlite_server: LiveServer) -> None:
    shown = light_swarm("status", url=sqlite_server.url, token=sqlite_server.token)
    assert shown.returncode == 0, shown.stderr
    assert "tasks_completed" in json.loads(shown.stdout)
    assert "pip install 'unified-swarm[server]'" in shown.stderr


@pytest.mark.parametrize("command", ["server", "demo"])
def test_the_server_needs_its_extra_and_says_how_to_install_it(command: str,
                                                               tmp_path: Path) -> None:
    ran = light_swarm(command, "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "pip install 'unified-swarm[server]'" in ran.stderr
    assert "Traceback" not in ran.stderr
