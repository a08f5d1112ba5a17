"""A real `swarm worker` whose python executor splits a task: the worker sends the split,
runs the subtasks and the merge task with their context, and the parent completes."""

from __future__ import annotations

from unified_swarm.client import Client

from .conftest import Workers, status_is, wait_for


def test_a_python_executor_splits_and_the_worker_runs_the_parts(
        op: Client, workers: Workers) -> None:
    op.add_task("plan", id="job", title="big job", estimated_hours=20)
    w = workers.start("wsplit", "--executor", "python", "--function",
                      "tests.worker.funcs:split_big", capabilities="plan,build")
    done = wait_for(lambda: status_is(op, "job", "completed", "failed"), "the job to end",
                    within=60)
    assert done["task"]["status"] == "completed", done
    assert [a["outcome"] for a in done["history"]] == ["split"]
    assert done["task"]["result"] == {"merged": {
        "job-a": {"part": "job-a", "after": []},
        "job-b": {"part": "job-b", "after": ["job-a"]}}}
    w.wait_log("split job into 3 subtask(s)")
