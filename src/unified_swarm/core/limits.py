"""What the swarm accepts: the grammar of ids, names and topics, and every input cap.

Checked here, in core, for every interface alike (the API, a future MCP bridge, tests that
call the Orchestrator); anything past them is a 4xx before it reaches the store. The API's
schemas read the same constants, so its OpenAPI document says what is accepted.
"""

from __future__ import annotations

import re

from ..errors import InvalidInput, PayloadTooLarge
from ..jsonutil import dumpb
from ..models import JSON, MAX_CLAIM, MAX_WAIT

#: Ids and topics may hold "/", but each "/"-separated segment must be a real name: none
#: empty, "." or "..", which URL normalisation rewrites (GET /work/a/../b reaches /work/b),
#: so everything stays addressable and nothing looks like a path traversal.
SEGMENTS = r"(?!/)(?!.*//)(?!.*/$)(?!(?:.*[/\\])?\.\.?(?:[/\\]|$))"
#: the grammar of ids and names, as JSON Schema (ECMA) patterns for the API's schema...
ID_PATTERN = "^" + SEGMENTS + r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
#: ...and as Python regexes, ending in `\Z`: `$` also matches before a final "\n"
ID_RE = re.compile(ID_PATTERN.removesuffix("$") + r"\Z")
NAME_RE = re.compile(NAME_PATTERN.removesuffix("$") + r"\Z")

#: A topic is a name people read: no controls (C0, DEL, C1) and none of the invisible or
#: bidi format characters that make one name look like another (soft hyphen, zero-width
#: and joiners, LRM/RLM, embeddings, overrides and isolates, line/paragraph separators,
#: BOM); its "/"-separated segments as in ids (`SEGMENTS`). Written with escapes both
#: Python and JSON Schema (ECMA) regexes read alike.
TOPIC_PATTERN = ("^" + SEGMENTS + r"[^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e"
                 r"\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]{1,256}$")
TOPIC_RE = re.compile(TOPIC_PATTERN.removesuffix("$") + r"\Z")

# the caps of a task (the configurable ones, body and payload sizes, are in config.Settings)
MAX_TYPE = 64
MAX_TITLE = 1000
MAX_ROI = 32
MAX_DEPENDENCIES = 1000
MAX_ATTEMPTS = 100
MAX_ESTIMATED_HOURS = 1e6
MIN_PRIORITY = 1
#: knowledge topics one task may name for its context
MAX_CONTEXT_TOPICS = 100


def check_id(value: str, what: str) -> None:
    if not ID_RE.match(value):
        raise InvalidInput(f"{what} {value!r} must match {ID_RE.pattern}")


def check_name(value: str, what: str) -> None:
    if not NAME_RE.match(value):
        raise InvalidInput(f"{what} {value!r} must match {NAME_RE.pattern}")


def check_topic(topic: str) -> None:
    if not TOPIC_RE.match(topic):
        raise InvalidInput("a knowledge topic is 1..256 printable characters (no controls, "
                           "no invisible or bidi format characters), and no empty, '.' or "
                           "'..' segment between its '/'")


def check_wait(wait: float) -> None:
    """The protocol's long-poll cap (the server may cut it shorter: Settings.max_wait)."""
    if wait > MAX_WAIT:
        raise InvalidInput(f"wait is at most {MAX_WAIT:g} seconds")


def check_batch_claim(n: int, what: str = "max") -> None:
    if not 1 <= n <= MAX_CLAIM:
        raise InvalidInput(f"{what} must be within 1..{MAX_CLAIM}, got {n}")


def check_size(value: JSON, limit: int, what: str) -> None:
    """A task's input or result, a session's metadata or a knowledge entry past the limit is
    refused before it reaches the store: it is served back on every read."""
    size = len(dumpb(value))
    if size > limit:
        raise PayloadTooLarge(f"{what} is {size} bytes, over the {limit} byte limit")
