"""bench/sessions.py and bench/reads.py end to end at tiny sizes, so they cannot rot: each
finishes and prints its table with numbers in it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import BENCH

pytestmark = pytest.mark.slow


def run(*argv: str) -> list[str]:
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_sessions_bench_reports_heartbeats_wakes_and_memory() -> None:
    lines = run(str(BENCH / "sessions.py"), "--sessions", "50", "--parked", "50",
                "--interval", "2", "--seconds", "12", "--procs", "2", "--probe-sessions", "10")
    rows = {line[:22].strip(): line[22:].split() for line in lines
            if line.startswith(("heartbeat", "wake"))}
    beats, wakes = rows["heartbeat (probe)"], rows["wake (probe)"]
    assert int(beats[0]) > 0 and float(beats[1]) > 0 and float(beats[2]) >= float(beats[1])
    assert int(rows["heartbeat (load)"][0]) > 0
    # wake-ups happened, and every one is either timed or counted as lost
    assert int(wakes[0]) > 0 and float(wakes[1]) > 0 and int(wakes[-1]) < int(wakes[0])
    assert any(line.startswith("server RSS MiB: start ") for line in lines)
    assert any(line.startswith("register: 50 sessions") for line in lines)


def test_reads_bench_reports_every_read() -> None:
    lines = run(str(BENCH / "reads.py"), "--tasks", "2000", "--samples", "10", "--quiet")
    rows = {line[:24].strip(): line[24:].split() for line in lines[3:]}
    assert set(rows) == {"list, first page", "list, paging on", "list status=completed",
                         "list status=ready (0)", "list capability=", "list session=",
                         "status", "task + history"}, lines
    assert rows["status"][0] == "2000"  # every task counted
    assert rows["list, first page"][0] == "100" and rows["list status=ready (0)"][0] == "0"
    assert rows["task + history"][0] == "1"  # one attempt per finished task
    assert all(float(r[1]) > 0 and float(r[2]) >= float(r[1]) for r in rows.values())
