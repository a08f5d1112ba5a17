"""Merging our entries into other programs' config files, and taking them out again.

`swarm join` touches files it does not own (`.mcp.json`, `.claude/settings.local.json`,
`.codex/config.toml`, `.gemini/settings.json`). Each change is described as data, an
`Addition`: values set at a key path or appended to a list at a key path (JSON files), or a
marked block of text (TOML files). The same description merges the entry in and, at leave,
takes exactly that entry out again when the user edited the file since; when the file is still
what join wrote, leave restores the backup byte for byte instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: the lines that open and close our block in a TOML file
BLOCK_BEGIN = "# >>> unified-swarm (written by `swarm join`; `swarm leave` removes it)"
BLOCK_END = "# <<< unified-swarm"


class ConfigFileError(Exception):
    """A file join would merge into cannot be read as what it should be; nothing written."""


@dataclass(frozen=True, slots=True)
class Addition:
    """What join adds to one file: JSON `sets` ((key path, value): the key must be absent or
    already equal) and `appends` ((key path, value): appended to the list unless present), or
    a `block` of TOML text appended between the markers."""

    sets: tuple[tuple[tuple[str, ...], Any], ...] = ()
    appends: tuple[tuple[tuple[str, ...], Any], ...] = ()
    block: str | None = None

    def wire(self) -> dict[str, Any]:
        return {"sets": [[list(p), v] for p, v in self.sets],
                "appends": [[list(p), v] for p, v in self.appends], "block": self.block}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Addition:
        return cls(sets=tuple((tuple(p), v) for p, v in raw.get("sets", [])),
                   appends=tuple((tuple(p), v) for p, v in raw.get("appends", [])),
                   block=raw.get("block"))


@dataclass(slots=True)
class Merged:
    """The new bytes of a file, and the parts of the addition that were really added (a
    value already there is not ours to remove later)."""

    data: bytes
    added: Addition = field(default_factory=Addition)


def digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def merge(before: bytes | None, addition: Addition, what: str) -> Merged:
    if addition.block is not None:
        return _merge_block(before, addition.block)
    doc = _load_json(before, what)
    sets, appends = [], []
    for path, value in addition.sets:
        parent = _container(doc, path[:-1], what)
        current = parent.get(path[-1])
        if current is None:
            parent[path[-1]] = value
            sets.append((path, value))
        elif current != value:
            raise ConfigFileError(f"{what} already has {'.'.join(path)} set to something else; "
                                  "remove it (or run `swarm leave`) and join again")
    for path, value in addition.appends:
        parent = _container(doc, path[:-1], what)
        items = parent.setdefault(path[-1], [])
        if not isinstance(items, list):
            raise ConfigFileError(f"{what}: {'.'.join(path)} is not a list")
        if value not in items:
            items.append(value)
            appends.append((path, value))
    return Merged(_dump_json(doc), Addition(sets=tuple(sets), appends=tuple(appends)))


def unmerge(current: bytes, original: bytes | None, added: Addition, what: str) -> bytes | None:
    """`current` without what join added (the user edited the file since join). None when
    nothing of the file would be left and join created it."""
    if added.block is not None:
        text = current.decode()
        stripped = text.replace(added.block, "", 1)
        if not stripped.strip() and original is None:
            return None
        return stripped.encode()
    try:
        doc = json.loads(current)
    except ValueError:
        return current  # the user broke it since; leave their file alone
    if not isinstance(doc, dict):
        return current
    before = _load_json(original, what) if original is not None else {}
    for path, value in added.sets:
        parent = _walk(doc, path[:-1])
        if isinstance(parent, dict) and parent.get(path[-1]) == value:
            del parent[path[-1]]
            _prune(doc, before, path[:-1])
    for path, value in added.appends:
        parent = _walk(doc, path[:-1])
        items = parent.get(path[-1]) if isinstance(parent, dict) else None
        if isinstance(items, list) and value in items:
            items.remove(value)
            _prune(doc, before, path)
    if not doc and original is None:
        return None
    return _dump_json(doc)


def _merge_block(before: bytes | None, block: str) -> Merged:
    text = (before or b"").decode()
    if BLOCK_BEGIN in text:
        raise ConfigFileError("the file already holds a unified-swarm block; run `swarm leave`")
    sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    return Merged((text + sep + block).encode(), Addition(block=sep + block))


def toml_block(table: str, values: dict[str, Any]) -> str:
    """Our TOML table between the markers (strings, numbers, booleans, lists of strings and
    one level of inline table are all join writes)."""
    lines = [BLOCK_BEGIN, f"[{table}]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join([*lines, BLOCK_END]) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _load_json(data: bytes | None, what: str) -> dict[str, Any]:
    if data is None or not data.strip():
        return {}
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ConfigFileError(f"{what} is not valid JSON ({exc}); fix it and join again"
                              ) from None
    if not isinstance(doc, dict):
        raise ConfigFileError(f"{what} does not hold a JSON object")
    return doc


def _dump_json(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


def _container(doc: dict[str, Any], path: Sequence[str], what: str) -> dict[str, Any]:
    node = doc
    for key in path:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigFileError(f"{what}: {key!r} is not an object")
    return node


def _walk(doc: Any, path: Sequence[str]) -> Any:
    node = doc
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _prune(doc: dict[str, Any], before: dict[str, Any], path: Sequence[str]) -> None:
    """Remove containers along `path` that are empty now and were not in the original."""
    for depth in range(len(path), 0, -1):
        parent = _walk(doc, path[:depth - 1])
        key = path[depth - 1]
        if not isinstance(parent, dict) or key not in parent:
            continue
        node = parent[key]
        if node in ({}, []) and _walk(before, path[:depth]) is None:
            del parent[key]
