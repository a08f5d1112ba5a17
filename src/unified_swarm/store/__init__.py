"""Storage backends behind one protocol (`base.Store`); `open_store` picks one by URL."""

from __future__ import annotations

from ..config import Settings
from .base import Store


def make_store(settings: Settings) -> Store:
    """Build (not yet open) the store the settings name; backends are imported lazily."""
    if settings.store_kind == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(settings.sqlite_path, settings)
    try:
        from .redis import RedisStore
    except ImportError as exc:  # the optional extra is missing
        raise SystemExit(
            "the Redis store needs the redis extra: pip install 'unified-swarm[redis]'"
        ) from exc
    return RedisStore(settings.store, settings)
