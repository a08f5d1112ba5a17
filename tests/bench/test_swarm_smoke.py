"""bench/swarm.py end to end on a tiny workload (fifo and loose only), so it cannot rot."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import BENCH

pytestmark = pytest.mark.slow


def test_the_benchmark_runs_and_prints_its_table() -> None:
    argv = [sys.executable, str(BENCH / "swarm.py"), "--families", "layered", "--seeds", "1",
            "--tasks", "12", "--workers", "2", "--policies", "loose,fifo", "--mean-ms", "40",
            "--max-seconds", "90"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("command: ") and "--policies loose,fifo" in lines[0]
    rows = {tuple(line.split()[:2]): line.split() for line in lines
            if line.startswith(("layered ", "all "))}
    fifo, loose = rows["layered", "fifo"], rows["layered", "loose"]
    # runs "1" (not "0/1": every task completed), makespan and ratios are numbers
    assert fifo[2] == "1" and loose[2] == "1", done.stdout
    assert float(fifo[3]) > 0 and float(fifo[5]) >= 1.0  # never below the lower bound
    assert float(loose[5]) >= 1.0
    assert fifo[8] == "0"  # no duplicates under leases
    assert fifo[-1].endswith("w")  # latency measured from the workers' side
    assert ("layered", "heft") in rows and ("layered", "lower") in rows
    assert any(line.startswith("tasks/hour of ") for line in lines)


def test_the_learned_rounds_and_the_oracle_run() -> None:
    """The learned scheduler's rounds and the oracle (its prior the true speeds) run on a real
    server, which says it runs them: no run is labelled forced."""
    argv = [sys.executable, str(BENCH / "swarm.py"), "--families", "chain", "--seeds", "2",
            "--tasks", "8", "--workers", "2", "--policies", "fifo,learned,oracle", "--rounds",
            "2", "--mean-ms", "30", "--max-seconds", "90"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "/oracle" in out.splitlines()[3]  # the ratio column is over the oracle run
    rows = [line.split() for line in out.splitlines() if line.startswith("chain ")]
    names = [" ".join(r[1:3]) if r[1] == "learned" else r[1] for r in rows]
    assert names[:4] == ["fifo", "learned r1", "learned r2", "oracle"], out
    assert " > " in " ".join(rows[2])  # the learning curve on the last round's row
    assert not any(line.startswith("FORCED: ") for line in out.splitlines())
    assert any(line.startswith("chain: learned r2 / oracle ") for line in out.splitlines())
