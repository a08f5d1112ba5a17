"""The chaos campaign in the test command: the CI profile (10,000 tasks, at least 100 faults)
on each store, real processes only. The invariant table is printed into the test output
(CI shows it); any violation fails the test with the table as the message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from unified_swarm.chaos.campaign import Profile, run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("store", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_ci_campaign(store: str, tmp_path: Path, request: pytest.FixtureRequest,
                     capsys: pytest.CaptureFixture[str]) -> None:
    if store == "redis":
        request.getfixturevalue("redis_server")  # skip locally / fail in CI without the binary
    profile = Profile.named(os.environ.get("SWARM_CHAOS_PROFILE", "ci"))
    report = run(profile, store, tmp_path, seed=int(os.environ.get("SWARM_CHAOS_SEED", "0"))
                 or None)
    with capsys.disabled():
        print("\n" + report.render(), flush=True)
    assert sum(report.faults.values()) >= profile.min_faults, report.render()
    assert report.tasks >= profile.tasks, report.render()
    assert report.ok, report.render()


def test_selftest_command(tmp_path: Path) -> None:
    """`swarm selftest` runs a short campaign on a temporary SQLite store and exits 0."""
    proc = subprocess.run(
        [sys.executable, "-m", "unified_swarm.cli", "selftest", "--tasks", "200",
         "--faults", "10", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all invariants hold" in proc.stdout
    assert "no task lost" in proc.stdout and "event sequence contiguous" in proc.stdout
