"""Per (session, capability) statistics the stores keep, and how one outcome moves them.

The learned scheduler (core/learning.py) reads these numbers; the stores update them inside
the atomic step that records an outcome, so the model never disagrees with the history. The
update is data, not code: for each field, `new = old * a + b`, where `b` is a number or one
of the words "x" (the natural log of the attempt's duration in seconds) and "x2" (its
square). SQLite applies the rule through `apply`; the Redis script receives the same table
in its generated header and runs the same arithmetic. Written once, so both stores agree.

Besides one row per capability, every outcome also moves the row of the pseudo-capability
`ANY` ("*"): the session's totals over everything it did, which the circuit breaker reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

#: the pseudo-capability that totals a session's outcomes over every capability
ANY = "*"
#: weight kept by an old observation each time the same pair sees a new one: about the
#: last 50 outcomes of a pair count, so a session whose model changed is relearned
DECAY = 0.98
#: durations below this are measured as this (log of zero is not a number)
MIN_DURATION = 1e-3

Step = tuple[float, float | str]


@dataclass(slots=True)
class PairStats:
    """What the swarm saw of one session on one capability."""

    #: raw counts, for people (GET /session/{id}, /metrics)
    attempts: int = 0
    successes: int = 0
    failures: int = 0
    #: decayed weights, for the model: successes, failures, timed successes
    w_success: float = 0.0
    w_failure: float = 0.0
    w_duration: float = 0.0
    #: decayed sums of log(duration / size) and its square over timed successes
    sum_log: float = 0.0
    sum_log2: float = 0.0
    #: decayed sum of log(duration) itself (what the durations were, for people)
    sum_log_raw: float = 0.0
    #: failures since the last success (the circuit breaker's evidence)
    streak: int = 0

    def wire(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object]) -> PairStats:
        out = cls()
        for name, whole in _TYPED:  # read on every outcome: the field list is made once
            value = raw.get(name)
            if value is not None:
                number = float(value) if isinstance(value, int | float) else float(str(value))
                setattr(out, name, int(number) if whole else number)
        return out


#: PairStats' fields, and which of them are whole numbers
_TYPED = tuple((f.name, f.type == "int") for f in fields(PairStats))


#: How a success moves each field (`old * a + b`).
ON_SUCCESS: dict[str, Step] = {
    "attempts": (1.0, 1.0),
    "successes": (1.0, 1.0),
    "w_success": (DECAY, 1.0),
    "w_failure": (DECAY, 0.0),
    "w_duration": (DECAY, 1.0),
    "sum_log": (DECAY, "x"),
    "sum_log2": (DECAY, "x2"),
    "sum_log_raw": (DECAY, "d"),
    "streak": (0.0, 0.0),
}
#: How a failure moves each field. A failed attempt's duration says nothing about speed.
ON_FAILURE: dict[str, Step] = {
    "attempts": (1.0, 1.0),
    "failures": (1.0, 1.0),
    "w_success": (DECAY, 0.0),
    "w_failure": (DECAY, 1.0),
    "streak": (1.0, 1.0),
}
INT_FIELDS = frozenset({"attempts", "successes", "failures", "streak"})
#: every field, in the order rows are written
FIELDS = tuple(f.name for f in fields(PairStats))


def log_duration(duration: float) -> float:
    return math.log(max(duration, MIN_DURATION))


def size_of(estimated_hours: float | None) -> float:
    """A task's size: its estimate in seconds, or 1 when it gives none."""
    return estimated_hours * 3600 if estimated_hours is not None and estimated_hours > 0 \
        else 1.0


def apply(stats: PairStats, rule: Mapping[str, Step], duration: float,
          size: float = 1.0) -> PairStats:
    """The row after one outcome, by `rule` (ON_SUCCESS or ON_FAILURE), of a task of
    `size` (`size_of`) that took `duration` seconds."""
    d = log_duration(duration)
    x = math.log(max(duration, MIN_DURATION) / size)
    terms = {"x": x, "x2": x * x, "d": d}
    out = PairStats(**asdict(stats))
    for name, (a, b) in rule.items():
        add = terms[b] if isinstance(b, str) else b
        value = getattr(out, name) * a + add
        setattr(out, name, round(value) if name in INT_FIELDS else value)
    return out


def lua_table(rule: Mapping[str, Step]) -> str:
    """The rule as a Lua table constructor, for the Redis script's header."""
    parts = []
    for name, (a, b) in rule.items():
        add = f"'{b}'" if isinstance(b, str) else repr(float(b))
        parts.append(f"{{'{name}', {float(a)!r}, {add}}}")
    return "{" + ", ".join(parts) + "}"
