"""The campaign's watchdog tells a stall (no task completed for a while, tasks open) from
a slow run or a finished one."""

from __future__ import annotations

import time
from pathlib import Path

from unified_swarm.chaos.campaign import Watchdog, _stall_report
from unified_swarm.chaos.swarm import Swarm


def status(completed: int, ready: int = 0, in_progress: int = 0) -> dict[str, int]:
    return {"tasks_completed": completed, "tasks_ready": ready, "tasks_pending": 0,
            "tasks_assigned": 0, "tasks_in_progress": in_progress}


def test_no_completion_while_tasks_are_open_is_a_stall() -> None:
    watch = Watchdog(0.05)
    assert not watch.saw(status(10, ready=3))
    time.sleep(0.06)
    assert watch.saw(status(10, ready=3))
    assert watch.stalled and watch.completed == 10


def test_progress_restarts_the_clock() -> None:
    watch = Watchdog(0.05)
    watch.saw(status(10, ready=3))
    time.sleep(0.06)
    assert not watch.saw(status(11, ready=3))
    assert not watch.saw(status(11, in_progress=1))


def test_nothing_open_is_not_a_stall() -> None:
    """Between two submissions the swarm may sit idle: that is not the swarm's fault."""
    watch = Watchdog(0.05)
    watch.saw(status(10))
    time.sleep(0.06)
    assert not watch.saw(status(10))


def test_the_stall_report_reads_a_live_swarm(tmp_path: Path) -> None:
    """What a stalled run prints: each replica's counts and sessions, a few open tasks."""
    swarm = Swarm("sqlite", tmp_path, 1, 1, 1.0)
    try:
        swarm.start()
        with swarm.client() as c:
            c.add_task("nobody-has-this", id="stuck")
        watch = Watchdog(300.0)
        watch.completed = 7
        report = _stall_report(swarm, watch)
    finally:
        swarm.kill_all()
    assert report.startswith("no task completed for 300 s after 7")
    assert "replica-0: " in report and "tasks_ready=1" in report and "'stuck'" in report
