"""`swarm worker`'s settings: flags over a TOML file over the environment, refused early."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from unified_swarm.cli import build_parser, main
from unified_swarm.cli.common import Exit
from unified_swarm.cli.worker import config_from, executor_from, load_config_file
from unified_swarm.worker import PythonExecutor, ShellExecutor


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_TOKEN", "op-token")
    monkeypatch.delenv("SWARM_URL", raising=False)


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["worker", *argv])


def test_flags_win_over_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "worker.toml"
    path.write_text('url = "http://127.0.0.1:9999"\nname = "from-file"\n'
                    'capabilities = ["research"]\nmax_concurrent_tasks = 4\n'
                    'heartbeat_interval = 5\nexecutor = "shell"\n'
                    '[shell]\ncommand = ["echo", "hi"]\ntimeout = 30\n'
                    '[shell.commands]\nbuild = "make"\n[metadata]\nteam = "blue"\n')
    args = parse("--config", str(path), "--name", "from-flag", "-c", "build,architect",
                 "--timeout", "9")
    file = load_config_file(str(path))
    config = config_from(args, file)
    assert config.url == "http://127.0.0.1:9999" and config.token == "op-token"
    assert config.name == "from-flag" and config.capabilities == ("build", "architect")
    assert config.max_concurrent_tasks == 4 and config.heartbeat_interval == 5
    assert config.metadata == {"team": "blue"} and config.wait == 30
    executor = executor_from(args, file)
    assert isinstance(executor, ShellExecutor)
    assert executor.command == ("echo", "hi") and executor.timeout == 9
    assert executor.commands == {"build": ("make",)}


def test_defaults_heartbeat_every_ten_seconds() -> None:
    args = parse("--executor", "python", "--function", "tests.worker.funcs:echo")
    config = config_from(args, {})
    assert config.heartbeat_interval == 10 and config.lease_ttl == 30
    assert config.url == "http://127.0.0.1:8600" and config.capabilities == ()
    assert isinstance(executor_from(args, {}), PythonExecutor)


@pytest.mark.parametrize(("argv", "toml", "batch"), [
    ([], "", True),  # batching is the default: one request per task for a busy worker
    (["--no-batch"], "", False),
    ([], "batch = false\n", False),
    (["--batch"], "batch = false\n", True),  # the flag wins over the file
])
def test_batching_is_on_unless_turned_off(tmp_path: Path, argv: list[str], toml: str,
                                          batch: bool) -> None:
    path = tmp_path / "worker.toml"
    path.write_text(toml)
    args = parse("--config", str(path), "--command", "true", *argv)
    assert config_from(args, load_config_file(str(path))).batch is batch


@pytest.mark.parametrize(("argv", "message"), [
    (["--function", "m:f"], "--function do(es) not apply to the shell executor"),
    (["--command", "true", "--heartbeat-interval", "0"], "heartbeat interval"),
    (["--command", "true", "--max-tasks", "0"], "max concurrent tasks"),
    (["--executor", "python"], "needs a function"),
    (["--command", "true", "--url", "ftp://x"], "must start with http"),
])
def test_bad_settings_are_usage_errors(argv: list[str], message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", *argv]) == Exit.USAGE
    assert message in capsys.readouterr().err


def test_a_bad_config_file_is_a_usage_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.toml"
    path.write_text("colour = 'blue'\n")
    assert main(["worker", "--config", str(path)]) == Exit.USAGE
    assert "unknown key(s)" in capsys.readouterr().err
    path.write_text("not = [toml\n")
    assert main(["worker", "--config", str(path)]) == Exit.USAGE
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["worker", "--config", str(tmp_path / "missing.toml")]) == Exit.USAGE


def test_an_unreachable_server_fails_registration(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["worker", "--command", "true", "--url", "http://127.0.0.1:9",
                 "--connect-timeout", "0"])
    assert code == 1
    assert "cannot register with http://127.0.0.1:9" in capsys.readouterr().err
