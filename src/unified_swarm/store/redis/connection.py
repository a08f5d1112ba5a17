"""Connecting to Redis: short timeouts, no hidden retries, durability checks, the epoch file.

Why no retries inside redis-py: a script that timed out may have run, and re-sending it
is the caller's decision (outcome calls are idempotent per fencing token, an add of the
same ids answers AlreadyExists). Every call either answers or raises `Unavailable` within
about a second, and the pool reconnects by itself on the next call once Redis is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.exceptions as rex
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ...errors import InvalidInput, SwarmError, Unavailable

log = logging.getLogger("unified_swarm.store.redis")

CONNECT_TIMEOUT = 0.5
#: the longest a command may take; scripts are bounded (batches of at most a few thousand
#: items), so only a hung or unreachable server gets near it
SOCKET_TIMEOUT = 1.0
POOL_SIZE = 64
#: Redis answers these while it cannot serve (loading, failing over, out of memory): retry later
TRANSIENT = ("BUSY", "LOADING", "READONLY", "MISCONF", "OOM", "MASTERDOWN", "TRYAGAIN",
             "NOREPLICAS", "CLUSTERDOWN")
CLOCKS = {"caller": "c", "server": "s"}


@dataclass(frozen=True, slots=True)
class Target:
    """Where the store lives: the redis-py URL (our options removed), db, and clock."""

    url: str
    db: int
    clock: str  # "c": scripts judge time by the `now` they are given, "s": by Redis TIME
    shown: str  # the URL without credentials, for messages


def parse_url(url: str) -> Target:
    """Split our own query options (`clock=caller|server`) from a redis:// URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    clock = "caller"
    rest = []
    for key, value in query:
        if key == "clock":
            clock = value
        else:
            rest.append((key, value))
    if clock not in CLOCKS:
        raise InvalidInput(f"store URL option clock={clock!r}: use clock=caller or clock=server")
    db = 0
    path = parts.path.strip("/")
    if path.isdigit():
        db = int(path)
    for key, value in rest:
        if key == "db" and value.isdigit():
            db = int(value)
    clean = urlunsplit(parts._replace(query=urlencode(rest)))
    host = parts.hostname or parts.path
    shown = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "") + f"/{db}"
    return Target(clean, db, CLOCKS[clock], shown)


def make_client(target: Target, *, socket_timeout: float | None = SOCKET_TIMEOUT) -> Redis:
    pool = BlockingConnectionPool.from_url(
        target.url,
        max_connections=POOL_SIZE,
        timeout=SOCKET_TIMEOUT,  # waiting for a free connection
        socket_timeout=socket_timeout,
        socket_connect_timeout=CONNECT_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
        protocol=2,
        client_name="unified-swarm",
    )
    return Redis(connection_pool=pool)


def as_store_error(exc: BaseException, where: str) -> SwarmError:
    """What a redis-py failure means to a caller: 503 while Redis cannot serve, else a bug."""
    if isinstance(exc, SwarmError):
        return exc
    if isinstance(exc, rex.ResponseError) and not _transient(exc):
        return SwarmError(f"redis refused a command ({where}): {exc}")
    return Unavailable(f"redis at {where} is unavailable: {exc or type(exc).__name__}",
                       retry_after=1.0)


def _transient(exc: rex.ResponseError) -> bool:
    # redis-py strips the code of the errors it knows (OOM, READONLY, ...) from the message
    code = str(getattr(exc, "status_code", None) or str(exc).split(" ", 1)[0])
    return code.startswith(TRANSIENT)


UNAVAILABLE_ERRORS = (rex.RedisError, OSError, asyncio.TimeoutError)


async def check_durability(client: Redis, target: Target, allow_unsafe: bool) -> None:
    """Refuse a Redis that can lose acknowledged writes (eviction on, or AOF off)."""
    persistence = await client.info("persistence")
    memory = await client.info("memory")
    problems = []
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        problems.append(f"maxmemory-policy is {policy!r}: set `maxmemory-policy noeviction`, "
                        f"or Redis may evict tasks and leases under memory pressure")
    if int(persistence.get("aof_enabled", 0)) != 1:
        problems.append("AOF is off (RDB snapshots alone lose minutes of writes): set "
                        "`appendonly yes` (and `appendfsync always` for no loss)")
    if problems and not allow_unsafe:
        raise Unavailable(f"refusing to use redis at {target.shown}: " + "; ".join(problems)
                          + ". To start anyway, set SWARM_REDIS_ALLOW_UNSAFE=1 "
                          "(acknowledged work can then be lost).")
    for problem in problems:
        log.warning("redis at %s is unsafe, running anyway: %s", target.shown, problem)
    if not problems:
        await _note_fsync(client, target)


async def _note_fsync(client: Redis, target: Target) -> None:
    try:
        fsync = (await client.config_get("appendfsync")).get("appendfsync")
    except rex.ResponseError:  # CONFIG is often disabled on managed Redis
        return
    if fsync and fsync != "always":
        log.info("redis at %s has appendfsync %s: a power loss can drop the last second of "
                 "acknowledged writes (`appendfsync always` for none)", target.shown, fsync)


def epoch_file(data_dir: Path, prefix: str) -> Path:
    """Where this host remembers the epoch of the swarm under `prefix`."""
    safe = prefix if re.fullmatch(r"[A-Za-z0-9._-]+", prefix) else hashlib.sha256(
        prefix.encode()).hexdigest()[:16]
    return data_dir / f"redis-epoch-{safe}"


def known_epoch(path: Path) -> str | None:
    """The epoch this host saw last under this prefix, if it remembers one."""
    try:
        return path.read_text().strip() if path.exists() else None
    except OSError as exc:
        log.warning("cannot read %s (%s): epoch checks run only while this process runs",
                    path, exc)
        return None


def remember_epoch(path: Path, epoch: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(epoch + "\n")
    except OSError as exc:
        log.warning("cannot write %s (%s): a Redis emptied while this process is down "
                    "will not be detected at the next start", path, exc)


def epoch_refusal(target: Target, prefix: str, path: Path, known: str,
                  found: str | None) -> Unavailable:
    """Redis lost (or never had) the swarm this host used: fencing tokens would restart."""
    what = "is empty" if found is None else f"holds another swarm (epoch {found})"
    return Unavailable(
        f"refusing to start: redis at {target.shown} under prefix {prefix!r} {what}, but "
        f"this host last used epoch {known} there. The Redis was emptied or replaced, and "
        f"starting over would issue fencing tokens from zero again while workers may still "
        f"hold leases. Restore its data (the AOF), or, to start a new empty swarm on "
        f"purpose, delete {path} and start again.")
