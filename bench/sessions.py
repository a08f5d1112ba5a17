"""Scale of sessions on one orchestrator: S registered sessions heart-beating at their
interval while P of them sit parked in a long-poll; reports heartbeat latency (p50, p99),
the wake-up latency of a parked long-poll (a task for exactly that session is added: time
from the add being sent to the poll's answer), and the server's resident memory.

Loopback only; every loop is bounded by `--seconds` and `--wakes`. A real server (uvicorn,
a process of its own) on a fresh store, as bench/throughput.py starts it.

    python bench/sessions.py --sessions 10000 --parked 10000 --interval 10 --seconds 60
    python bench/sessions.py --sessions 2000 --parked 2000 --store redis
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from pathlib import Path

import httpx

import throughput as tp  # the same server and store set-up

#: concurrent registrations (each one write)
REGISTERING = 64


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def register_all(http: httpx.AsyncClient, n: int, interval: float) -> list[str]:
    """n sessions, session i with capability `cap-i` (so a task can wake exactly one)."""
    gate = asyncio.Semaphore(REGISTERING)
    op = {"authorization": f"Bearer {tp.TOKEN}"}

    async def one(i: int) -> str:
        async with gate:
            r = await http.post("/session/register", headers=op, json={
                "id": f"s{i}", "capabilities": [f"cap-{i}"], "heartbeat_interval": interval})
            r.raise_for_status()
            token: str = r.json()["token"]
            return token
    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def heartbeats(http: httpx.AsyncClient, tokens: list[str], interval: float,
                     until: float, out: list[float]) -> None:
    """Each session beats every `interval` seconds, the sessions spread evenly over it."""
    async def beat(token: str, offset: float) -> None:
        await asyncio.sleep(offset)
        h = {"authorization": f"Bearer {token}"}
        while time.monotonic() < until:
            t0 = time.perf_counter()
            r = await http.post("/session/heartbeat", headers=h, json={})
            out.append(time.perf_counter() - t0)
            r.raise_for_status()
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - t0)))
    n = len(tokens)
    await asyncio.gather(*(beat(t, interval * i / n) for i, t in enumerate(tokens)))


async def park(http: httpx.AsyncClient, token: str, until: float,
               woken: dict[int, asyncio.Future[float]], i: int) -> None:
    """One session's long-poll, asked again whenever it ends with nothing."""
    h = {"authorization": f"Bearer {token}"}
    while time.monotonic() < until:
        r = await http.get("/work/request", params={"wait": 60}, headers=h,
                           timeout=httpx.Timeout(90))
        if r.status_code == 204:
            continue
        r.raise_for_status()
        at = time.perf_counter()
        body = r.json()
        fut = woken.get(i)
        if fut is not None and not fut.done():
            fut.set_result(at)
        (await http.post("/work/complete", headers=h, json={
            "task_id": body["task"]["id"],
            "fencing_token": body["lease"]["fencing_token"]})).raise_for_status()


async def wake_samples(http: httpx.AsyncClient, parked: int, wakes: int, until: float,
                       woken: dict[int, asyncio.Future[float]]) -> list[float]:
    """Add a task for one parked session at a time; time the add until its poll answers."""
    op = {"authorization": f"Bearer {tp.TOKEN}"}
    rng = random.Random(7)
    out: list[float] = []
    loop = asyncio.get_running_loop()
    for k in range(wakes if parked else 0):
        if time.monotonic() >= until:
            break
        i = rng.randrange(parked)
        woken[i] = loop.create_future()
        t0 = time.perf_counter()
        (await http.post("/work", headers=op, json={
            "id": f"wake-{k}", "type": f"cap-{i}"})).raise_for_status()
        try:
            out.append(await asyncio.wait_for(woken[i], 30) - t0)
        except TimeoutError:
            out.append(float("inf"))  # counted, never hidden
        del woken[i]
        await asyncio.sleep(0.05)
    return out


async def run(url: str, pid: int, args: argparse.Namespace) -> dict[str, float]:
    limits = httpx.Limits(max_connections=args.sessions + args.parked + 16,
                          max_keepalive_connections=args.sessions + args.parked + 16)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        t0 = time.perf_counter()
        tokens = await register_all(http, args.sessions, args.interval)
        registered = time.perf_counter() - t0
        rss_idle = rss_mib(pid)
        until = time.monotonic() + args.seconds
        woken: dict[int, asyncio.Future[float]] = {}
        parked = min(args.parked, args.sessions)
        polls = [asyncio.create_task(park(http, tokens[i], until + 90, woken, i))
                 for i in range(parked)]
        beats: list[float] = []
        beating = asyncio.create_task(heartbeats(http, tokens, args.interval, until, beats))
        await asyncio.sleep(min(args.seconds / 4, 10))  # the polls park, the beats spread
        wakes = await wake_samples(http, parked, args.wakes, until, woken)
        rss_busy = rss_mib(pid)
        await beating
        for p in polls:
            p.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
    ok = sorted(w for w in wakes if w != float("inf"))
    if not beats:
        beats = [float("nan")]
    return {"sessions": args.sessions, "parked": parked, "register_s": registered,
            "beats": len(beats), "beat_p50_ms": statistics.median(beats) * 1e3,
            "beat_p99_ms": tp.pct(beats, 99) * 1e3, "wakes": len(wakes),
            "wake_lost": len(wakes) - len(ok),
            "wake_p50_ms": statistics.median(ok) * 1e3 if ok else float("nan"),
            "wake_p99_ms": tp.pct(ok, 99) * 1e3 if ok else float("nan"),
            "rss_idle_mib": rss_idle, "rss_busy_mib": rss_busy}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--parked", type=int, default=10_000)
    ap.add_argument("--interval", type=float, default=10.0, help="heartbeat interval, s")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the beats run")
    ap.add_argument("--wakes", type=int, default=200, help="wake-up samples, at most")
    args = ap.parse_args()
    tp.exit_on_sigterm()
    with tp.swarm_server(args.store) as (server, *_):
        r = asyncio.run(run(server.url, server.proc.pid, args))
    print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in r.items()))


if __name__ == "__main__":
    main()
