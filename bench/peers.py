"""The throughput benchmark's no-op workload on Celery, RQ, Huey and Dramatiq, side by side
with unified-swarm on SQLite and on Redis, all measured in this one run. Prints one table.

Every peer gets a private redis-server on a free loopback port, configured like the one
bench/throughput.py gives unified-swarm (AOF, `appendfsync always`, noeviction), and the
same N worker processes. Throughput: queue all M no-ops first, start the workers with the
peer's own CLI, and time from the first task's start to the M-th task's end (counted by
one INCR per task on a second, non-persistent Redis, so counting never touches the
broker's AOF). Latency: a fresh single worker, then one task at a time, `--gap-ms` apart;
submit -> the task body starts. A peer still short of M after `--max-seconds` is reported
with what it did (marked partial).

    python bench/peers.py --workers 8 --tasks 5000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

import throughput as tp  # bench/throughput.py: the same server, workers and latency probe
from peer_tasks import COUNTER_ENV, DONE_KEY, FIRST_KEY, LAST_KEY, TOTAL_ENV
from unified_swarm.procs import Proc, RedisServer

BENCH_DIR = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Peer:
    """One peer queue: its task module and how its CLI starts `n` worker processes
    (or, with `own_layout`, the processes and threads its CLI picks by default)."""

    name: str
    module: str
    env: dict[str, str] = field(default_factory=dict)
    own_layout: bool = False

    def worker_cmds(self, n: int, broker: str) -> list[list[str]]:
        mod = f"peer_tasks.{self.module}"
        if self.module == "celery_app":
            return [[str(BIN / "celery"), "-A", mod, "worker", "-c", str(n), "-P", "prefork",
                     "-l", "WARNING"]]
        if self.module == "rq_jobs":  # RQ runs one job at a time per worker process
            return [[str(BIN / "rq"), "worker", "-u", broker, "-q", "default"]] * n
        if self.module == "huey_app":
            return [[str(BIN / "huey_consumer"), f"{mod}.huey", "-w", str(n), "-k", "process",
                     "-q"]]
        if self.own_layout:  # dramatiq's defaults: one process per CPU, 8 threads each
            return [[str(BIN / "dramatiq"), mod]]
        return [[str(BIN / "dramatiq"), mod, "-p", str(n), "-t", "1"]]


PEERS = {
    p.name: p
    for p in (
        Peer("celery", "celery_app"),
        Peer("celery-acks-late", "celery_app", {"BENCH_CELERY_ACKS_LATE": "1"}),
        Peer("rq", "rq_jobs"),
        Peer("huey", "huey_app"),
        Peer("dramatiq", "dramatiq_actors"),
        Peer("dramatiq-own-layout", "dramatiq_actors", own_layout=True),
    )
}

FOOTNOTE = """\
Settings (library defaults unless stated; logging at WARNING for every system):
  unified-swarm  HTTP server (uvicorn, {servers} process(es) on Redis, 1 on SQLite) + N worker
                 processes, each one keep-alive connection;
                 {batching};
                 a task is done only when completed under its lease. SQLite: WAL,
                 synchronous=FULL, group commit. Redis: the same private redis-server as the
                 peers. Latency: one idle worker long-polling (wait=10); the
                 submitter and the worker each on one keep-alive connection ({client}),
                 as the peers' probes each use their own library's Redis client.
  celery         prefork pool -c N, task_acks_late=False (acked on receipt, before it runs),
                 prefetch multiplier 4, no result backend.
  celery-acks-late  the same with task_acks_late=True (acked after it runs).
  rq             N `rq worker` processes, the default forking Worker (one fork per job); job
                 hash and registries kept with the default 500 s result TTL.
  huey           RedisHuey, huey_consumer -w N -k process; blocking BRPOP dequeue (removed
                 from Redis when dequeued), results on (a None result is not stored).
  dramatiq       RedisBroker, dramatiq -p N -t 1, default middleware; acked after it runs;
                 an idle consumer polls with backoff up to worker_timeout=1 s.
  dramatiq-own-layout  the same with dramatiq's own default layout instead of N processes:
                 one process per CPU, 8 threads each ({layout}), for throughput
                 and latency alike.
Every broker: private redis-server on 127.0.0.1, AOF appendfsync={fsync}, noeviction.
Peers' tasks/s: first task start -> M-th task end (worker start-up excluded); each peer task
also does one INCR on a separate non-persistent Redis to be counted. unified-swarm: all
workers connected -> all M completed. Ratio columns: peer tasks/s / unified-swarm tasks/s
from this same run (>1: the peer is faster). Latency: submit -> task start, one idle worker,
one task at a time, {gap} ms apart."""


@dataclass
class Row:
    system: str
    store: str
    done: int
    rate: float | None
    p50: float | None = None
    p99: float | None = None
    note: str = ""
    workers: str = ""  # when not --workers processes


@contextmanager
def workers(cmds: list[list[str]], env: dict[str, str], log: Path) -> Iterator[list[Proc]]:
    """Run the peer's worker commands, each in its own process group; stop them all after."""
    procs: list[Proc] = []
    try:
        for n, cmd in enumerate(cmds):
            procs.append(Proc(f"worker-{n}", cmd, env, log, BENCH_DIR).start())
        yield procs
    finally:
        for p in procs:
            p.stop()


def wait_done(count: redis.Redis, tasks: int, max_seconds: float,
              procs: list[Proc]) -> tuple[float | None, int]:
    """Poll the counter every 20 ms until `tasks` ran, `max_seconds` passed or every worker
    process exited; the rate runs from the first task's start to the last one's end."""
    deadline = time.monotonic() + max_seconds
    done = 0
    while time.monotonic() < deadline and any(p.alive for p in procs):
        done = int(count.get(DONE_KEY) or 0)
        if done >= tasks:
            break
        time.sleep(0.02)
    first = count.get(FIRST_KEY)
    if first is None or done < 2:
        return None, done
    last = count.get(LAST_KEY)
    end = float(last) if last is not None else time.monotonic()
    return (done - 1) / (end - float(first)), done


def run_peer(peer: Peer, args: argparse.Namespace, tmp: Path) -> Row:
    """Fresh broker and counter; M queued no-ops, N workers; then the latency probe."""
    with ExitStack() as stack:
        broker_redis = RedisServer(tmp / "broker", appendfsync=args.appendfsync).start()
        stack.callback(broker_redis.stop)
        broker = broker_redis.url
        # the second Redis, only for counting: no AOF, so counting never touches a disk
        counter = RedisServer(tmp / "counter", aof=False).start()
        stack.callback(counter.stop)
        counter_url = counter.url
        env = {**os.environ, **peer.env, "PYTHONPATH": str(BENCH_DIR),
               "BENCH_BROKER_URL": broker, COUNTER_ENV: counter_url, TOTAL_ENV: str(args.tasks)}
        submit = [sys.executable, "-m", f"peer_tasks.{peer.module}"]
        subprocess.run([*submit, "enqueue", str(args.tasks)], env=env, cwd=BENCH_DIR,
                       check=True, timeout=300)
        count = redis.Redis.from_url(counter_url)
        log = tmp / f"{peer.name}.log"
        with workers(peer.worker_cmds(args.workers, broker), env, log) as procs:
            rate, done = wait_done(count, args.tasks, args.max_seconds, procs)
        note = partial(done, args)
        if rate is None:
            return Row(peer.name, "redis", done, None, note=note or "no task ran")
        # what a partial run left queued would otherwise run before the first sample
        redis.Redis.from_url(broker).flushdb()
        try:
            lat = latency(peer, args, env, broker, log)
        except (subprocess.SubprocessError, ValueError) as exc:
            print(f"{peer.name} latency failed: {exc}\n{tail(log)}", file=sys.stderr)
            return Row(peer.name, "redis", done, rate, note=f"{note} latency failed: {exc}"[:90])
        return Row(peer.name, "redis", done, rate, statistics.median(lat), tp.pct(lat, 99),
                   note)


def latency(peer: Peer, args: argparse.Namespace, env: dict[str, str], broker: str,
            log: Path) -> list[float]:
    """One fresh worker process; the peer module submits one task at a time."""
    cmd = [sys.executable, "-m", f"peer_tasks.{peer.module}", "latency",
           str(args.latency_samples), str(args.gap_ms)]
    with workers(peer.worker_cmds(1, broker), env, log), log.open("ab") as err:
        out = subprocess.run(cmd, env=env, cwd=BENCH_DIR, check=True, stdout=subprocess.PIPE,
                             stderr=err, timeout=30 + args.latency_samples * 11)
    return [float(x) for x in json.loads(out.stdout)]


def run_swarm(store: str, args: argparse.Namespace, label: str = "",
              src: Path | None = None) -> Row:
    """unified-swarm on one store: the installed package, or the source tree `src`."""
    system = f"unified-swarm{label and '@' + label}"
    try:
        r = tp.measure(store, args.workers, args.tasks, args.latency_samples, args.max_seconds,
                       args.appendfsync, gap_s=args.gap_ms / 1000, src=src,
                       batch=args.swarm_batch if src is None or args.src_batch else 0,
                       servers=args.servers if store == "redis" else 1)
    except (SystemExit, Exception) as exc:  # e.g. the Redis store is not installed yet
        return Row(system, store, 0, None, note=f"not measured: {exc}")
    return Row(system, store, r.done, r.rate, r.p50, r.p99, partial(r.done, args))


def source_tree(raw: str) -> tuple[str, Path]:
    """`--src LABEL=DIR`: DIR is a checkout (or `git archive`) of another commit."""
    label, _, path = raw.partition("=")
    src = Path(path) / "src"
    if not label or not (src / "unified_swarm").is_dir():
        raise argparse.ArgumentTypeError(f"--src takes LABEL=DIR with DIR/src/unified_swarm, "
                                         f"not {raw!r}")
    return label, src.resolve()


def partial(done: int, args: argparse.Namespace) -> str:
    return "" if done >= args.tasks else f"partial: {done} of {args.tasks}"


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else ""


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def ratio(row: Row, base: Row) -> str:
    if row.rate is None or base.rate is None:
        return "-"
    return f"{row.rate / base.rate:.2f}x"


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    swarm = {r.store: r for r in rows if r.system == "unified-swarm"}
    none = Row("", "", 0, None)
    sqlite, red = swarm.get("sqlite", none), swarm.get("redis", none)
    print(f"{'system':<20} {'store':<7} {'workers':>7} {'tasks':>6} {'done':>6} {'tasks/s':>8} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'vs sqlite':>9} {'vs redis':>9}  note")
    for r in rows:
        p50 = fmt(r.p50 and r.p50 * 1000, ".2f")
        p99 = fmt(r.p99 and r.p99 * 1000, ".2f")
        workers = r.workers or str(args.workers)
        print(f"{r.system:<20} {r.store:<7} {workers:>7} {args.tasks:>6} {r.done:>6} "
              f"{fmt(r.rate, '.0f'):>8} {p50:>8} {p99:>8} {ratio(r, sqlite):>9} "
              f"{ratio(r, red):>9}  {r.note}")
    print()
    if args.repeat > 1:
        print(f"Medians of {args.repeat} rounds; each round runs every system once, in this "
              "order.")
    layout = f"{os.cpu_count()} x 8 = {(os.cpu_count() or 1) * 8} threads here"
    k = args.swarm_batch
    batching = ("GET /work/request + POST /work/complete per task" if k == 0 else
                f"each session has {k} slots: GET /work/request?max={k} claims up to {k} in "
                f"one step,\n                 one POST /work/complete records them and claims "
                f"the next {k}")
    client = ("stdlib http.client" if args.latency_client == "stdlib"
              else "httpx AsyncClient, as the SDK")
    print(FOOTNOTE.format(fsync=args.appendfsync, gap=f"{args.gap_ms:g}", layout=layout,
                          client=client,
                          servers=args.servers, batching=batching))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--latency-samples", type=int, default=200)
    ap.add_argument("--gap-ms", type=float, default=5.0,
                    help="idle time before each latency sample")
    ap.add_argument("--latency-client", choices=["stdlib", "httpx"], default="stdlib",
                    help="unified-swarm's latency probe talks HTTP with stdlib http.client "
                         "(default, as its throughput workers) or httpx (as the SDK)")
    ap.add_argument("--max-seconds", type=float, default=120, help="per system")
    ap.add_argument("--appendfsync", choices=["always", "everysec", "no"], default="always")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help=f"comma-separated subset of {','.join(PEERS)}")
    ap.add_argument("--stores", default="sqlite,redis",
                    help="unified-swarm's stores to measure (the ratio columns' bases)")
    ap.add_argument("--swarm-batch", type=int, default=4, metavar="K",
                    help="unified-swarm's workers claim K tasks at a time (max=K) and send "
                         "their outcomes in one complete that claims the next K; 0: phase 1's "
                         "request + complete per task (0 for --src trees, unless --src-batch)")
    ap.add_argument("--src-batch", action="store_true",
                    help="run the --src trees with --swarm-batch too (trees that have "
                         "batching: issue 16 on)")
    ap.add_argument("--servers", type=int, default=1,
                    help="unified-swarm on Redis: this many server processes (replicas) on "
                         "the one redis-server, the workers spread over them")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds over every system, interleaved; the table shows medians")
    ap.add_argument("--src", type=source_tree, action="append", default=[],
                    metavar="LABEL=DIR",
                    help="also measure unified-swarm from the source tree DIR (another "
                         "commit), as rows unified-swarm@LABEL, interleaved with the rest")
    args = ap.parse_args()
    tp.exit_on_sigterm()
    tp.LATENCY_CLIENT["name"] = args.latency_client
    rounds = [one_round(args) for _ in range(args.repeat)]
    print_table([merge(same) for same in zip(*rounds, strict=True)], args)


def one_round(args: argparse.Namespace) -> list[Row]:
    """Every system once, in table order."""
    rows: list[Row] = []
    for store in (s for s in args.stores.split(",") if s):
        for label, src in [("", None), *args.src]:
            rows.append(run_swarm(store, args, label, src))
            print(f"  {rows[-1].system}/{store}: {fmt(rows[-1].rate, '.0f')} tasks/s",
                  file=sys.stderr)
    for name in (n for n in args.peers.split(",") if n):
        with tempfile.TemporaryDirectory(prefix=f"peer-{name}-") as tmp:
            try:
                rows.append(run_peer(PEERS[name], args, Path(tmp)))
            except (subprocess.SubprocessError, OSError, ValueError) as exc:
                print(f"{name} failed: {exc}\n{tail(Path(tmp) / f'{name}.log')}",
                      file=sys.stderr)
                rows.append(Row(name, "redis", 0, None, note=f"failed: {exc}"[:80]))
        if PEERS[name].own_layout:
            rows[-1].workers = f"{os.cpu_count()}x8"
        print(f"  {rows[-1].system}: {fmt(rows[-1].rate, '.0f')} tasks/s", file=sys.stderr)
    return rows


def merge(rows: tuple[Row, ...]) -> Row:
    """One system over several rounds: medians of what was measured, every note kept."""
    def med(values: list[float | None]) -> float | None:
        got = [v for v in values if v is not None]
        return statistics.median(got) if got else None

    notes = "; ".join(dict.fromkeys(r.note for r in rows if r.note))
    return Row(rows[0].system, rows[0].store, min(r.done for r in rows),
               med([r.rate for r in rows]), med([r.p50 for r in rows]),
               med([r.p99 for r in rows]), notes, rows[0].workers)

if __name__ == "__main__":
    main()
