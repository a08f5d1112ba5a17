"""Scale of sessions on one orchestrator: S registered sessions heart-beating at their
interval while P of them sit parked in a long-poll. Reports heartbeat latency (p50, p99),
the wake-up latency of a parked long-poll (a task for exactly that session is added: time
from the add being sent to that poll's answer) and the server's resident memory.

The client is not the bottleneck: `--procs` load processes each hold their share of the
sessions over raw HTTP/1.1 keep-alive connections (asyncio streams: one connection per
parked poll, a small pool for the heartbeats, which are spread evenly over the interval).
A separate probe process owns a few sessions of its own, parked and heart-beating like the
others, and takes the reported timings: its loop carries almost nothing, so what it
measures is the server, not a busy client. The load processes' own heartbeat timings are
shown too (they include their client's queueing).

Loopback only; every loop is bounded by `--seconds` (and each call by a timeout). A real
server (uvicorn, a process of its own) on a fresh store, as bench/throughput.py starts it.

    python bench/sessions.py --sessions 10000 --parked 10000 --interval 10 --seconds 60
    python bench/sessions.py --sessions 2000 --parked 2000 --store redis
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import throughput as tp  # the same server and store set-up

#: heartbeat (and registration) connections per load process
POOL = 32
#: registrations in flight per client process (10,000 at once are not a realistic start)
REGISTERING = 8
#: a wake-up not answered within this many seconds is lost (counted, never hidden)
LOST_AFTER = 10.0
#: seconds between wake-ups the probe asks for
WAKE_GAP = 0.1
#: seconds after the beats start before anything is recorded (the spread settles)
WARM = 5.0
JSONObj = dict[str, Any]


class Conn:
    """One HTTP/1.1 keep-alive connection: a request at a time, Content-Length bodies only
    (what the server sends), no client library in the way."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self, method: str, path: str, token: str,
                   body: JSONObj | None = None, within: float = 30.0) -> tuple[int, bytes]:
        return await asyncio.wait_for(self._call(method, path, token, body), within)

    async def _call(self, method: str, path: str, token: str,
                    body: JSONObj | None) -> tuple[int, bytes]:
        reused = self.writer is not None
        try:
            return await self._once(method, path, token, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            if not reused:
                raise
            # the server closed a connection idle past its keep-alive timeout (uvicorn: 5 s)
            # before this request reached it: once more on a new one, as HTTP clients do
            self.close()
            return await self._once(method, path, token, body)

    async def _once(self, method: str, path: str, token: str,
                    body: JSONObj | None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = b"" if body is None else json.dumps(body).encode()
        head = (f"{method} {path} HTTP/1.1\r\nhost: {self.host}\r\n"
                f"authorization: Bearer {token}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(data)}\r\n\r\n")
        self.writer.write(head.encode() + data)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(lines[0].split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@dataclass
class Share:
    """What one client process does: sessions [first, first + count) of `total`, the first
    `parked` of them parked in a long-poll; `probe`: it also adds the wake-up tasks."""

    host: str
    port: int
    first: int
    count: int
    parked: int
    total: int
    interval: float
    wait: float
    probe: bool = False


@dataclass
class Outcome:
    beats: list[float] = field(default_factory=list)
    wakes: list[float] = field(default_factory=list)
    #: what went wrong, by kind ("beat 503", "poll timeout", ...): counted, never hidden
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class Client:
    """One process's sessions: registered, parked, heart-beating; the probe also wakes."""

    def __init__(self, share: Share) -> None:
        self.s = share
        self.tokens: list[str] = []
        self.pool: asyncio.Queue[Conn] = asyncio.Queue()
        self.out = Outcome()
        self.record_from = self.end = float("inf")
        #: local index -> the future its poll's next answer resolves (the probe's wakes)
        self.waiting_for: dict[int, asyncio.Future[float]] = {}
        self.parked_now: set[int] = set()

    async def pooled(self, method: str, path: str, token: str,
                     body: JSONObj | None = None) -> tuple[int, bytes]:
        conn = await self.pool.get()
        try:
            return await conn.call(method, path, token, body)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            conn.close()  # opened again on its next use
            raise
        finally:
            self.pool.put_nowait(conn)

    async def register(self) -> None:
        gate = asyncio.Semaphore(REGISTERING)

        async def one(i: int) -> str:
            for _ in range(5):
                async with gate:
                    code, body = await self.pooled("POST", "/session/register", tp.TOKEN, {
                        "id": f"s{i}", "capabilities": [f"cap-{i}"],
                        "heartbeat_interval": self.s.interval})
                if code != 503:
                    break
                self.out.error("register 503")  # the server's store pool ran dry: again
                await asyncio.sleep(1.0)
            if code != 201:
                raise SystemExit(f"register s{i}: HTTP {code} {body[:200]!r}")
            token: str = json.loads(body)["token"]
            return token
        ids = range(self.s.first, self.s.first + self.s.count)
        self.tokens = list(await asyncio.gather(*(one(i) for i in ids)))

    async def poll(self, k: int) -> None:
        """Session k's long-poll, asked again whenever it ends; a task it gets is
        completed on the same connection."""
        conn, token = Conn(self.s.host, self.s.port), self.tokens[k]
        # the first wait ends at the session's own phase of the wait: the polls' ends (and
        # so their next asks) spread evenly instead of all falling due together
        wait = self.s.wait * (((self.s.first + k) % self.s.total) + 1) / self.s.total
        try:
            while time.monotonic() < self.end:
                self.parked_now.add(k)
                code, body = await conn.call("GET", f"/work/request?wait={wait:.3f}",
                                             token, within=self.s.wait + 60)
                wait = self.s.wait
                at = time.monotonic()
                self.parked_now.discard(k)
                if code == 204:
                    continue
                fut = self.waiting_for.pop(k, None)
                if fut is not None and not fut.done():
                    fut.set_result(at)
                if code != 200:
                    self.out.error(f"poll {code}")
                    await asyncio.sleep(1.0)
                    continue
                got = json.loads(body)
                await conn.call("POST", "/work/complete", token, {
                    "task_id": got["task"]["id"],
                    "fencing_token": got["lease"]["fencing_token"]})
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            if time.monotonic() < self.end:
                self.out.error(f"poll {type(exc).__name__}")
        finally:
            self.parked_now.discard(k)
            conn.close()

    async def beat(self, k: int) -> None:
        t0 = time.monotonic()
        try:
            code, _ = await self.pooled("POST", "/session/heartbeat", self.tokens[k], {})
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            self.out.error(f"beat {type(exc).__name__}")
            return
        if code != 200:
            self.out.error(f"beat {code}")
        elif t0 >= self.record_from:
            self.out.beats.append(time.monotonic() - t0)

    async def heartbeats(self, start: float) -> None:
        """Every session beats once per interval, at its own offset: all sessions of all
        processes spread evenly over the interval."""
        iv, n = self.s.interval, self.s.total
        offsets = [iv * (self.s.first + k) / n for k in range(self.s.count)]
        running: set[asyncio.Task[None]] = set()
        r = 0
        while start + r * iv < self.end:
            for k, off in enumerate(offsets):
                due = start + r * iv + off
                if due >= self.end:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                t = asyncio.create_task(self.beat(k))
                running.add(t)
                t.add_done_callback(running.discard)
            r += 1
        await asyncio.gather(*running)

    async def wakes(self) -> None:
        """The probe: a task for one of its parked sessions at a time (its own capability,
        so exactly that session can take it); the time until that poll answers."""
        op = Conn(self.s.host, self.s.port)
        rng = random.Random(7)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self.record_from - time.monotonic()))
        k_add = 0
        while time.monotonic() < self.end - LOST_AFTER:
            ready = sorted(self.parked_now)
            if not ready:
                await asyncio.sleep(WAKE_GAP)
                continue
            k = rng.choice(ready)
            fut: asyncio.Future[float] = loop.create_future()
            self.waiting_for[k] = fut
            t0 = time.monotonic()
            try:
                code, _ = await op.call("POST", "/work", tp.TOKEN, {
                    "id": f"wake-{k_add}", "type": f"cap-{self.s.first + k}"})
                failed = None if code == 201 else str(code)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                op.close()
                failed = type(exc).__name__
            k_add += 1
            if failed is not None:
                self.out.error(f"wake add {failed}")
                self.out.wakes.append(float("inf"))  # asked for and never seen: lost
                self.waiting_for.pop(k, None)
                await asyncio.sleep(WAKE_GAP)
                continue
            try:
                self.out.wakes.append(await asyncio.wait_for(fut, LOST_AFTER) - t0)
            except TimeoutError:
                self.out.wakes.append(float("inf"))  # lost: counted, never hidden
                self.waiting_for.pop(k, None)
            await asyncio.sleep(WAKE_GAP)
        op.close()


async def _client_main(share: Share, pipe: Any) -> None:
    c = Client(share)
    for _ in range(POOL):
        c.pool.put_nowait(Conn(share.host, share.port))
    t0 = time.monotonic()
    await c.register()
    registered = time.monotonic() - t0
    c.end = float("inf")  # until the parent says
    polls = [asyncio.create_task(c.poll(k)) for k in range(min(share.parked, share.count))]
    pipe.send(("registered", registered))
    start, c.end = await asyncio.to_thread(pipe.recv)  # the same clock for every process
    c.record_from = start + WARM
    jobs = [c.heartbeats(start)] + ([c.wakes()] if share.probe else [])
    await asyncio.gather(*jobs)
    for p in polls:
        p.cancel()
    await asyncio.gather(*polls, return_exceptions=True)
    while not c.pool.empty():
        c.pool.get_nowait().close()
    pipe.send(("done", vars(c.out)))  # plain data: the parent has no __mp_main__


def _client(share: Share, pipe: Any) -> None:
    asyncio.run(_client_main(share, pipe))


def _recv(pipe: Any) -> Any:
    try:
        return pipe.recv()
    except EOFError:
        raise SystemExit("a client process died (its traceback is above)") from None


def quiet(url: str, within: float = 120.0) -> float:
    """Seconds until the server answers /healthz in under 20 ms five times running (the
    burst of parking polls is over), at most `within`."""
    t0 = time.monotonic()
    fast = 0
    with httpx.Client(base_url=url, timeout=30) as http:
        while fast < 5 and time.monotonic() - t0 < within:
            t = time.monotonic()
            http.get("/healthz")
            fast = fast + 1 if time.monotonic() - t < 0.02 else 0
            time.sleep(0.2)
    return time.monotonic() - t0


def memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (the peak) of a process, MiB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024
    return out


def shares(args: argparse.Namespace, host: str, port: int) -> list[Share]:
    """The probe's sessions first (all parked), then the load processes' equal parts."""
    probe_n = max(1, min(args.probe_sessions, args.sessions // 2))
    load_n, parked_left = args.sessions - probe_n, max(0, args.parked - probe_n)
    out = [Share(host, port, 0, probe_n, probe_n, args.sessions, args.interval, args.wait,
                 probe=True)]
    first = probe_n
    for p in range(args.procs):
        count = load_n // args.procs + (1 if p < load_n % args.procs else 0)
        parked = min(count, parked_left)
        parked_left -= parked
        out.append(Share(host, port, first, count, parked, args.sessions, args.interval,
                         args.wait))
        first += count
    return out


def git_head() -> str:
    """The commit measured (read at the start: the tree may move during a long run)."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False, cwd=Path(__file__).parent).stdout.strip() or "?"


def run(url: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    parts = shares(args, host, int(port))
    rss0 = memory(pid)["VmRSS"]
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for share in parts:
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=_client, args=(share, theirs), daemon=True)
        proc.start()
        pipes.append(mine)
        procs.append(proc)
    try:
        t0 = time.monotonic()
        for pipe in pipes:
            if not pipe.poll(args.seconds + 600):
                raise SystemExit("a client did not finish registering in time")
            _recv(pipe)
        registered = time.monotonic() - t0
        rss_reg = memory(pid)["VmRSS"]
        settled = quiet(url)  # the polls are parked: the server answers at once again
        start = time.monotonic() + 1.0
        end = start + WARM + args.seconds
        for pipe in pipes:
            pipe.send((start, end))
        peak_seen = rss_reg
        while time.monotonic() < end:
            time.sleep(1.0)
            peak_seen = max(peak_seen, memory(pid)["VmRSS"])
        mem = memory(pid)
        outs: list[Outcome] = []
        for pipe in pipes:
            if not pipe.poll(args.wait + 120):
                raise SystemExit("a client did not finish in time")
            outs.append(Outcome(**_recv(pipe)[1]))
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
    return {"probe": outs[0], "load": outs[1:], "register_s": registered, "settle_s": settled,
            "rss0": rss0,
            "rss_registered": rss_reg, "rss_peak_seen": peak_seen, "rss_end": mem["VmRSS"],
            "hwm": mem["VmHWM"], "parts": parts}


def _row(name: str, xs: list[float], lost: int | None = None) -> str:
    ok = sorted(x for x in xs if x != float("inf"))
    if not ok:
        return f"{name:<22} {len(xs):>7} {'-':>9} {'-':>9} {'-':>9} {lost or 0:>6}"
    return (f"{name:<22} {len(xs):>7} {statistics.median(ok) * 1e3:>9.1f} "
            f"{tp.pct(ok, 99) * 1e3:>9.1f} {ok[-1] * 1e3:>9.1f} "
            f"{'' if lost is None else lost:>6}")


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    probe: Outcome = r["probe"]
    load_beats = [b for o in r["load"] for b in o.beats]
    errors: dict[str, int] = {}
    for o in [probe, *r["load"]]:
        for kind, n in o.errors.items():
            errors[kind] = errors.get(kind, 0) + n
    lost = sum(1 for w in probe.wakes if w == float("inf"))
    parked = sum(p.parked for p in r["parts"])
    print("command: " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    print(f"store {args.store}, {args.sessions} sessions ({r['parts'][0].count} probe), "
          f"{parked} parked, heartbeat interval {args.interval:g} s, {args.seconds:g} s "
          f"measured, {args.procs} load processes; commit {r['commit']}"
          f"{f' (server from {args.src})' if args.src else ''}, "
          f"load {r['load0']:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    print(f"{'what':<22} {'n':>7} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'lost':>6}")
    print(_row("heartbeat (probe)", probe.beats))
    print(_row("heartbeat (load)", load_beats))
    print(_row("wake (probe)", probe.wakes, lost))
    print(f"register: {args.sessions} sessions in {r['register_s']:.1f} s "
          f"({args.sessions / r['register_s']:.0f}/s), polls parked and the server quiet "
          f"{r['settle_s']:.1f} s later; errors: "
          f"{', '.join(f'{k} x{n}' for k, n in sorted(errors.items())) or 'none'}")
    print(f"server RSS MiB: start {r['rss0']:.0f}, registered {r['rss_registered']:.0f}, "
          f"peak sampled {r['rss_peak_seen']:.0f}, end {r['rss_end']:.0f}, "
          f"VmHWM {r['hwm']:.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    ap.add_argument("--appendfsync", choices=["always", "everysec", "no"], default="always")
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--parked", type=int, default=10_000)
    ap.add_argument("--interval", type=float, default=10.0, help="heartbeat interval, s")
    ap.add_argument("--seconds", type=float, default=60.0,
                    help="how long the measurement runs (after a 5 s warm-up)")
    ap.add_argument("--wait", type=float, default=30.0, help="the long-poll's wait, s")
    ap.add_argument("--procs", type=int, default=4, help="load processes")
    ap.add_argument("--probe-sessions", type=int, default=100,
                    help="sessions of the probe process (parked; the timings are theirs)")
    ap.add_argument("--src", type=Path,
                    help="a source tree (its src/ folder) for the server instead of the "
                         "installed package: a before/after comparison")
    ap.add_argument("--profile", metavar="PATH",
                    help="run the server under cProfile (event-loop thread CPU); stats to PATH")
    args = ap.parse_args()
    if args.seconds <= LOST_AFTER:
        ap.error(f"--seconds must exceed {LOST_AFTER:g} (a wake-up may take that long)")
    tp.exit_on_sigterm()
    if args.profile:
        tp.PROFILE["path"] = str(Path(args.profile).resolve())
    commit, load0 = git_head(), os.getloadavg()[0]
    with tp.swarm_server(args.store, args.appendfsync, args.src) as (server, *_):
        r = run(server.url, server.proc.pid, args)
    report({**r, "commit": commit, "load0": load0}, args)


if __name__ == "__main__":
    main()
