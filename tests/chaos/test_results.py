"""Docs figures are written by the runs: a result file, and every page block including it."""

from __future__ import annotations

from pathlib import Path

import pytest

from unified_swarm.chaos import results


def test_publish_writes_the_file_and_refreshes_every_block(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    page = docs / "reliability.md"
    page.write_text("# Page\n\n<!-- results:chaos-ci-sqlite -->\nold table\n"
                    "<!-- /results:chaos-ci-sqlite -->\n\n<!-- results:other -->\nkeep\n"
                    "<!-- /results:other -->\n")
    text = results.render("Chaos campaign", "invariant  checked\nx  1", "make results",
                          "abc123")
    assert "at commit `abc123` by `make results`" in text and "```\ninvariant" in text
    out = results.publish("chaos-ci-sqlite", text, tmp_path)
    assert out == docs / "results" / "chaos-ci-sqlite.md" and out.read_text() == text
    shown = page.read_text()
    assert "old table" not in shown and text in shown and "keep" in shown
    results.publish("chaos-ci-sqlite", text.replace("x  1", "x  2"), tmp_path)
    assert page.read_text().count("<!-- results:chaos-ci-sqlite -->") == 1
    assert "x  2" in page.read_text() and "x  1" not in page.read_text()


def test_runs_publish_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(results.ENV, raising=False)
    assert not results.wanted()
    monkeypatch.setenv(results.ENV, "0")
    assert not results.wanted()
    monkeypatch.setenv(results.ENV, "1")
    assert results.wanted()


def test_the_commit_is_named(tmp_path: Path) -> None:
    assert results.commit(tmp_path) == "unknown"  # not a repository
    here = results.commit(Path(__file__).resolve().parents[2])
    assert here == "unknown" or len(here.split("+")[0]) >= 7
