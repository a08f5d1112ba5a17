"""Records read back from a store, the same way in every store.

A field's type in models.py says how its stored value turns back into it; a store only says
how it keeps the simple types (`Kinds`: SQLite keeps numbers as numbers and flags as 0/1,
Redis keeps text). `Reader` builds, once per record, the table of field -> decoder, so no
store restates a record field by field. The lease views of a task are shared here too.
"""

from __future__ import annotations

import dataclasses
import enum
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar, Union, get_args, get_origin, get_type_hints

from ..jsonutil import loads
from ..models import JSON, Lease, Task

R = TypeVar("R")
Decoder = Callable[[Any], Any]
#: how a reader reaches one stored value by field name (None: not stored, or null)
Getter = Callable[[str], Any]


def same(value: Any) -> Any:
    return value


#: how a store turns a stored int, float, bool or str back into one, where it does not keep
#: it as the value itself; JSON (lists, objects, `models.JSON`) is read by `loads` everywhere
Kinds = Mapping[type, Decoder]
_SIMPLE = (int, float, bool, str)


def decoder(hint: Any, kinds: Kinds) -> Decoder:
    """The decoder of a field annotated `hint` (an optional type decodes as its type)."""
    if get_origin(hint) in (Union, types.UnionType):
        (hint,) = (a for a in get_args(hint) if a is not type(None))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        members = hint
        return lambda v: members(v) if v else None  # '' is "none yet" (an attempt's outcome)
    if hint in _SIMPLE:
        return kinds.get(hint, same)
    return loads


class Reader(Generic[R]):
    """Builds records of one type from stored values, through a table made once."""

    def __init__(self, cls: Callable[..., R], kinds: Kinds, skip: Iterable[str] = ()) -> None:
        self.cls = cls
        assert isinstance(cls, type) and dataclasses.is_dataclass(cls)
        hints = get_type_hints(cls)
        left_out = set(skip)
        fields = [f for f in dataclasses.fields(cls) if f.name not in left_out]
        self.table = [(f.name, decoder(hints[f.name], kinds)) for f in fields]
        #: fields without a default: a null stored value is passed as None, not left out
        self.required = [f.name for f in fields if f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING]

    def __call__(self, get: Getter, **given: Any) -> R:
        """A record from its stored values: each field through its decoder; a field that is
        not stored (or null) takes the record's default, and `given` fields are taken as
        they are (the table must skip them)."""
        values = {name: decode(raw) for name, decode in self.table
                  if (raw := get(name)) is not None}
        for name in self.required:
            values.setdefault(name, None)
        return self.cls(**values, **given)


def lease_of(t: Task) -> Lease:
    assert t.assigned_to is not None and t.lease_expires_at is not None
    return Lease(t.id, t.assigned_to, t.fencing_token, t.lease_expires_at)


def held_lease(t: Task, notes: list[JSON]) -> Lease:
    """A lease as the heartbeat shows it to its holder: with the task's status (a paused
    one has no deadline), the end of a preemption's grace, and the handoff notes."""
    assert t.assigned_to is not None
    return Lease(t.id, t.assigned_to, t.fencing_token, t.lease_expires_at, t.status,
                 t.preempt_at, notes)
