"""What an agent's run spent (cost and tokens): how an attempt keeps it and how it is summed.

An outcome call (`POST /work/progress`, `/work/complete`, `/work/fail`) may carry `usage`,
the attempt's total so far: `{"cost_usd", "input_tokens", "output_tokens",
"cache_creation_input_tokens", "cache_read_input_tokens", "num_turns"}` (each optional, 0
when left out). In the step that records the call, the attempt keeps per field the larger of
what it had and what came (`grow`), and the sums of its session, of its task type and of the
swarm gain the difference (`add`), with `attempts` counting the attempts that reported any.
So a progress report and then the completion of the same run, or a retried call, never
count twice, and a late smaller figure changes nothing.

The rule is data and two small functions: SQLite applies them in Python; the Redis script
gets FIELDS in its generated header and does the same arithmetic (lib.lua `grow_usage`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

#: what one attempt reports, in wire order
FIELDS = ("cost_usd", "input_tokens", "output_tokens", "cache_creation_input_tokens",
          "cache_read_input_tokens", "num_turns")
#: the fields that count things (whole numbers); cost_usd is dollars
INT_FIELDS = frozenset(FIELDS[1:])
#: what a sum holds: the fields, and how many attempts reported
SUM_FIELDS = (*FIELDS, "attempts")
#: the largest figures one report may carry (far above any real run; they keep sums finite
#: and exact: every count stays below 2**53)
MAX_COST_USD = 1_000_000.0
MAX_COUNT = 10**12
#: decimals of dollars on the wire (a millionth of a dollar; the stores agree to there)
COST_DECIMALS = 6

Usage = dict[str, float]


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else 0.0


def problem(raw: Mapping[str, object]) -> str | None:
    """Why `raw` cannot be a usage report, or None when it can (core refuses with this)."""
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        return f"usage has unknown field(s) {', '.join(unknown)} (known: {', '.join(FIELDS)})"
    for name, value in raw.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or value < 0:
            return f"usage.{name} must be a number >= 0, got {value!r}"
        if name in INT_FIELDS and (value != int(value) or value > MAX_COUNT):
            return f"usage.{name} must be a whole number <= {MAX_COUNT}, got {value!r}"
        if name == "cost_usd" and value > MAX_COST_USD:
            return f"usage.cost_usd must be <= {MAX_COST_USD:g}, got {value!r}"
    return None


def normal(raw: Mapping[str, object]) -> Usage:
    """A checked report with every field (0 where left out)."""
    return {f: (float(_num(raw.get(f))) if f == "cost_usd" else float(int(_num(raw.get(f)))))
            for f in FIELDS}


def grow(kept: Mapping[str, object] | None, new: Mapping[str, object]) -> tuple[Usage, Usage]:
    """What the attempt keeps after this report, and what the sums gain from it (per field
    the increase, and `attempts` 1 for the attempt's first report)."""
    base = kept or {}
    now = {f: max(_num(base.get(f)), _num(new.get(f))) for f in FIELDS}
    gained = {f: now[f] - _num(base.get(f)) for f in FIELDS}
    gained["attempts"] = 0.0 if kept else 1.0
    return now, gained


def add(sums: Mapping[str, object] | None, gained: Mapping[str, float]) -> Usage:
    """A sum after an attempt's report gained `gained`."""
    base = sums or {}
    return {f: _num(base.get(f)) + _num(gained.get(f)) for f in SUM_FIELDS}


def moved(gained: Mapping[str, float]) -> bool:
    """Whether a report changed anything (no write is needed otherwise)."""
    return any(_num(gained.get(f)) > 0 for f in SUM_FIELDS)


def wire(values: Mapping[str, object] | None) -> dict[str, float | int] | None:
    """A report or a sum as JSON: counts as integers, dollars to COST_DECIMALS."""
    if values is None:
        return None
    out: dict[str, float | int] = {}
    for f in SUM_FIELDS:
        if f not in values and f == "attempts":
            continue
        value = _num(values.get(f))
        out[f] = round(value, COST_DECIMALS) if f == "cost_usd" else round(value)
    return out
