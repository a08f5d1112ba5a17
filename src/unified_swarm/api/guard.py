"""The ASGI guard in front of every route: the request head, Host allow-list, body cap,
per-token rate limit.

A token earns a bucket of its own once it has authenticated (the auth dependency marks the
scope); until then its requests draw on one bucket per client address, so a flood of
made-up tokens, each of which would otherwise get a fresh burst, is limited like one token.

It runs before any parsing, so a 1 GiB body is refused from its Content-Length (or, when
chunked, as soon as the running count passes the cap) without being buffered, and a
flooding token is answered 429 before it costs a store round-trip.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from .. import logs
from ..config import Settings
from ..errors import HeadersTooLarge, PayloadTooLarge, RateLimited, SwarmError
from ..errors import InvalidInput as _Invalid
from .responses import error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
#: the largest request head (header names and values) we read on: the 4 x 8 KiB of nginx's
#: default buffers; a token-carrying API client sends well under 1 KiB
MAX_HEADER_BYTES = 32 * 1024
#: headers that must come once: sent twice, the rate limiter (this guard) and the auth check
#: (the handler) could each read a different one (RFC 9110 5.3; RFC 9112 3.2 for Host)
SINGLETONS = frozenset({"host", "authorization", "content-length"})
#: no id, topic or route holds a control character; a decoded %00 or %0A in the path is an
#: attack on a parser somewhere (Starlette's `$` even lets a final "\n" slip past a route)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def lift_query_token(scope: Scope) -> None:
    """Take `?token=` out of the query string, in place: uvicorn writes its access log line
    from this very scope, so a token there would be logged. On a WebSocket (a browser cannot
    set its headers) it becomes the Authorization header; plain HTTP takes only the header."""
    query = scope.get("query_string", b"")
    if b"token" not in query:
        return
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    tokens = [v for k, v in pairs if k == "token"]
    if not tokens:
        return
    scope["query_string"] = urlencode([(k, v) for k, v in pairs if k != "token"]).encode()
    headers = list(scope.get("headers", []))
    if scope["type"] == "websocket" and not any(k.lower() == b"authorization" for k, _ in headers):
        scope["headers"] = [*headers, (b"authorization", f"Bearer {tokens[0]}".encode())]


class _TooLarge(BaseException):
    """Raised from receive(); a BaseException so no framework layer turns it into a 400."""


class TokenBuckets:
    """A token bucket per caller key (a token's digest, or the client address)."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds until one request will be."""
        now = self.clock()
        level, last = self._buckets.get(key, (self.burst, now))
        level = min(self.burst, level + (now - last) * self.rate)
        if level < 1:
            self._buckets[key] = (level, now)
            return (1 - level) / self.rate
        self._buckets[key] = (level - 1, now)
        if len(self._buckets) > 100_000:  # forget callers idle long enough to be full again
            self._buckets = {k: v for k, v in self._buckets.items()
                             if v[1] > now - self.burst / self.rate}
        return 0.0


#: verified token digests remembered (least recently used forgotten first)
MAX_VERIFIED = 10_000
#: set in the scope by the auth dependency once the bearer token is a real one
AUTHENTICATED = "swarm.authenticated"


class Guard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        hosts = {*LOOPBACK_NAMES, settings.host, *settings.allowed_hosts}
        self.any_host = "*" in hosts or settings.host in ("0.0.0.0", "::")
        self.hosts = {h.lower() for h in hosts}
        self.buckets = (TokenBuckets(settings.rate_limit, settings.rate_burst, time.monotonic)
                        if settings.rate_limit > 0 else None)
        self.verified: OrderedDict[str, None] = OrderedDict()
        logs.install()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        lift_query_token(scope)
        try:
            headers = self._check_head(scope)
            self._check_host(headers.get("host", ""))
            key = self._check_rate(scope, headers)
            if scope["type"] == "http":
                self._check_length(headers.get("content-length"))
        except SwarmError as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return None
            return await error_response(exc)(scope, receive, send)
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        return await self._capped(scope, receive, send, key)

    def _check_head(self, scope: Scope) -> dict[str, str]:
        """The headers as a dict, once the head is small, its singletons single and its
        path free of control characters."""
        raw = scope.get("headers", [])
        if sum(len(k) + len(v) for k, v in raw) > MAX_HEADER_BYTES:
            raise HeadersTooLarge(f"request headers are over {MAX_HEADER_BYTES} bytes")
        headers: dict[str, str] = {}
        for k, v in raw:
            name = k.decode("latin-1").lower()
            if name in headers and name in SINGLETONS:
                raise _Invalid(f"the {name} header is sent more than once")
            headers[name] = v.decode("latin-1")
        if CONTROL.search(scope.get("path", "")):
            raise _Invalid("the path holds a control character")
        return headers

    def _check_host(self, host: str) -> None:
        if self.any_host:
            return
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name.lower() not in self.hosts:
            raise _Invalid(f"Host {host!r} is not allowed (see SWARM_ALLOWED_HOSTS)")

    def _check_rate(self, scope: Scope, headers: dict[str, str]) -> str | None:
        """Take one request from the caller's bucket; the token's digest, if it has one."""
        if self.buckets is None or scope.get("path") == "/healthz":
            return None
        auth = headers.get("authorization", "")
        key = hashlib.sha256(auth.encode()).hexdigest() if auth else None
        if key is not None and key in self.verified:
            self.verified.move_to_end(key)
            bucket = key
        else:  # no token, or one not (yet) seen to authenticate: the address's bucket
            client = scope.get("client") or ("?", 0)
            bucket = f"addr:{client[0]}"
        wait = self.buckets.take(bucket)
        if wait > 0:
            raise RateLimited("too many requests for this token", retry_after=wait)
        return key

    def _answered(self, key: str | None, scope: Scope, status: int) -> None:
        """After the handler: a token that authenticated gets a bucket of its own."""
        if key is None:
            return
        if scope.get(AUTHENTICATED):
            self.verified[key] = None
            self.verified.move_to_end(key)
            if len(self.verified) > MAX_VERIFIED:
                self.verified.popitem(last=False)
        elif status == 401:
            self.verified.pop(key, None)

    def _check_length(self, raw: str | None) -> None:
        if raw is None:
            return
        try:
            length = int(raw)
        except ValueError:
            raise _Invalid("Content-Length is not a number") from None
        if length > self.settings.max_body_bytes:
            raise PayloadTooLarge(
                f"request body of {length} bytes is over the {self.settings.max_body_bytes} "
                "byte limit")

    async def _capped(self, scope: Scope, receive: Receive, send: Send,
                      key: str | None) -> None:
        limit = self.settings.max_body_bytes
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return msg

        async def tracked_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
                self._answered(key, scope, msg["status"])
            await send(msg)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                exc = PayloadTooLarge(f"request body is over the {limit} byte limit")
                await error_response(exc)(scope, receive, send)
