"""What a joined session is told: the protocol, as facts (Claude Code's docs advise factual
statements over imperative instructions in hook context), and the texts the hooks give."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROTOCOL = """\
This session is joined to a Unified Swarm (the user ran `swarm join`). The swarm is a shared \
task queue; its tools are the `swarm` MCP server's: swarm_status, claim_task, get_task, \
report_progress, complete_task, fail_task, release_task, add_tasks, split_task, ask_operator, \
knowledge_get, knowledge_put.
- The user comes first: while the user is prompting, swarm work waits.
- An offer names a task the swarm holds for this session for a short while; claim_task \
with its task_id takes it and returns a lease with a fencing_token. An offer not claimed \
goes to another session.
- complete_task, fail_task, report_progress and release_task take that fencing_token; a \
stale one is refused (code stale_lease) and nothing is recorded.
- report_progress renews the lease on long work; release_task with a handoff_note gives a \
task back (context running out, the user took over).
- Messages that start with "Swarm:" come from the swarm's hooks, not from the user."""

SKILL_TEXT = """\
---
name: swarm
description: How this session works with a Unified Swarm (offers, claims, fencing tokens)
---

""" + PROTOCOL + "\n"


def lease_text(lease: Mapping[str, Any], task: Mapping[str, Any] | None = None) -> str:
    title = f" ({task.get('title') or task.get('type')})" if task else ""
    return (f"Swarm: this session holds task {lease.get('task_id')}{title} with fencing_token "
            f"{lease.get('fencing_token')} (lease until {lease.get('expires_at')}).")


def offer_text(task: Mapping[str, Any], offer: Mapping[str, Any]) -> str:
    title = task.get("title") or task.get("type") or ""
    return (f"Swarm: task {task.get('id')} ({title}) is offered to this session until "
            f"{offer.get('expires_at')}; claim_task with task_id {task.get('id')} takes it.")


def unfinished_text(lease: Mapping[str, Any]) -> str:
    return (f"Swarm: task {lease.get('task_id')} is still held by this session (fencing_token "
            f"{lease.get('fencing_token')}); complete_task, fail_task or release_task ends it.")
