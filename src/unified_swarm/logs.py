"""Logging hygiene: no token ever reaches a log line.

A browser's WebSocket cannot send headers, so a client may put the operator token in the
query string (`?token=`) or a subprotocol (`bearer.<token>`); uvicorn's access line carries
the query string and, at DEBUG, its WebSocket layer logs the whole handshake, Authorization
included. `RedactTokens` rewrites such records before any handler sees them. (The guard also
lifts `?token=` out of the request before uvicorn formats its access line: two layers.)
"""

from __future__ import annotations

import logging
import re

PATTERNS = (
    (re.compile(r"(?i)(authorization:\s*\S+\s+)\S+"), r"\1[redacted]"),
    (re.compile(r"(?i)([?&](?:access_)?token=)[^&\s\"']+"), r"\1[redacted]"),
    (re.compile(r"(?i)(bearer\.)[^,\s\"']+"), r"\1[redacted]"),
)


def redact(text: str) -> str:
    for pattern, blank in PATTERNS:
        text = pattern.sub(blank, text)
    return text


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def install() -> None:
    """Put `RedactTokens` on uvicorn's loggers, once (they do not propagate to the root)."""
    for name in ("uvicorn.error", "uvicorn.access", "uvicorn"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
