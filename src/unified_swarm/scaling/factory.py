"""Building the scaler from settings: the pools file, one spawner per pool."""

from __future__ import annotations

from ..config import Settings
from ..core.orchestrator import Orchestrator
from .local import LocalSpawner
from .pools import Pool, load_pools
from .scaler import Scaler
from .spawner import NoSpawner, Spawner


def worker_url(settings: Settings) -> str:
    """Where this server's local workers reach it: its bind address (a wildcard bind is
    reached over loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host,
                                                                      settings.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def make_spawner(pool: Pool, settings: Settings, token: str) -> Spawner:
    if pool.spawner == "local":
        return LocalSpawner(pool, worker_url(settings), token, settings.data_dir / "pools")
    if pool.spawner == "kubernetes":
        from .kube import KubernetesSpawner  # the optional `kubernetes` extra

        return KubernetesSpawner.from_config(pool)
    return NoSpawner()


def make_scaler(orch: Orchestrator, settings: Settings, token: str) -> Scaler | None:
    """The scaler of `settings.pools`, or None without pools. InvalidInput on a bad file."""
    pools = load_pools(settings)
    if not pools:
        return None
    spawners = {p.name: make_spawner(p, settings, token) for p in pools.pools}
    return Scaler(orch, pools, spawners)
