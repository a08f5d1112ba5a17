"""`swarm selftest`: a short chaos campaign against your own backend, then the invariant
table. It runs its own servers and workers on loopback; the SQLite campaign uses a
temporary data dir, a Redis one a key prefix of its own (deleted afterwards), so your
data is untouched. A Redis you name is never killed: its run injects worker faults and
leader-replica kills only.

It exits 0 only when every invariant holds **and** the run reached its own minimums (the
tasks asked for, the faults asked for, at least one fault of each kind it can inject and
one operation of each kind (an emergency with and without interrupt, a preemption released
and one revoked, a release), an exactly-once line over every task); short of them it says
why and exits 1."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from dataclasses import replace
from pathlib import Path

from ..chaos.campaign import Profile, run
from .common import Exit, fail, need_server_extra

HELP = "prove the guarantees on your backend: a short fault campaign and its invariant table"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default="sqlite",
                        help="sqlite (a temporary file) or redis://host:port/db (a prefix of "
                             "its own); default: sqlite")
    parser.add_argument("--tasks", type=int, default=None, help="tasks to run (default 600)")
    parser.add_argument("--faults", type=int, default=None, help="faults at least (default 24)")
    parser.add_argument("--seed", type=int, default=None, help="replay a run's choices")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="give up after this many seconds (default 1800); a run cut "
                             "short fails")
    parser.add_argument("--workdir", default=None,
                        help="keep journals and logs here (default: a temporary dir)")
    parser.set_defaults(handler=selftest)


def selftest(args: argparse.Namespace) -> int:
    profile = Profile.named("selftest")
    if args.tasks is not None:
        if args.tasks < 1:
            return fail("--tasks must be at least 1", Exit.USAGE)
        profile = replace(profile, tasks=args.tasks)
    if args.faults is not None:
        # few faults asked for: hit the infrastructure often enough that it is hit at all
        profile = replace(profile, min_faults=max(0, args.faults),
                          infra_every=max(2, min(profile.infra_every, args.faults // 2)))
    if args.time_limit is not None:
        if args.time_limit <= 0:
            return fail("--time-limit must be > 0", Exit.USAGE)
        profile = replace(profile, time_limit=args.time_limit)
    store = args.store
    if store != "sqlite" and not store.startswith(("redis://", "rediss://", "unix://")):
        return fail(f"--store takes sqlite or a redis:// URL, not {store!r}", Exit.USAGE)
    need_server_extra("selftest")
    external = None if store == "sqlite" else store
    with contextlib.ExitStack() as stack:
        workdir = Path(args.workdir) if args.workdir else Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="swarm-selftest-")))
        print(f"swarm selftest: {profile.tasks} tasks, {profile.min_faults}+ faults on {store}"
              f" (journals in {workdir})", flush=True)
        try:
            report = run(profile, store, workdir, args.seed, external_redis=external)
        except FileNotFoundError as exc:
            return fail(str(exc), Exit.UNAVAILABLE)
        finally:
            if external is not None:
                _drop_prefix(external, workdir)
    print(report.render())
    short = report.shortfalls()
    if not report.ok:
        print("swarm selftest: INVARIANTS VIOLATED")
    elif short:
        print(f"swarm selftest: FELL SHORT of its minimums ({'; '.join(short)}): "
              "the invariants held over what ran, which proves less than asked")
    else:
        print("swarm selftest: all invariants hold")
    return Exit.OK if report.passed else Exit.ERROR


def _drop_prefix(url: str, workdir: Path) -> None:
    """Delete the campaign's own keys from the user's Redis (the prefix is in the log)."""
    marker = workdir / "prefix"
    if not marker.exists():
        return
    prefix = marker.read_text().strip()
    with contextlib.suppress(Exception):
        asyncio.run(_delete(url, prefix))


async def _delete(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 1000):
            await client.delete(*keys[i:i + 1000])
    finally:
        await client.aclose()
