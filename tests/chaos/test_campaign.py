"""The chaos campaign in the test command: the CI profile (10,000 tasks, at least 100
faults) on each store, real processes only. The invariant table is printed into the test
output (CI shows it); any violation, any line excusing more than it checked, or a run
short of its profile fails the test with the table as the message. With `SWARM_PUBLISH=1`
(`make results`, `make soak`) the table goes to docs/results/, where the docs include it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from unified_swarm.chaos import results
from unified_swarm.chaos.campaign import Profile, run

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("store", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_ci_campaign(store: str, tmp_path: Path, request: pytest.FixtureRequest,
                     capsys: pytest.CaptureFixture[str]) -> None:
    if store == "redis":
        request.getfixturevalue("redis_server")  # skip locally / fail in CI without the binary
    profile = Profile.named(os.environ.get("SWARM_CHAOS_PROFILE", "ci"))
    at_commit = results.commit(ROOT)
    report = run(profile, store, tmp_path, seed=int(os.environ.get("SWARM_CHAOS_SEED") or "0")
                 or None)
    table = report.render()
    with capsys.disabled():
        print("\n" + table, flush=True)
    if results.wanted():  # a failed run is published too, saying so: the docs show the last
        command = (f"SWARM_CHAOS_PROFILE={profile.name} pytest -s "
                   f"tests/chaos/test_campaign.py -k 'ci_campaign and {store}'")
        verdict = "passed" if report.passed and not report.shortfalls() else "FAILED"
        results.publish(f"chaos-{profile.name}-{store}", results.render(
            f"Chaos campaign, {store}, {profile.name} profile, {verdict}", table, command,
            at_commit), ROOT)
    assert report.shortfalls() == [], table
    assert report.ok, table


def test_selftest_command(tmp_path: Path) -> None:
    """`swarm selftest` runs a short campaign on a temporary SQLite store and exits 0
    with every kind of fault it can inject and an exactly-once line over every task."""
    proc = subprocess.run(
        [sys.executable, "-m", "unified_swarm.cli", "selftest", "--tasks", "200",
         "--faults", "10", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all invariants hold" in proc.stdout
    assert "every task completed exactly once" in proc.stdout
    for kind in ("worker_kill", "worker_pause_long", "worker_pause_short", "server_kill"):
        assert kind in proc.stdout.splitlines()[1], proc.stdout


def test_selftest_short_of_its_minimums_fails_and_says_why(tmp_path: Path) -> None:
    """Asked for far more faults than its time allows, the run falls short: exit 1, and
    the reason, however well the invariants held over what did run."""
    proc = subprocess.run(
        [sys.executable, "-m", "unified_swarm.cli", "selftest", "--tasks", "50",
         "--faults", "5000", "--time-limit", "8", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # the whole output on failure (pytest cuts a long string it compares)
    assert "FELL SHORT" in proc.stdout, proc.stdout
    assert "of 5000 faults were injected" in proc.stdout, proc.stdout
