"""The docs say what the tests assert: the figures and tables below are held to the code
that checks them (a figure a run measures is written by that run into docs/results/ and the
block of the page that includes it; see unified_swarm.chaos.results)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.api.test_bad_input import CASES as CURATED
from tests.chaos.test_checker import BREAK, clean
from tests.fuzz.test_hostile import CASES as HOSTILE
from tests.fuzz.test_schemathesis import MIN_PER_ROLE, MIN_TOTAL
from tests.security.test_access_matrix import CREDS, MATRIX, matrix_markdown
from unified_swarm.chaos import results
from unified_swarm.chaos.checker import check
from unified_swarm.chaos.dump import same_state

DOCS = Path(__file__).resolve().parents[1] / "docs"


def page(name: str) -> str:
    return (DOCS / name).read_text()


def block(text: str, name: str) -> str:
    found = re.search(rf"<!-- {re.escape(name)} -->\n(.*?)<!-- /{re.escape(name)} -->",
                      text, re.S)
    assert found, f"no <!-- {name} --> block"
    return found.group(1)


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_the_invariant_table_lists_every_line_the_checker_prints() -> None:
    ops, effects, dump = clean()
    lines = [r.name for r in check(ops, effects, dump)] + [same_state(dump, dump).name]
    section = page("reliability.md").split("## How it is checked")[1].split("\n## ")[0]
    documented = re.findall(r"^\| ([a-z][^|]+?) \| ", section, re.M)
    assert [d for d in documented if d != "invariant"] == lines


def test_the_checker_tests_break_as_many_histories_as_the_page_says() -> None:
    said = re.search(r"tests/chaos/test_checker.py`: (\d+) broken histories",
                     page("reliability.md"))
    assert said and number(said.group(1)) == len(BREAK)


def test_every_results_block_shows_its_file() -> None:
    """A page block shows exactly what its run wrote (or says it was not measured yet)."""
    for doc in DOCS.glob("*.md"):
        text = doc.read_text()
        for name in re.findall(r"<!-- results:([\w.-]+) -->", text):
            shown = block(text, f"results:{name}")
            written = DOCS / "results" / f"{name}.md"
            if written.exists():
                assert shown == written.read_text(), f"{doc.name} shows a stale {name}"
            else:
                assert shown == "(not measured yet)\n", f"{doc.name}: {name} typed by hand?"


def republish(name: str, old: str, new: str) -> None:
    """With SWARM_PUBLISH=1 (`make results`), write the tested figure into the page."""
    if results.wanted() and old != new:
        path = DOCS / name
        path.write_text(path.read_text().replace(old, new, 1))


def test_the_access_matrix_on_the_page_is_the_tested_one() -> None:
    text = page("security.md")
    republish("security.md", block(text, "access-matrix"), matrix_markdown())
    said = re.search(r"(\d+) routes (.*?)x (\d+)(\s+)credentials = ([\d,]+) cells", text, re.S)
    if said:
        republish("security.md", said.group(0),
                  f"{len(MATRIX)} routes {said.group(2)}x {len(CREDS)}{said.group(4)}"
                  f"credentials = {len(MATRIX) * len(CREDS):,} cells")
    text = page("security.md")
    assert block(text, "access-matrix") == matrix_markdown()
    said = re.search(r"(\d+) routes .*?x (\d+)\s+credentials = ([\d,]+) cells", text, re.S)
    assert said and [number(g) for g in said.groups()] == [
        len(MATRIX), len(CREDS), len(MATRIX) * len(CREDS)]


def test_the_hostile_counts_on_the_page_are_the_tested_ones() -> None:
    pattern = r"([\d,]+) requests \(([\d,]+) with the ([\d,]+) of `tests/api/test_bad_input.py`\)"
    said = re.search(pattern, page("security.md"))
    if said:
        republish("security.md", said.group(0),
                  f"{len(HOSTILE):,} requests ({len(HOSTILE) + len(CURATED):,} with the "
                  f"{len(CURATED):,} of `tests/api/test_bad_input.py`)")
        said = re.search(pattern, page("security.md"))
    assert said and [number(g) for g in said.groups()] == [
        len(HOSTILE), len(HOSTILE) + len(CURATED), len(CURATED)]
    assert f"({len(CURATED)} requests" in (Path(__file__).parent / "fuzz" /
                                            "test_hostile.py").read_text()


def test_the_schemathesis_bounds_on_the_page_are_the_asserted_ones() -> None:
    said = re.search(r"At least ([\d,]+) generated calls per run and ([\d,]+) per role",
                     page("security.md"))
    assert said and [number(g) for g in said.groups()] == [MIN_TOTAL, MIN_PER_ROLE]
