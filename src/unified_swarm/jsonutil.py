"""JSON in and out, with the limits every boundary enforces.

orjson refuses NaN, Infinity and lone surrogates; it reads an integer past 64 bits as a
float, which the API refuses before parsing (api/deps.py), so a value accepted once is stored
and served back unchanged.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from .errors import InvalidInput


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def dumpb(value: Any) -> bytes:
    return orjson.dumps(value)


def loads(raw: str | bytes | None) -> Any:
    return None if raw is None else orjson.loads(raw)


def check_depth(value: Any, max_depth: int) -> None:
    """Iterative, so a hostile document cannot exhaust the Python stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise InvalidInput(f"JSON nested deeper than {max_depth} levels")
        stack.extend((c, depth + 1) for c in children)


def digest(value: Any) -> str:
    """A stable digest of a JSON value (keys sorted), for idempotency checks."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()
