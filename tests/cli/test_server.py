"""`swarm server`: flags from Settings, and the real command in its own process."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from unified_swarm.cli import build_parser, main
from unified_swarm.cli.common import Exit
from unified_swarm.cli.server import settings_from
from unified_swarm.procs import free_port, swarm_argv, swarm_env


def test_flags_come_from_the_settings_fields(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("SWARM_IDLE_THRESHOLD", "33")
    monkeypatch.setenv("SWARM_TASK_CLAIM_TIMEOUT", "99")
    args = build_parser().parse_args([
        "server", "--port", "9001", "--data-dir", str(tmp_path), "--heartbeat-interval", "5",
        "--task-claim-timeout", "12.5", "--max-concurrent-tasks", "3",
        "--strict-capabilities", "--allowed-hosts", "a.example, b.example",
        "--store", "sqlite:///" + str(tmp_path / "x.db")])
    s = settings_from(args)
    assert (s.port, s.data_dir, s.heartbeat_interval) == (9001, tmp_path, 5.0)
    assert s.task_claim_timeout == 12.5  # the flag beats SWARM_TASK_CLAIM_TIMEOUT
    assert s.idle_threshold == 33.0  # the variable beats the default
    assert s.max_concurrent_tasks == 3 and s.strict_capabilities is True
    assert s.allowed_hosts == ("a.example", "b.example")
    assert s.sqlite_path == tmp_path / "x.db" and s.host == "127.0.0.1"
    off = settings_from(build_parser().parse_args(["server", "--no-strict-capabilities"]))
    assert off.strict_capabilities is False


def test_bad_settings_and_workers_are_usage_errors(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWARM_TOKEN", raising=False)
    assert main(["server", "--heartbeat-interval", "-1"]) == Exit.USAGE
    assert "heartbeat_interval must be > 0" in capsys.readouterr().err
    assert main(["server", "--port", "eighty"]) == Exit.USAGE
    capsys.readouterr()
    assert main(["server", "--workers", "4"]) == Exit.USAGE
    assert "one process" in capsys.readouterr().err


def start_server(data: Path, port: int) -> subprocess.Popen[str]:
    env = swarm_env()
    return subprocess.Popen(
        [*swarm_argv(), "server", "--port", str(port), "--data-dir", str(data),
         "--log-level", "warning", "--heartbeat-interval", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=data.parent)


def wait_healthy(url: str, proc: subprocess.Popen[str]) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate(timeout=5)
        try:
            r = httpx.get(f"{url}/healthz", timeout=1)
            if r.status_code == 200:
                body: dict[str, object] = r.json()
                return body
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("swarm server did not answer /healthz within 20 s")


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=5)
    return out, err


@pytest.mark.slow
def test_swarm_server_runs_and_prints_its_token_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    data, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(data, port)
    try:
        health = wait_healthy(url, proc)
        assert health["status"] == "ok" and health["store"] == "sqlite"
        token_file = data / "token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 43
        # the local CLI finds the token in the data dir by itself
        for name in ("SWARM_TOKEN", "SWARM_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("SWARM_DATA_DIR", str(data))
        assert main(["--url", url, "--json", "status"]) == 0
        assert json.loads(capsys.readouterr().out)["total_sessions"] == 0
    finally:
        out, err = stop(proc)
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert f"listening on {url}" in out
    # one banner, at first start only: the token line and the dashboard link (its fragment
    # stays in the browser)
    assert out.count(token) == 2 and f"/#token={token}" in out and token not in err

    again = start_server(data, port)  # the same data dir: the token is kept, not shown
    try:
        wait_healthy(url, again)
    finally:
        out2, err2 = stop(again)
    assert f"listening on {url}" in out2 and token not in out2 + err2
    assert "Dashboard:" in out2
    assert (data / "token").read_text().strip() == token


@pytest.mark.slow
def test_a_taken_port_is_exit_5(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = start_server(tmp_path / "data", taken.getsockname()[1])
        try:
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=5)
    assert proc.returncode == Exit.UNAVAILABLE, (out, err)
    assert "could not start" in err and "listening" not in out


def test_open_file_limit_is_raised_to_the_hard_limit() -> None:
    import resource

    from unified_swarm.cli.server import raise_open_file_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        now = raise_open_file_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == now
        assert now == (hard if hard != resource.RLIM_INFINITY else 1 << 16)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
