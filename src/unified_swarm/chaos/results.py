"""Docs figures written by the runs, never by hand.

`publish(name, text, root)` writes `docs/results/<name>.md` (the run's table, with the date,
the commit and the command) and replaces, in every page under `docs/`, the block between

    <!-- results:<name> -->
    <!-- /results:<name> -->

with that file's text, so the page shows what the last run measured. Runs publish only when
asked (`SWARM_PUBLISH=1`, as `make soak` and `make results` do), so an ordinary `make check`
leaves the tree as it was.
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
from pathlib import Path

ENV = "SWARM_PUBLISH"


def wanted() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def commit(root: Path) -> str:
    """The commit the run measured (with `+dirty` when the tree had changes)."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def render(title: str, body: str, command: str, at_commit: str) -> str:
    """The file's text: what was measured, when, at which commit (take it when the run
    starts: the tree may change while it runs), by which command; then the run's output."""
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{title}: measured {when} at commit `{at_commit}` by `{command}` "
            f"(written by the run, not by hand).\n\n```\n{body.rstrip()}\n```\n")


def publish(name: str, text: str, root: Path) -> Path:
    """Write the result file and refresh every docs block that includes it."""
    out = root / "docs" / "results" / f"{name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    block = re.compile(rf"(<!-- results:{re.escape(name)} -->\n).*?(<!-- /results:"
                       rf"{re.escape(name)} -->)", re.S)
    for page in (root / "docs").glob("*.md"):
        old = page.read_text()
        new = block.sub(lambda m: m.group(1) + text + m.group(2), old)
        if new != old:
            page.write_text(new)
    return out
