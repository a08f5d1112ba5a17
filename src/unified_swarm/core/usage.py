"""The checks on what an outcome call reports besides its outcome: the attempt's `usage` (the
rule that keeps and sums it is unified_swarm/usage.py, applied inside the stores' steps) and
a rate limit its agent waits out (the session's `rate_limited` state).

Both are refused here, before the store is touched, with one clear InvalidInput (400)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from .. import usage as rule
from ..errors import InvalidInput
from ..models import JSON, iso

#: a rate-limit report: its fields and what each must be
RATE_LIMIT_FIELDS = ("attempt", "max_retries", "retry_in_s", "error_status", "error")
MAX_RETRY_IN_S = 86_400.0
MAX_RETRY_COUNT = 10_000
MAX_ERROR_CHARS = 300


def checked(raw: object) -> dict[str, float] | None:
    """A usage report with every field (usage.normal), or None; InvalidInput when bad."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidInput("usage must be an object")
    why = rule.problem(raw)
    if why is not None:
        raise InvalidInput(why)
    return rule.normal(raw)


def rate_limited(raw: object, task_id: str, now: float) -> dict[str, JSON] | None:
    """The session's rate-limited state from a progress report's `rate_limit` (None: a
    normal report, which clears it): what the agent said, the task, when, and when it
    retries. InvalidInput when malformed."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidInput("rate_limit must be an object")
    unknown = sorted(set(raw) - set(RATE_LIMIT_FIELDS))
    if unknown:
        raise InvalidInput(f"rate_limit has unknown field(s) {', '.join(unknown)} "
                           f"(known: {', '.join(RATE_LIMIT_FIELDS)})")
    for name in ("attempt", "max_retries"):
        _whole(raw, name, 0, MAX_RETRY_COUNT)
    _whole(raw, "error_status", 100, 599)
    wait = raw.get("retry_in_s")
    if wait is not None and (isinstance(wait, bool) or not isinstance(wait, int | float)
                             or not math.isfinite(wait) or not 0 <= wait <= MAX_RETRY_IN_S):
        raise InvalidInput(f"rate_limit.retry_in_s must be a number within 0..{MAX_RETRY_IN_S:g}")
    error = raw.get("error")
    if error is not None and (not isinstance(error, str) or len(error) > MAX_ERROR_CHARS):
        raise InvalidInput(f"rate_limit.error must be a string of at most {MAX_ERROR_CHARS} "
                           "characters")
    state: dict[str, JSON] = {"task_id": task_id, "at": iso(now)}
    state.update({k: raw.get(k) for k in RATE_LIMIT_FIELDS})
    state["retry_at"] = None if wait is None else iso(now + float(wait))
    return state


def _whole(raw: Mapping[str, object], name: str, low: int, high: int) -> None:
    value = raw.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) \
            or not low <= value <= high:
        raise InvalidInput(f"rate_limit.{name} must be a whole number within {low}..{high}")
