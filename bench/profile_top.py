"""The top entries of a cProfile stats file (bench/throughput.py --profile PATH): by own
time and by cumulative time, with the per-call cost, as docs/benchmarks.md quotes them.

    python bench/profile_top.py /tmp/server.prof --top 25
"""

from __future__ import annotations

import argparse
import pstats
from typing import Any


def rows(stats: pstats.Stats, key: int, top: int) -> list[tuple[str, int, float, float]]:
    """(function, calls, own seconds, cumulative seconds), sorted by `key` (2 own, 3 cum)."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    out = []
    for (path, line, name), (_, calls, own, cum, _) in raw.items():
        short = "/".join(path.split("/")[-2:]) if path != "~" else ""
        out.append((f"{short}:{line} {name}" if short else name, calls, own, cum))
    out.sort(key=lambda r: r[key], reverse=True)
    return out[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    stats = pstats.Stats(args.path)
    total = max(r[2] for r in rows(stats, 2, 1)) and sum(
        v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    for title, key in (("own time", 2), ("cumulative time", 3)):
        print(f"\n## by {title} (total own time {total:.2f} s)\n")
        print(f"| {'function':<70} | {'calls':>8} | {'own s':>7} | {'cum s':>7} | own % |")
        print(f"|{'-' * 72}|{'-' * 10}|{'-' * 9}|{'-' * 9}|-------|")
        for fn, calls, own, cum in rows(stats, key, args.top):
            print(f"| {fn[:70]:<70} | {calls:>8} | {own:>7.2f} | {cum:>7.2f} | "
                  f"{100 * own / total:>5.1f} |")


if __name__ == "__main__":
    main()
