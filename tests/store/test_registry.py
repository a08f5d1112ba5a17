"""Stores are chosen by the scheme of the store URL, from one registry (config.STORES)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from unified_swarm.config import STORES, Settings
from unified_swarm.errors import InvalidInput, NotInstalled, SwarmError
from unified_swarm.store import make_store
from unified_swarm.store.sqlite import SQLiteStore


def test_the_scheme_picks_the_backend(tmp_path: Path) -> None:
    store = make_store(Settings(data_dir=tmp_path, store=f"sqlite:///{tmp_path}/x.db"))
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "x.db"
    assert isinstance(make_store(Settings(data_dir=tmp_path)), SQLiteStore)
    assert {b.kind for b in STORES.values()} == {"sqlite", "redis"}


@pytest.mark.parametrize("url", ["postgres://db/swarm", "redis", "sqlite://relative.db",
                                 "mysql:///x"])
def test_an_unknown_scheme_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(InvalidInput, match="store must be"):
        Settings(data_dir=tmp_path, store=url).validate()


def test_a_missing_extra_is_a_swarm_error_naming_the_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "unified_swarm.store.redis", None)  # as if not installed
    with pytest.raises(NotInstalled, match=r"pip install 'unified-swarm\[redis\]'") as err:
        make_store(Settings(data_dir=tmp_path, store="redis://127.0.0.1:1/0"))
    assert isinstance(err.value, SwarmError) and not isinstance(err.value, SystemExit)
