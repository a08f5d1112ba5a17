"""`swarm demo`: the workload's shape, the summary's arithmetic, and a real small run
(server and worker processes) that must end with every task completed exactly once."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Any, cast

import pytest

from unified_swarm.client.types import TaskDetail
from unified_swarm.demo import workload
from unified_swarm.demo.summary import read_ledger, summarize
from unified_swarm.procs import swarm_argv


def test_the_workload_is_a_dag_in_dependency_order() -> None:
    seen: set[str] = set()
    for task in workload.tasks():
        assert set(task.get("dependencies", [])) <= seen, task["id"]
        seen.add(task["id"])
    types = {t["type"] for t in workload.tasks()}
    assert types == set(workload.CAPABILITIES)
    assert any(t.get("critical") for t in workload.tasks())
    assert any(t.get("priority") == 10 for t in workload.tasks())
    assert sum(1 for t in workload.tasks() if t["input"].get("fail_first")) == 1


@pytest.mark.parametrize("count", [1, 2, 3, 6, 8])
def test_every_capability_has_a_worker(count: int) -> None:
    sets = workload.worker_sets(count)
    assert len(sets) == count
    assert {c for w in sets for c in w.capabilities} == set(workload.CAPABILITIES)


def detail(task_id: str, *outcomes: str, status: str = "completed") -> TaskDetail:
    history = [{"attempt": n, "session_id": f"w{n}", "outcome": o, "duration": 1.0}
               for n, o in enumerate(outcomes, start=1)]
    task = {"id": task_id, "status": status, "completed_at": "2026-01-01T00:00:10.000Z"}
    return cast(TaskDetail, {"task": task, "history": cast(Any, history)})


def test_the_summary_counts_duplicates_from_history_and_ledger() -> None:
    submitted = 1767225600.0  # 2026-01-01T00:00:00Z
    good = summarize([detail("a", "completed"), detail("b", "failed", "completed")],
                     Counter({"a": 1, "b": 1}), submitted, slots=2)
    assert good.ok and good.duplicates == 0 and good.retried == ["b"]
    assert good.wall == pytest.approx(10.0) and good.utilization == pytest.approx(0.15)
    twice = summarize([detail("a", "completed", "completed")], Counter({"a": 2}),
                      submitted, slots=1)
    assert not twice.ok and twice.duplicates == 1 and twice.twice_recorded == ["a"]
    ran_twice = summarize([detail("a", "expired", "completed")], Counter({"a": 2}),
                          submitted, slots=1)
    assert not ran_twice.ok and ran_twice.ran_twice == ["a"]
    unfinished = summarize([detail("a", "failed", status="failed")], Counter(), submitted, 1)
    assert not unfinished.ok


@pytest.mark.slow
def test_swarm_demo_runs_to_completion(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    run = subprocess.run(
        [*swarm_argv(), "demo", "--workers", "3", "--tasks", "12", "--scale", "0.05",
         "--data-dir", str(data), "--timeout", "60"],
        capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "\x1b[" not in out  # not a terminal: plain lines, no escape codes
    assert "Summary: every task completed exactly once" in out
    assert "tasks        12 of 12 completed" in out and "build-005" in out
    assert "duplicates   0" in out
    assert f"data         {data.resolve()}" in out and "(stopped;" in out
    assert read_ledger(data / "effects.log") == Counter({t["id"]: 1
                                                        for t in workload.tasks(12)})
    assert (data / "swarm.db").exists() and len(list((data / "workers").glob("*.log"))) == 3
