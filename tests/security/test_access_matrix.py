"""Who may call what: every route of the app against every credential, as DESIGN.md says,
on both stores.

The table below has a row per route (method and path template) and a column per
credential: none, a wrong token, the operator token, the session's own token, another
session's token. The route list is read from the app itself, so a new route fails the test
until it has a row. Each cell runs against state of its own (fresh sessions, a task they
hold, a topic), and every refused cell must leave every table (SQLite) or key (Redis) of the
store as it was. docs/security.md shows this table, rendered by `matrix_markdown()`; the
docs test holds the page to it.

Then: no token ever shows up where it should not. Every log record of the server (uvicorn's
access and error logs and ours, at DEBUG), every event in the store and on the event stream,
and every response of the whole test (bodies and headers) is searched for every token; only
the register reply that issued a session token may hold it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import secrets
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route, WebSocketRoute
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import LiveServer, make_settings_for
from tests.fuzz.digest import diff, dump, dump_redis
from unified_swarm.app import create_app
from unified_swarm.config import Settings

OPERATOR = "matrix-operator-" + secrets.token_urlsafe(24)
CREDS = ("none", "wrong", "operator", "own", "other")
WS = "WS"  # the method column of the WebSocket route

#: (method, path template) -> the status each credential gets:
#:  none, wrong, operator, own session, another session.
#: 204: a long-poll with nothing for the caller; 101: the WebSocket is accepted.
MATRIX: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    # operator only: register, drain, interrupt, cancel
    ("POST", "/session/register"): (401, 401, 201, 403, 403),
    ("POST", "/session/{session_id:path}/drain"): (401, 401, 200, 403, 403),
    ("POST", "/swarm/interrupt"): (401, 401, 200, 403, 403),
    ("DELETE", "/swarm/interrupt"): (401, 401, 200, 403, 403),
    ("POST", "/work/{task_id:path}/cancel"): (401, 401, 200, 403, 403),
    ("POST", "/swarm/emergency"): (401, 401, 201, 403, 403),
    ("POST", "/work/{task_id:path}/input"): (401, 401, 200, 403, 403),
    # a session, and only on its own tasks ("other" names the own session's task)
    ("POST", "/session/heartbeat"): (401, 401, 403, 200, 200),
    ("GET", "/work/request"): (401, 401, 403, 200, 204),
    ("GET", "/work/offer"): (401, 401, 403, 200, 204),
    ("POST", "/work/claim"): (401, 401, 403, 200, 409),
    ("POST", "/work/progress"): (401, 401, 403, 200, 403),
    ("POST", "/work/complete"): (401, 401, 403, 200, 403),
    ("POST", "/work/fail"): (401, 401, 403, 200, 403),
    ("POST", "/work/{task_id:path}/split"): (401, 401, 403, 201, 403),
    ("POST", "/work/release"): (401, 401, 403, 200, 403),
    ("POST", "/work/input-request"): (401, 401, 403, 200, 403),
    # leaving: that session, or the operator
    ("DELETE", "/session/{session_id:path}"): (401, 401, 200, 200, 403),
    # any valid token: the reads, adding work, knowledge
    ("GET", "/session/{session_id:path}"): (401, 401, 200, 200, 200),
    ("GET", "/sessions"): (401, 401, 200, 200, 200),
    ("POST", "/work"): (401, 401, 201, 201, 201),
    ("GET", "/work"): (401, 401, 200, 200, 200),
    ("GET", "/work/{task_id:path}"): (401, 401, 200, 200, 200),
    ("GET", "/knowledge"): (401, 401, 200, 200, 200),
    ("GET", "/knowledge/{topic:path}"): (401, 401, 200, 200, 200),
    ("PUT", "/knowledge/{topic:path}"): (401, 401, 200, 200, 200),
    ("DELETE", "/knowledge/{topic:path}"): (401, 401, 200, 200, 200),
    ("GET", "/swarm/status"): (401, 401, 200, 200, 200),
    ("GET", "/swarm/scheduler"): (401, 401, 200, 200, 200),
    # the MCP tools over streamable HTTP: any valid token (each tool then asks what its
    # HTTP call would; swarm_status reads)
    ("POST", "/mcp"): (401, 401, 200, 200, 200),
    # the event stream and the metrics: operator (metrics unless started public)
    (WS, "/swarm/realtime"): (401, 401, 101, 403, 403),
    ("GET", "/metrics"): (401, 401, 200, 403, 403),
    # autoscaling: operator only (this server scales no pools, so a pin finds none: 404)
    ("GET", "/swarm/scaling"): (401, 401, 200, 403, 403),
    ("POST", "/swarm/pools/{pool}/scale"): (401, 401, 404, 403, 403),
    # no token needed: liveness, the dashboard page and its files (they hold no data), the
    # API's own description
    ("GET", "/healthz"): (200, 200, 200, 200, 200),
    ("GET", "/"): (200, 200, 200, 200, 200),
    ("GET", "/dashboard"): (200, 200, 200, 200, 200),
    ("GET", "/openapi.json"): (200, 200, 200, 200, 200),
    ("GET", "/docs"): (200, 200, 200, 200, 200),
    ("GET", "/docs/oauth2-redirect"): (200, 200, 200, 200, 200),
}


def app_routes() -> set[tuple[str, str]]:
    """(method, template) of every route the app serves, through included routers."""
    with tempfile.TemporaryDirectory() as tmp:  # nothing is opened: the routes only
        app = create_app(Settings(token="x", data_dir=Path(tmp)))
    found: set[tuple[str, str]] = set()

    def walk(router: Any) -> None:
        for route in getattr(router, "routes", ()):
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner)
            elif isinstance(route, WebSocketRoute):
                found.add((WS, route.path))
            elif isinstance(route, Mount):
                found.add(("GET", route.path))
            elif isinstance(route, Route):
                found.update((m, route.path) for m in route.methods or () if m != "HEAD")
    walk(app.router)
    return found


def test_every_route_has_a_row() -> None:
    routes = app_routes()
    assert routes - set(MATRIX) == set(), "routes with no row in MATRIX: who may call them?"
    assert set(MATRIX) - routes == set(), "rows for routes the app does not have"


#: tries of one cell, each in fresh state, while the store answers 503 (a machine so loaded
#: that Redis misses the store's short timeouts): a 503 judges nothing, a wrong status fails
OVERLOADED = 5


class Overloaded(Exception):
    """Setting up a cell's state was answered 503: try again with fresh state."""


@dataclass
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Cell:
    """The state one cell runs in: two fresh sessions with capabilities of their own."""

    own: str
    own_token: str
    other: str
    other_token: str
    cap: str
    n: int


class World:
    """Sets up state over HTTP as the operator, recording every response it sees."""

    def __init__(self, server: LiveServer, responses: list[tuple[str, httpx.Response]]) -> None:
        self.server, self.responses = server, responses
        self.counter = itertools.count()
        self.http = httpx.Client(base_url=server.url, timeout=30,
                                 event_hooks={"response": [self._record]})

    def _record(self, response: httpx.Response) -> None:
        response.read()
        self.responses.append((response.request.url.path, response))

    def call(self, cred: str, cell: Cell, call: Call) -> httpx.Response:
        token = {"none": None, "wrong": secrets.token_urlsafe(32), "operator": OPERATOR,
                 "own": cell.own_token, "other": cell.other_token}[cred]
        headers = {**call.headers, **({"authorization": f"Bearer {token}"} if token else {})}
        return self.http.request(call.method, call.path, json=call.json, params=call.params,
                                 headers=headers)

    def op(self, method: str, path: str, **kw: Any) -> Any:
        return self.as_session(OPERATOR, method, path, **kw)

    def as_session(self, token: str, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, headers={"authorization": f"Bearer {token}"}, **kw)
        if r.status_code == 503:
            raise Overloaded(r.text)
        assert r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json() if r.content else None

    def state(self) -> dict[str, list[tuple[Any, ...]]]:
        """Everything the store holds but liveness (tests/fuzz/digest.py)."""
        settings = self.server.settings
        if settings.store == "sqlite":
            return dump(settings.sqlite_path)
        return dump_redis(settings.store, settings.redis_prefix)

    def events(self) -> list[tuple[Any, ...]]:
        return self.state()["events"]

    def cell(self) -> Cell:
        n = next(self.counter)
        own = self.op("POST", "/session/register", json={
            "id": f"own-{n}", "capabilities": [f"cap-{n}"], "heartbeat_interval": 3600})
        other = self.op("POST", "/session/register", json={
            "id": f"team/other-{n}", "capabilities": [f"else-{n}"], "heartbeat_interval": 3600})
        self.op("PUT", f"/knowledge/topic-{n}", json={"content": {"n": n}})
        return Cell(f"own-{n}", own["token"], f"team/other-{n}", other["token"], f"cap-{n}", n)

    def task(self, cell: Cell) -> str:
        task_id = f"job/{cell.n}-{next(self.counter)}"
        self.op("POST", "/work", json={"id": task_id, "type": cell.cap})
        return task_id

    def held(self, cell: Cell) -> tuple[str, int]:
        task_id = self.task(cell)
        got = self.as_session(cell.own_token, "POST", "/work/claim", json={"task_id": task_id})
        return task_id, int(got["lease"]["fencing_token"])


def _outcome(world: World, cell: Cell, what: str) -> Call:
    task_id, token = world.held(cell)
    body: dict[str, Any] = {"task_id": task_id, "fencing_token": token}
    extra: dict[str, dict[str, Any]] = {"progress": {"progress": 0.5},
                                        "complete": {"result": {"ok": 1}},
                                        "fail": {"error": "boom", "retry": False}}
    body.update(extra[what])
    return Call("POST", f"/work/{what}", body)


def _split(world: World, cell: Cell) -> Call:
    task_id, token = world.held(cell)
    return Call("POST", f"/work/{task_id}/split", {
        "fencing_token": token, "subtasks": [{"id": f"sub-{cell.n}", "type": "x"}]})


def _release(world: World, cell: Cell) -> Call:
    task_id, token = world.held(cell)
    return Call("POST", "/work/release", {"task_id": task_id, "fencing_token": token,
                                          "note": "checkpoint"})


def _input_request(world: World, cell: Cell) -> Call:
    task_id, token = world.held(cell)
    return Call("POST", "/work/input-request", {"task_id": task_id, "fencing_token": token,
                                                "question": "which one?"})


def _answer(world: World, cell: Cell) -> Call:
    task_id, token = world.held(cell)
    world.as_session(cell.own_token, "POST", "/work/input-request", json={
        "task_id": task_id, "fencing_token": token, "question": "which one?"})
    return Call("POST", f"/work/{task_id}/input", {"answer": "this one"})


def _emergency(world: World, cell: Cell) -> Call:
    # no interrupt: the other cells of this shared world keep claiming
    return Call("POST", "/swarm/emergency", {"task": {"type": cell.cap}, "interrupt": False,
                                             "preempt": False})


def _request(world: World, cell: Cell, what: str = "request") -> Call:
    world.task(cell)  # ready, for the own session's capability only
    return Call("GET", f"/work/{what}", params={"wait": 0})


#: one MCP tool call (the 2026-07-28 revision: no handshake, the version in `_meta`)
MCP_CALL = Call("POST", "/mcp", {
    "jsonrpc": "2.0", "id": 1, "method": "tools/call",
    "params": {"name": "swarm_status", "arguments": {}, "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "matrix", "version": "0"}}}},
    headers={"accept": "application/json, text/event-stream", "mcp-method": "tools/call",
             "mcp-name": "swarm_status"})


#: how to build each row's call in a cell's fresh state
CALLS: dict[tuple[str, str], Callable[[World, Cell], Call]] = {
    ("POST", "/session/register"): lambda w, c: Call(
        "POST", "/session/register", {"id": f"new-{c.n}", "capabilities": ["x"]}),
    ("POST", "/session/{session_id:path}/drain"): lambda w, c: Call(
        "POST", f"/session/{c.own}/drain"),
    ("POST", "/swarm/interrupt"): lambda w, c: Call("POST", "/swarm/interrupt",
                                                    {"reason": "matrix"}),
    ("DELETE", "/swarm/interrupt"): lambda w, c: Call("DELETE", "/swarm/interrupt"),
    ("POST", "/work/{task_id:path}/cancel"): lambda w, c: Call(
        "POST", f"/work/{w.task(c)}/cancel"),
    ("POST", "/session/heartbeat"): lambda w, c: Call("POST", "/session/heartbeat", {}),
    ("GET", "/work/request"): lambda w, c: _request(w, c),
    ("GET", "/work/offer"): lambda w, c: _request(w, c, "offer"),
    ("POST", "/mcp"): lambda w, c: MCP_CALL,
    ("POST", "/work/claim"): lambda w, c: Call("POST", "/work/claim", {"task_id": w.task(c)}),
    ("POST", "/work/progress"): lambda w, c: _outcome(w, c, "progress"),
    ("POST", "/work/complete"): lambda w, c: _outcome(w, c, "complete"),
    ("POST", "/work/fail"): lambda w, c: _outcome(w, c, "fail"),
    ("POST", "/work/{task_id:path}/split"): _split,
    ("POST", "/work/release"): _release,
    ("POST", "/work/input-request"): _input_request,
    ("POST", "/work/{task_id:path}/input"): _answer,
    ("POST", "/swarm/emergency"): _emergency,
    ("DELETE", "/session/{session_id:path}"): lambda w, c: Call("DELETE", f"/session/{c.own}"),
    ("GET", "/session/{session_id:path}"): lambda w, c: Call("GET", f"/session/{c.other}"),
    ("GET", "/sessions"): lambda w, c: Call("GET", "/sessions"),
    ("POST", "/work"): lambda w, c: Call("POST", "/work", {"type": c.cap}),
    ("GET", "/work"): lambda w, c: Call("GET", "/work", params={"capability": c.cap}),
    ("GET", "/work/{task_id:path}"): lambda w, c: Call("GET", f"/work/{w.task(c)}"),
    ("GET", "/knowledge"): lambda w, c: Call("GET", "/knowledge"),
    ("GET", "/knowledge/{topic:path}"): lambda w, c: Call("GET", f"/knowledge/topic-{c.n}"),
    ("PUT", "/knowledge/{topic:path}"): lambda w, c: Call(
        "PUT", f"/knowledge/topic-{c.n}", {"content": 2, "expected_version": 1}),
    ("DELETE", "/knowledge/{topic:path}"): lambda w, c: Call("DELETE", f"/knowledge/topic-{c.n}"),
    ("GET", "/swarm/status"): lambda w, c: Call("GET", "/swarm/status"),
    ("GET", "/swarm/scheduler"): lambda w, c: Call("GET", "/swarm/scheduler"),
    ("GET", "/metrics"): lambda w, c: Call("GET", "/metrics"),
    ("GET", "/swarm/scaling"): lambda w, c: Call("GET", "/swarm/scaling"),
    ("POST", "/swarm/pools/{pool}/scale"): lambda w, c: Call(
        "POST", "/swarm/pools/build/scale", {"desired": 1}),
    ("GET", "/healthz"): lambda w, c: Call("GET", "/healthz"),
    ("GET", "/"): lambda w, c: Call("GET", "/"),
    ("GET", "/dashboard"): lambda w, c: Call("GET", "/dashboard/app.js"),
    ("GET", "/openapi.json"): lambda w, c: Call("GET", "/openapi.json"),
    ("GET", "/docs"): lambda w, c: Call("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"): lambda w, c: Call("GET", "/docs/oauth2-redirect"),
}


class Captured(logging.Handler):
    """Every log record of the server side, formatted, at DEBUG."""

    #: the test's own clients log their request lines: not the server's logs
    CLIENT_SIDE = ("httpx", "httpcore", "websockets.client", "hpack")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(self.CLIENT_SIDE):
            self.lines.append(f"{record.name}: {record.getMessage()} {record.exc_text or ''}")


@pytest.fixture(scope="module")
def logs() -> Captured:
    return Captured()


@contextlib.contextmanager
def listening(handler: Captured) -> Iterator[None]:
    """Everything the server side logs, at DEBUG. Call it after uvicorn's Config is built:
    its dictConfig replaces the handlers of uvicorn's loggers (which do not propagate)."""
    names = ("", "uvicorn", "uvicorn.access", "uvicorn.error", "unified_swarm", "fastapi")
    listen = ("", "uvicorn", "uvicorn.access")
    old = {n: logging.getLogger(n).level for n in names}
    for n in listen:
        logging.getLogger(n).addHandler(handler)
    for n in names:
        logging.getLogger(n).setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for n in listen:
            logging.getLogger(n).removeHandler(handler)
        for n, level in old.items():
            logging.getLogger(n).setLevel(level)


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def world(tmp_path_factory: pytest.TempPathFactory, logs: Captured,
          request: pytest.FixtureRequest) -> Iterator[World]:
    base = Settings(data_dir=tmp_path_factory.mktemp("matrix"), token=OPERATOR,
                    rate_limit=0, idle_threshold=3600, task_claim_timeout=3600)
    server = LiveServer(make_settings_for(request.param, base, request))
    with listening(logs):
        server.start()
        w = World(server, [])
        try:
            yield w
        finally:
            w.http.close()
            server.stop()


CELLS = [(route, cred) for route in MATRIX for cred in CREDS]


def ws_status(world: World, cred: str, cell: Cell, via: str = "header") -> int:
    """The status of the event stream's handshake (101 when accepted)."""
    token = {"none": None, "wrong": secrets.token_urlsafe(32), "operator": OPERATOR,
             "own": cell.own_token, "other": cell.other_token}[cred]
    # live only (no `after`): the handshake is the question, and an unread replay would
    # hold the close handshake behind the client's full receive queue
    url = world.server.url.replace("http://", "ws://") + "/swarm/realtime?types=task"
    headers = {"authorization": f"Bearer {token}"} if token and via == "header" else {}
    if token and via == "query":
        url += f"&token={token}"
    try:
        with connect(url, additional_headers=headers, open_timeout=10):
            return 101
    except InvalidStatus as exc:
        body = bytes(exc.response.body or b"")
        world.responses.append(("/swarm/realtime", httpx.Response(
            exc.response.status_code, headers=dict(exc.response.headers.raw_items()),
            content=body)))
        return int(exc.response.status_code)


@pytest.mark.parametrize(("route", "cred"), CELLS, ids=[f"{r[0]} {r[1]} as {c}" for r, c in CELLS])
def test_cell(world: World, route: tuple[str, str], cred: str) -> None:
    expected = MATRIX[route][CREDS.index(cred)]
    for _ in range(OVERLOADED):  # a store too slow to answer (503) leaves a cell unjudged
        try:
            judged = _try_cell(world, route, cred, expected)
        except Overloaded:
            continue
        if judged is not None:
            status, what = judged
            assert status == expected, what
            break
    else:
        pytest.fail(f"the store answered 503 to all {OVERLOADED} tries of this cell")
    if route == ("POST", "/swarm/interrupt") and expected == 200:
        world.op("DELETE", "/swarm/interrupt")  # let the next cells claim


def _try_cell(world: World, route: tuple[str, str], cred: str,
              expected: int) -> tuple[int, Any] | None:
    """One try of a cell in fresh state: (status, what was sent), after checking that a
    refusal changed nothing; None when the call itself was answered 503."""
    cell = world.cell()
    if route[0] == WS:
        before = world.state()
        status = ws_status(world, cred, cell)
        if status != 503:
            assert world.state() == before
        return None if status == 503 and expected != 503 else (status, route)
    call = CALLS[route](world, cell)
    before = world.state()
    r = world.call(cred, cell, call)
    if r.status_code == 503 and expected != 503:
        return None
    if r.status_code >= 400:
        after = world.state()
        assert after == before, ("a refused call changed the store", diff(before, after))
        assert set(r.json()["error"]) == {"code", "message"}
    return r.status_code, (call, r.text[:300])


def test_the_stream_takes_the_query_token_and_logs_it_nowhere(world: World,
                                                              logs: Captured) -> None:
    """A browser cannot set headers on a WebSocket: `?token=` works, and the Guard takes it
    out of the query string before uvicorn writes its access log line."""
    cell = world.cell()
    assert ws_status(world, "operator", cell, via="query") == 101
    assert ws_status(world, "own", cell, via="query") == 403
    assert not [line for line in logs.lines if OPERATOR in line or cell.own_token in line]
    # uvicorn's WebSocket layer logs the handshake's request line at DEBUG: blanked there
    assert any("token=[redacted]" in line for line in logs.lines)


def test_the_state_digest_sees_a_write(world: World) -> None:
    """The digest a refused cell is held to covers the store: a real write moves it."""
    cell = world.cell()
    before = world.state()
    assert len(before) >= 8  # tables (SQLite) or keys (Redis), none of them liveness only
    world.op("PUT", f"/knowledge/topic-{cell.n}", json={"content": "moved"})
    changed = diff(before, world.state())
    assert changed and any("k" in name for name in changed), changed


def test_zz_no_token_leaks(world: World, logs: Captured) -> None:
    """Runs last (file order): search everything the test produced for every token."""
    issued: dict[str, httpx.Response] = {}
    for path, r in world.responses:
        if path == "/session/register" and r.status_code == 201:
            issued[r.json()["token"]] = r
    tokens = [OPERATOR, *issued]
    if len(tokens) < 2 * len(CELLS):
        pytest.skip("only part of the matrix ran")
    pattern = re.compile("|".join(re.escape(t) for t in tokens))
    # responses: a session token only in the reply that issued it; the operator's in none
    for path, r in world.responses:
        text = r.content.decode("utf-8", "replace") + repr(r.headers.multi_items())
        for hit in set(pattern.findall(text)):
            assert issued.get(hit) is r, f"a token leaked into a response of {path}"
    # logs: none at all (uvicorn access and error logs, ours), and they were on
    assert any("uvicorn.access" in line for line in logs.lines)
    assert any("authorization: bearer [redacted]" in line.lower() for line in logs.lines)
    leaked = [line[:200] for line in logs.lines if pattern.search(line)]
    assert not leaked, leaked
    # events: in the store, and as the stream replays them
    events = world.events()
    assert events and not [e for e in events if pattern.search(repr(e))]
    url = world.server.url.replace("http://", "ws://") + "/swarm/realtime?after=0"
    with connect(url, additional_headers={"authorization": f"Bearer {OPERATOR}"},
                 open_timeout=10) as ws:
        replayed = [str(ws.recv(timeout=10)) for _ in range(len(events))]
    assert len(replayed) == len(events)
    assert not [e for e in replayed if pattern.search(e)]
    print(f"\naccess matrix ({world.server.settings.store}): {len(CELLS)} cells; searched "
          f"{len(world.responses)} responses, "
          f"{len(logs.lines)} log records, {len(events)} events for {len(tokens)} tokens")


HEADS = {"none": "none", "wrong": "wrong token", "operator": "operator",
         "own": "the session", "other": "another session"}


def matrix_markdown() -> str:
    """MATRIX as the Markdown table docs/security.md shows (WS: 101 is "yes, upgraded")."""
    rows = ["| route | " + " | ".join(HEADS[c] for c in CREDS) + " |",
            "|---" * (len(CREDS) + 1) + "|"]
    for (method, path), statuses in MATRIX.items():
        route = f"`{method} {path.replace(':path', '')}`"
        rows.append(f"| {route} | " + " | ".join(str(s) for s in statuses) + " |")
    return "\n".join(rows) + "\n"
