"""Pools from TOML: defaults, SWARM_SCALE_* under a pool's own keys, and one clear error
per mistake (at startup, before anything runs); `swarm pool list|scale`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer
from unified_swarm.cli import main
from unified_swarm.config import Settings
from unified_swarm.errors import InvalidInput
from unified_swarm.scaling.pools import load_pools, parse_pools

from .helpers import write_pools

LOCAL = {"command": ["swarm", "worker"]}


def test_defaults_are_the_seeds() -> None:
    pools = parse_pools({"pools": {"build": {**LOCAL}}}, Settings())
    (p,) = pools.pools
    assert (p.policy.min, p.policy.max, p.policy.up_ready, p.policy.idle_limit) == (3, 5, 10, 3)
    assert (p.interval, p.policy.up_window, p.policy.down_window) == (5.0, 0.0, 60.0)
    assert p.spawner == "local" and p.capabilities == ()
    assert pools.budget.max_sessions is None


def test_env_defaults_and_pool_keys_win() -> None:
    settings = Settings.from_env({"SWARM_SCALE_INTERVAL": "2", "SWARM_SCALE_UP_WINDOW": "7",
                                  "SWARM_SCALE_DOWN_WINDOW": "30"})
    pools = parse_pools({"pools": {
        "a": {**LOCAL},
        "b": {**LOCAL, "interval": 1, "scale_up_window": 0, "scale_down_window": 5.5}}},
        settings)
    a, b = pools.pools
    assert (a.interval, a.policy.up_window, a.policy.down_window) == (2.0, 7.0, 30.0)
    assert (b.interval, b.policy.up_window, b.policy.down_window) == (1.0, 0.0, 5.5)


@pytest.mark.parametrize(("data", "says"), [
    ({}, "no pools"),
    ({"pool": {}}, "unknown top-level key(s) pool"),
    ({"pools": {"a": {**LOCAL, "mni": 1}}}, "unknown key(s) mni"),
    ({"pools": {"a": {**LOCAL, "spawner": "docker"}}}, "spawner must be one of"),
    ({"pools": {"a": {}}}, "a local pool needs command"),
    ({"pools": {"a": {"command": "swarm worker"}}}, "command must be a list"),
    ({"pools": {"a": {"spawner": "kubernetes"}}}, "needs deployment"),
    ({"pools": {"a": {**LOCAL, "min": 4, "max": 2}}}, "min <= max"),
    ({"pools": {"a": {**LOCAL, "max": 5000}}}, "max <= 1000"),
    ({"pools": {"a": {**LOCAL, "min": -1}}}, "min must be a whole number"),
    ({"pools": {"a": {**LOCAL, "min": 1.5}}}, "min must be a whole number"),
    ({"pools": {"a": {**LOCAL, "interval": 0}}}, "interval must be a number > 0"),
    ({"pools": {"a": {**LOCAL, "scale_down_window": -1}}}, "scale_down_window must be"),
    ({"pools": {"a": {**LOCAL, "interval": "5"}}}, "interval must be a number"),
    ({"pools": {"a": {**LOCAL, "tolerance": 1.5}}}, "tolerance must be within 0..1"),
    ({"pools": {"a": {**LOCAL, "capabilities": ["bad cap"]}}}, "capability 'bad cap'"),
    ({"pools": {"a": {**LOCAL, "env": {"X": 1}}}}, "env values must be strings"),
    ({"pools": {"no/slash": {**LOCAL}}}, "a pool name is"),
    ({"pools": {"a": {**LOCAL}}, "budget": {"max_session": 1}}, "unknown key(s) in [budget]"),
    ({"pools": {"a": {**LOCAL, "min": 2}}, "budget": {"max_sessions": 1}},
     "below the pools' mins"),
])
def test_bad_pools_are_named(data: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_pools(data, Settings(), "pools.toml")
    assert says in err.value.message and "pools.toml" in err.value.message


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read the pools file"):
        load_pools(Settings(pools=tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[pools.a\n")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        load_pools(Settings(pools=bad))
    assert not load_pools(Settings())


def test_server_refuses_a_bad_pools_file_at_start(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    bad = write_pools(tmp_path / "pools.toml", {"build": {"min": 9, "max": 2}})
    code = main(["server", "--pools", str(bad), "--data-dir", str(tmp_path / "d"),
                 "--token", "t"])
    err = capsys.readouterr().err
    assert code == 2 and "min <= max" in err and str(bad) in err
    code = main(["server", "--on-exit", "kill", "--data-dir", str(tmp_path / "d"),
                 "--token", "t"])
    assert code == 2 and "invalid choice: 'kill'" in capsys.readouterr().err
    monkeypatch.setenv("SWARM_ON_EXIT", "kill")
    code = main(["server", "--data-dir", str(tmp_path / "d"), "--token", "t"])
    assert code == 2 and "on_exit must be 'drain' or 'leave'" in capsys.readouterr().err


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    pools = write_pools(tmp_path / "pools.toml", {"build": {
        "capabilities": ["build"], "min": 1, "max": 4, "spawner": "none", "interval": 0.2}})
    live = LiveServer(settings.replace(pools=pools)).start()
    yield live
    live.stop()


def test_pool_list_and_scale(server: LiveServer, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")

    def swarm(*argv: str) -> tuple[int, str, str]:
        code = main(["--url", server.url, "--token", server.token, *argv])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = swarm("pool", "list")
    assert code == 0 and "build" in out and "1..4" in out and "none" in out
    code, out, _ = swarm("pool", "scale", "build", "3")
    assert code == 0 and "pinned at 3" in out and "-> 3" in out
    code, out, _ = swarm("pool", "list", "--json")
    assert json.loads(out)["pools"]["build"]["pinned"] == 3
    code, out, _ = swarm("pool", "scale", "build", "auto")
    assert code == 0 and "unpinned" in out
    code, _, err = swarm("pool", "scale", "build", "9")
    assert code == 2 and "1..4" in err
    code, _, err = swarm("pool", "scale", "nope", "1")
    assert code == 3 and "no pool named 'nope'" in err
    code, _, err = swarm("pool", "scale", "build", "many")
    assert code == 2 and "'auto'" in err
