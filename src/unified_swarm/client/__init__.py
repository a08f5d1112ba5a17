"""The Python SDK: `Client` (blocking) and `AsyncClient` (asyncio), twins over one pure
base, talking to a swarm server over HTTP only (it never imports the server).

Errors come back as the `unified_swarm.errors` classes the server raised, so
`except LeaseLost:` works on both sides of the wire.
"""

from __future__ import annotations

from ..errors import ServerUnreachable
from .aio import AsyncClient
from .base import DEFAULT_URL, NO_RETRY, RetryPolicy
from .sync import Client

__all__ = ["DEFAULT_URL", "NO_RETRY", "AsyncClient", "Client", "RetryPolicy",
           "ServerUnreachable"]
