"""`WS /swarm/realtime`: every event as JSON, resumable from a sequence number.

Query: `after=SEQ` (replay every event after SEQ first), `types=task,session.joined` (a full
type or a dotted prefix). Auth: the operator token as `?token=`, an `Authorization: Bearer`
header, or the subprotocol pair `["swarm", "bearer.<token>"]` (what the dashboard uses, so
the token stays out of request lines and access logs). A foreign `Origin` is refused; the
Guard has already checked `Host`.

The seam between replay and live, with no gap and no duplicate:

1. subscribe to the hub first: every event committed from now on lands in our buffer;
2. replay `events_after(last)` from the store in pages until a short page: everything
   committed before step 1 is in the store, so together the two cover every event;
3. drain the buffer, dropping each event with `seq <= last` (already replayed). Should a
   live event ever arrive past `last + 1` (a listener that skipped, e.g. a Redis reconnect),
   the hole is filled from the store before it is sent.

`last` advances over every event, sent or filtered out, so the filter never opens a gap.
If the buffer overflows during replay it is simply reset and the replay goes on (the store
has it all); if it overflows while live, the client is too slow: we send what is buffered
and close with 4001, the reason naming the `after=` to resume from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from ..core.auth import require_operator
from ..core.orchestrator import Orchestrator
from ..errors import Forbidden, InvalidInput, SwarmError
from ..jsonutil import dumps
from ..models import Event
from .events_hub import EventHub, EventSource, Subscription
from .guard import LOOPBACK_NAMES
from .responses import error_response

log = logging.getLogger("unified_swarm.realtime")
router = APIRouter(tags=["realtime"])

PAGE = 500
SUBPROTOCOL = "swarm"
#: the client fell too far behind: reconnect with the `after=` named in the close reason
CLOSE_TOO_SLOW = 4001
#: `after` is past the newest event (the store was replaced): reload state, then reconnect
CLOSE_AFTER_AHEAD = 4002
CLOSE_GOING_AWAY = 1001
MAX_TYPES = 32


class TypeFilter:
    """`types=task,session.joined`: an event matches a full type or a dotted prefix."""

    def __init__(self, raw: str | None) -> None:
        parts = [p.strip().strip(".") for p in (raw or "").split(",")]
        self.types = tuple(dict.fromkeys(p for p in parts if p))
        if len(self.types) > MAX_TYPES or any(len(t) > 64 for t in self.types):
            raise InvalidInput(f"types takes at most {MAX_TYPES} names of 64 characters")

    def __call__(self, event_type: str) -> bool:
        return not self.types or any(
            event_type == t or event_type.startswith(t + ".") for t in self.types)


def origin_allowed(origin: str | None, host: str) -> bool:
    """No Origin (not a browser), the server's own origin, or a loopback origin."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (file://, sandboxed frames) and anything odd
    if host and parts.netloc.lower() == host.lower():
        return True
    return (parts.hostname or "").lower() in {h.strip("[]") for h in LOOPBACK_NAMES}


def offered_token(ws: WebSocket) -> tuple[str | None, str | None]:
    """(token, subprotocol to accept) from the header, the subprotocols or the query."""
    auth = ws.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    offered = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
    subprotocol = SUBPROTOCOL if SUBPROTOCOL in offered else None
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), subprotocol
    for p in offered:
        if p.startswith("bearer.") and len(p) > len("bearer."):
            if subprotocol is None:
                raise InvalidInput(f"offer the {SUBPROTOCOL!r} subprotocol with the token")
            return p.removeprefix("bearer."), subprotocol
    return ws.query_params.get("token") or None, subprotocol


def parse_after(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInput(f"after must be a sequence number >= 0, got {raw[:32]!r}")
    return int(raw)


async def deny(ws: WebSocket, exc: SwarmError) -> None:
    """Refuse the handshake with the error's HTTP status, where the server can say it."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(error_response(exc))
    else:
        await ws.close(1008, exc.message[:120])


class Stream:
    """Replays then streams events to one socket. `send` delivers one JSON text frame."""

    def __init__(self, source: EventSource, sub: Subscription,
                 send: Callable[[str], Awaitable[None]], wanted: TypeFilter,
                 after: int | None) -> None:
        self.source, self.sub, self.send, self.wanted = source, sub, send, wanted
        self.last = after
        self.sent = 0

    async def run(self) -> tuple[int, str]:
        """Stream until the hub closes or the client is too slow; returns the close code
        and reason. A client that goes away shows up as an exception from `send`."""
        if self.last is not None:
            await self.catch_up()
        while True:
            for ev in await self.sub.next_batch():
                await self.live(ev)
            if self.sub.overflowed:
                where = "" if self.last is None else f" with after={self.last}"
                return CLOSE_TOO_SLOW, f"too slow: resume{where}"
            if self.sub.closed:
                return CLOSE_GOING_AWAY, "server shutting down"

    async def catch_up(self) -> None:
        """Replay from the store until a short page says we are level with the buffer."""
        assert self.last is not None
        while True:
            if self.sub.overflowed:
                self.sub.reset()  # what it dropped is in the store: the next page has it
            page = await self.source.events_after(self.last, PAGE)
            for ev in page:
                await self.emit(ev)
            if len(page) < PAGE and not self.sub.overflowed:
                return

    async def live(self, ev: Event) -> None:
        if self.last is None:  # live only: we start from the first event we hear
            self.last = ev.seq - 1
        if ev.seq <= self.last:
            return  # replayed already
        if ev.seq > self.last + 1:
            await self.fill(ev.seq)
        await self.emit(ev)

    async def fill(self, upto: int) -> None:
        """Send the events between `last` and `upto` that the listener did not bring."""
        assert self.last is not None
        while self.last < upto - 1:
            page = [e for e in await self.source.events_after(self.last, PAGE) if e.seq < upto]
            if not page:
                return
            for ev in page:
                await self.emit(ev)

    async def emit(self, ev: Event) -> None:
        self.last = ev.seq
        if self.wanted(ev.type):
            await self.send(dumps(ev.wire()))
            self.sent += 1


async def _check(ws: WebSocket, orch: Orchestrator) -> tuple[str | None, int | None,
                                                                TypeFilter]:
    if not origin_allowed(ws.headers.get("origin"), ws.headers.get("host", "")):
        raise Forbidden(f"Origin {ws.headers.get('origin')!r} may not open this stream")
    token, subprotocol = offered_token(ws)
    require_operator(await orch.authenticate(token), "the event stream")
    return subprotocol, parse_after(ws.query_params.get("after")), TypeFilter(
        ws.query_params.get("types"))


async def _ahead(source: EventSource, after: int | None) -> bool:
    """True when `after` names an event that does not exist (yet): a replaced store."""
    if not after:
        return False
    got = await source.events_after(after - 1, 1)
    return not got or got[0].seq != after


@router.websocket("/swarm/realtime")
async def realtime(ws: WebSocket) -> None:
    orch: Orchestrator = ws.app.state.orchestrator
    hub: EventHub = ws.app.state.hub
    try:
        subprotocol, after, wanted = await _check(ws, orch)
    except SwarmError as exc:
        return await deny(ws, exc)
    sub = hub.subscribe()  # before any read of the store: see the module docstring
    try:
        await ws.accept(subprotocol=subprotocol)
        if await _ahead(orch, after):
            await ws.close(CLOSE_AFTER_AHEAD, f"after={after} is past the newest event")
            return
        stream = Stream(orch, sub, ws.send_text, wanted, after)
        code, reason = await _until_gone(ws, stream.run())
        if code:
            await ws.close(code, reason)
    except (WebSocketDisconnect, OSError):
        pass  # the client went away mid-send
    except SwarmError as exc:  # the store failed under us: the client resumes later
        log.warning("event stream ended: %s", exc.message)
        with contextlib.suppress(Exception):
            await ws.close(1011, "store unavailable: reconnect with after=")
    finally:
        hub.unsubscribe(sub)


async def _until_gone(ws: WebSocket, streaming: Awaitable[tuple[int, str]]) -> tuple[int, str]:
    """Run the stream while listening for the client's close; (0, "") when it left first."""
    sender = asyncio.ensure_future(streaming)
    listener = asyncio.ensure_future(_wait_disconnect(ws))
    try:
        done, _ = await asyncio.wait({sender, listener}, return_when=asyncio.FIRST_COMPLETED)
        if sender in done:
            return sender.result()
        return 0, ""
    finally:
        for task in (sender, listener):
            task.cancel()
        await asyncio.gather(sender, listener, return_exceptions=True)


async def _wait_disconnect(ws: WebSocket) -> None:
    """Client frames are ignored; only their end matters."""
    while (await ws.receive())["type"] != "websocket.disconnect":
        pass
