"""The file a CLI session's hook and bridge share: where it is, who may read it, what it holds."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from unified_swarm.agents import identity


def test_written_token_is_read_back_from_a_private_file(tmp_path: Path) -> None:
    path = identity.write_token(tmp_path, "4f1c-aa", "tok", session_id="s1", url="http://x")
    assert path == tmp_path / "agents" / "4f1c-aa.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert identity.read_token(tmp_path, "4f1c-aa") == "tok"
    assert identity.read_identity(tmp_path, "4f1c-aa") == identity.AgentIdentity(
        "4f1c-aa", "s1", "tok", "http://x")
    identity.write_token(tmp_path, "4f1c-aa", "tok2", session_id="s1")
    assert identity.read_token(tmp_path, "4f1c-aa") == "tok2"
    assert [p.name for p in path.parent.iterdir()] == ["4f1c-aa.json"]  # no temp file left


def test_no_file_or_a_broken_one_reads_as_none(tmp_path: Path) -> None:
    assert identity.read_token(tmp_path, "nobody") is None
    path = identity.token_path(tmp_path, "broken")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert identity.read_token(tmp_path, "broken") is None
    path.write_text('{"token": "", "session_id": "s"}')
    assert identity.read_token(tmp_path, "broken") is None
    assert identity.remove_token(tmp_path, "broken") is True
    assert identity.remove_token(tmp_path, "broken") is False


@pytest.mark.parametrize("hostile", ["../../etc/passwd", "a/b", ".", "x" * 200, "é"])
def test_an_id_that_is_not_a_plain_name_stays_inside_the_directory(
        tmp_path: Path, hostile: str) -> None:
    path = identity.token_path(tmp_path, hostile)
    assert path.parent == tmp_path / "agents" and path.name.startswith("sha256-")
    assert identity.token_path(tmp_path, hostile) == path  # stable
    with pytest.raises(ValueError):
        identity.token_path(tmp_path, "")


def test_data_dir_and_session_id_come_from_the_environment(tmp_path: Path) -> None:
    assert identity.data_dir({"SWARM_DATA_DIR": str(tmp_path)}) == tmp_path
    assert identity.data_dir({}) == Path(".swarm").absolute()
    assert identity.cli_session_id({"CLAUDE_CODE_SESSION_ID": "c1"}) == "c1"
    assert identity.cli_session_id({"CLAUDE_CODE_SESSION_ID": "c1",
                                    "SWARM_CLI_SESSION_ID": "ours"}) == "ours"
    assert identity.cli_session_id({}) is None
    assert identity.mint_handle() != identity.mint_handle()


def test_the_default_data_dir_is_the_servers_default() -> None:
    from unified_swarm.config import Settings

    assert Path(identity.DEFAULT_DATA_DIR) == Settings().data_dir
