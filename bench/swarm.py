"""Swarm effectiveness: who does what, measured on a real server and real workers.

Each DAG runs under every policy, on the same hidden workers, in one invocation:

- `loose`: the seed's "before": sessions poll the task list and a shared board kept in the
  knowledge store, and start any task they believe free; no claims (bench/swarm_loose.py);
- `fifo`: `swarm server` with SWARM_SCHEDULER=fifo, real `swarm worker`s: phase 1's order;
- `learned`: SWARM_SCHEDULER=learned, cold in round 1, then warm: later rounds reuse the same
  server, data dir and worker session ids, so the model persists;
- `oracle`: the learned scheduler given the true speeds (SWARM_SCHEDULER_PRIOR, a JSON file
  written from the hidden factors).

Workers sleep `base x slowness(worker, type) x noise` (bench/swarm_task.py); for every task
type the fastest worker is `--spread` times faster than the slowest. The harness also computes
offline, from the true durations, HEFT's schedule (a reference) and two lower bounds
(critical path at the fastest speeds, LP on the load), in unified_swarm.core.bounds.
Support for `learned` and `oracle` is asked of the server (GET /swarm/scheduler); a server
without it gets a line saying so, not a fake row. Prints one table.

    python bench/swarm.py                       # every family, 5 seeds, 3 learned rounds
    python bench/swarm.py --quick               # a short run
    python bench/swarm.py --families layered,chain --seeds 1,2,3,4,5 --tasks 120 --workers 6
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import swarm_workloads as wl
import throughput as tp
from swarm_report import Measured, overhead_note, plot, table, targets
from swarm_run import (
    Knobs,
    Outcome,
    Swarm,
    claim_gaps,
    outcome,
    overheads,
    percentile,
    reported_p99,
    side_effects,
)
from unified_swarm.core.bounds import Node, heft, lower_bounds

POLICIES = ("loose", "fifo", "learned", "oracle")
BENCH_DIR = Path(__file__).resolve().parent


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="defaults to 2 seeds, 40 tasks, 4 workers, 2 rounds, the built-in "
                         "families")
    ap.add_argument("--families", help=f"comma-separated, from {','.join(wl.FAMILIES)} "
                    "(default: all; wfcommons ones only when it is installed)")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--tasks", type=int, default=100, help="tasks per DAG (about, for "
                    "wfcommons: its recipe's nearest size)")
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the learned policy")
    ap.add_argument("--mean-ms", type=float, default=200, help="mean base task duration")
    ap.add_argument("--spread", type=float, default=4.0, help="fastest/slowest, per type")
    ap.add_argument("--sigma", type=float, default=0.2, help="lognormal noise of durations")
    ap.add_argument("--failing", type=int, default=0, help="workers that fail some attempts")
    ap.add_argument("--fail-rate", type=float, default=0.3)
    ap.add_argument("--loose-poll", type=float, default=0.05,
                    help="seconds a loose session waits before looking again at the board "
                         "when it found nothing free")
    ap.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    ap.add_argument("--max-seconds", type=float, default=300, help="bound on each round")
    ap.add_argument("--no-estimates", action="store_true",
                    help="submit tasks without estimated_hours (their base work)")
    ap.add_argument("--plot", type=Path, help="write the PNG plot here")
    ap.add_argument("--force", action="store_true",
                    help="run learned and oracle even on a server that does not report them "
                         "(to test the harness: their rows then measure whatever order the "
                         "server has, and the output says so)")
    args = ap.parse_args(argv)
    if args.quick:  # shorter defaults; flags given explicitly still win
        quick = {"seeds": "1,2", "tasks": 40, "workers": 4, "rounds": 2,
                 "families": "layered,chain"}
        for name, value in quick.items():
            if getattr(args, name) == ap.get_default(name):
                setattr(args, name, value)
    return args


def families_of(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The families to run, and notes on those skipped."""
    wanted = args.families.split(",") if args.families else list(wl.FAMILIES)
    unknown = set(wanted) - set(wl.FAMILIES)
    if unknown:
        raise SystemExit(f"unknown families {sorted(unknown)}; known: {wl.FAMILIES}")
    if wl.wfcommons_available():
        return wanted, []
    skipped = [f for f in wanted if f in wl.RECIPES]
    notes = [f"skipped {', '.join(skipped)}: wfcommons is not installed "
             "(pip install -e '.[bench]')"] if skipped else []
    return [f for f in wanted if f not in wl.RECIPES], notes


def probe(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, str], list[str]]:
    """Ask a server started as the learned policy what it supports. Returns the policies that
    cannot run, with why, and notes for the table."""
    prior = workdir / "probe-prior.json"
    prior.write_text(json.dumps({"sessions": {"w0": {"t0": 1.0}}}))
    profile = wl.make_profile(0, 1, ["t0"], args.spread)
    swarm = Swarm(workdir / "probe", profile, Knobs(0, 0.0, args.store), "learned", prior)
    try:
        swarm.start_server()
        info = swarm.scheduler()
    except RuntimeError as exc:
        return {"learned": f"a server with SWARM_SCHEDULER=learned did not start ({exc})",
                "oracle": "see learned"}, []
    finally:
        swarm.stop()
    if info is None:
        why = "this server has no GET /swarm/scheduler (404)"
        return {"learned": why, "oracle": why}, [
            "fifo: this server has no GET /swarm/scheduler; it ran its only order (phase 1: "
            "priority, then age), which is what SWARM_SCHEDULER=fifo names"]
    if info.get("policy") != "learned":
        why = f"SWARM_SCHEDULER=learned, but the server reports policy {info.get('policy')!r}"
        return {"learned": why, "oracle": why}, []
    if "prior" not in json.dumps(info):
        return {}, ["oracle: GET /swarm/scheduler does not mention the prior; the oracle row "
                    "assumes SWARM_SCHEDULER_PRIOR was read"]
    return {}, []


def run_dag(args: argparse.Namespace, family: str, seed: int, workdir: Path,
            policies: Sequence[str]) -> list[Measured]:
    """Every policy on one DAG and one hidden profile, with the DAG's references."""
    nodes = wl.make_dag(family, seed, args.tasks, args.mean_ms / 1000)
    types = sorted({n.type for n in nodes})
    profile = wl.make_profile(seed, args.workers, types, args.spread, args.failing,
                              args.fail_rate)
    durations = wl.true_durations(nodes, profile, seed, args.sigma)
    bounds, ref = lower_bounds(nodes, durations), heft(nodes, durations).makespan
    knobs = Knobs(seed, args.sigma, args.store, args.loose_poll, args.max_seconds,
                  not args.no_estimates)
    outs: list[Outcome] = []
    for policy in policies:
        where = workdir / f"{family}-{seed}-{policy}"
        print(f"  {family} seed {seed}: {policy} ...", file=sys.stderr, flush=True)
        outs += run_policy(policy, nodes, profile, knobs, where, args)
    oracle = next((o.makespan for o in outs if o.policy == "oracle"), None)
    return [Measured(family, seed, args.workers, bounds, ref, o, oracle) for o in outs]


def run_policy(policy: str, nodes: list[Node], profile: wl.Profile, knobs: Knobs,
               where: Path, args: argparse.Namespace) -> list[Outcome]:
    prior = None
    if policy == "oracle":
        prior = where / "prior.json"
        where.mkdir(parents=True, exist_ok=True)
        prior.write_text(json.dumps(wl.oracle_prior(nodes, profile, knobs.sigma,
                                                    knobs.estimates)))
    scheduler = {"loose": None, "fifo": "fifo"}.get(policy, "learned")
    swarm = Swarm(where, profile, knobs, scheduler, prior)
    try:
        swarm.start_server()
        if policy == "loose":
            t0, reports = swarm.run_loose(nodes, 1)
            waits = [d for r in reports for d in r["decisions"]]
            return [outcome(policy, 1, nodes, t0, side_effects(swarm.log, 1),
                            (percentile(waits, 99), "agents"))]
        swarm.start_workers()
        rounds = args.rounds if policy == "learned" else 1
        return [server_round(swarm, policy, nodes, r, knobs) for r in range(1, rounds + 1)]
    finally:
        swarm.stop()


def server_round(swarm: Swarm, policy: str, nodes: list[Node], rnd: int,
                 knobs: Knobs) -> Outcome:
    t0 = swarm.submit(nodes, rnd)
    finished = swarm.wait_done(time.monotonic() + knobs.max_seconds)
    details = swarm.histories(nodes, rnd)
    p99 = reported_p99(swarm.scheduler())
    latency = (p99, "server") if p99 is not None else (
        percentile(claim_gaps(nodes, details), 99), "workers")
    runs = side_effects(swarm.log, rnd)
    out = outcome(policy, rnd, nodes, t0, runs, latency)
    statuses = [d["task"]["status"] for d in details.values()]
    out.extra = {"finished": finished, "server_completed": statuses.count("completed"),
                 "server_attempts": sum(len(d["history"]) for d in details.values()),
                 "overhead": percentile(overheads(details, runs), 50)}
    return out


def revision() -> str:
    """The commit measured (with `+` when bench/ or src/ differ from it), or `?` outside
    git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=BENCH_DIR).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bench", "src"],
                               capture_output=True, text=True, check=True,
                               cwd=BENCH_DIR.parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+" if dirty else "")


def command_line() -> str:
    exe = os.path.relpath(sys.executable) if not sys.executable.startswith("/usr") \
        else sys.executable
    return shlex.join([exe, os.path.relpath(sys.argv[0]), *sys.argv[1:]])


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    tp.exit_on_sigterm()
    started, load = time.time(), os.getloadavg()[0]
    families, notes = families_of(args)
    seeds = [int(s) for s in args.seeds.split(",")]
    wanted = [p for p in args.policies.split(",") if p]
    with tempfile.TemporaryDirectory(prefix="swarm-effect-") as tmp:
        missing, more = probe(args, Path(tmp)) if {"learned", "oracle"} & set(wanted) \
            else ({}, [])
        missing = {p: w for p, w in missing.items() if p in wanted}
        if args.force and missing:
            more.append("FORCED: " + ", ".join(missing) + " ran although the server does not "
                        "support them; their rows measure the server's own order")
            missing = {}
        policies = [p for p in wanted if p not in missing]
        measured: list[Measured] = []
        for seed in seeds:  # interleaved, so outside load hits every policy alike
            for family in families:
                measured += run_dag(args, family, seed, Path(tmp), policies)
    report(args, measured, families, missing, [*notes, *more], started, load)


def report(args: argparse.Namespace, measured: list[Measured], families: list[str],
           missing: dict[str, str], notes: list[str], started: float, load: float) -> None:
    print(f"command: {command_line()}")
    print(f"{args.workers} workers, ~{args.tasks} tasks per DAG, seeds {args.seeds}, mean base "
          f"{args.mean_ms:g} ms, speeds {args.spread:g}x apart per type, noise sigma "
          f"{args.sigma:g}, {args.failing} failing worker(s), store {args.store}; commit "
          f"{revision()}, load {load:.2f} at start, {time.time() - started:.0f} s")
    print()
    for line in table(measured, families, args.rounds, missing):
        print(line)
    print()
    for line in [*targets(measured, families, args.rounds, missing), *notes,
                 overhead_note(measured), *LEGEND]:
        print(line)
    if args.plot:
        plot(measured, families, args.rounds, missing, args.plot, command_line())
        print(f"plot: {args.plot}")


LEGEND = [
    "Medians over seeds. makespan: submit -> the last task's first successful run ends.",
    "/oracle: over the same DAG's oracle makespan; /HEFT when no oracle ran: over HEFT's",
    "  offline schedule on the true durations. /LB: over max(critical path at the fastest",
    "  speeds, LP load bound). util: busy / (workers x makespan). tasks/h: per hour of makespan.",
    "dups: tasks that ran to success more than once, from the task script's log (sum over",
    "  seeds). wasted: runs beyond each task's first success (sum). sess-s: busy",
    "  session-seconds (cost). p99 ms: decision latency, suffix s = GET /swarm/scheduler,",
    "  w = workers' side (attempt end -> next claim while a task waited throughout, server",
    "  history), a = loose agents (board read -> started mark written).",
    "Per-task overhead (task process start, HTTP) is in every measured makespan and in none",
    "  of HEFT or the bounds.",
]


if __name__ == "__main__":
    main()
