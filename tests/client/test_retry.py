"""The retry policy: a real loopback HTTP server that answers 503 a few times, a closed
port, and (only for which failures count as transient) httpx.MockTransport."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from unified_swarm import errors
from unified_swarm.client import AsyncClient, Client, RetryPolicy, ServerUnreachable
from unified_swarm.procs import free_port

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, budget=5)


class Flaky:
    """A loopback server answering `failures` errors, then 200 with a status body."""

    def __init__(self, failures: int, status: int = 503, retry_after: str = "0") -> None:
        self.failures, self.status, self.retry_after = failures, status, retry_after
        self.hits: list[str] = []
        self.keys: list[str | None] = []  # the Idempotency-Key of each hit
        self.bodies: list[bytes] = []
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                flaky.bodies.append(self.rfile.read(int(self.headers.get("content-length") or 0)))
                self._answer()

            def _answer(self) -> None:
                flaky.hits.append(self.path)
                flaky.keys.append(self.headers.get("idempotency-key"))
                if len(flaky.hits) <= flaky.failures:
                    body = {"error": {"code": "unavailable" if flaky.status == 503
                                      else "rate_limited", "message": "try later"}}
                    self._send(flaky.status, body, {"Retry-After": flaky.retry_after})
                else:
                    self._send(200, {"total_sessions": 0, "tasks_completed": len(flaky.hits)})

            def _send(self, status: int, body: object, headers: dict[str, str] | None = None,
                      ) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)

    def __enter__(self) -> Flaky:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def flaky() -> Iterator[Flaky]:
    with Flaky(failures=2) as server:
        yield server


def test_503_twice_then_200_succeeds(flaky: Flaky) -> None:
    with Client(flaky.url, "t", retry=FAST) as c:
        assert c.status()["tasks_completed"] == 3
    assert flaky.hits == ["/swarm/status"] * 3


async def test_async_503_twice_then_200_succeeds(flaky: Flaky) -> None:
    async with AsyncClient(flaky.url, "t", retry=FAST) as c:
        assert (await c.status())["tasks_completed"] == 3
    assert len(flaky.hits) == 3


def test_keyed_calls_retry_503_with_the_same_key_and_body(flaky: Flaky) -> None:
    """A 503 may come from a store step that still ran: a claim repeats only because it
    carries an Idempotency-Key, and every try carries the same one and the same body."""
    with Client(flaky.url, "t", retry=FAST) as c:
        c.claim("x")
    assert flaky.hits == ["/work/claim"] * 3
    assert flaky.keys[0] is not None and len(flaky.keys[0]) == 32
    assert len(set(flaky.keys)) == 1 and len(set(flaky.bodies)) == 1


def test_each_call_gets_a_key_of_its_own_or_the_one_given(flaky: Flaky) -> None:
    with Flaky(failures=0) as server, Client(server.url, "t", retry=FAST) as c:
        c.claim("x")
        c.claim("x")
        c.claim("x", idempotency_key="submit-7")
        c.status()
    assert server.keys[0] != server.keys[1] and server.keys[2] == "submit-7"
    assert server.keys[3] is None  # a read needs none
    with pytest.raises(errors.InvalidInput):
        Client(server.url, "t").claim("x", idempotency_key="a\nb")


@pytest.mark.parametrize("call", ["cancel", "leave", "delete_knowledge"])
def test_unkeyed_calls_that_are_not_idempotent_do_not_repeat_a_503(call: str) -> None:
    transport, seen = scripted([503])
    with Client("http://swarm.test", "t", retry=FAST, transport=transport) as c, \
            pytest.raises(errors.Unavailable):
        getattr(c, call)("x")
    assert len(seen) == 1


def test_retries_stop_after_the_attempts() -> None:
    with Flaky(failures=100) as server, Client(server.url, "t", retry=FAST) as c:
        with pytest.raises(errors.Unavailable) as raised:
            c.status()
        assert raised.value.retry_after == 0.0 and not isinstance(raised.value,
                                                                  ServerUnreachable)
        assert len(server.hits) == FAST.attempts


def test_429_with_retry_after_past_the_budget_is_raised_at_once() -> None:
    policy = RetryPolicy(attempts=5, backoff=0.01, budget=2)
    with Flaky(failures=1, status=429, retry_after="30") as server, \
            Client(server.url, "t", retry=policy) as c:
        with pytest.raises(errors.RateLimited) as raised:
            c.status()
        assert raised.value.retry_after == 30.0 and len(server.hits) == 1


def test_429_with_a_short_retry_after_waits_it_out() -> None:
    with Flaky(failures=1, status=429, retry_after="1") as server, \
            Client(server.url, "t", retry=FAST) as c:
        t0 = time.monotonic()
        c.status()
        assert time.monotonic() - t0 >= 0.95 and len(server.hits) == 2


def test_closed_port_is_server_unreachable_after_retries() -> None:
    policy = RetryPolicy(attempts=3, backoff=0.01, budget=5)
    t0 = time.monotonic()
    with Client(f"http://127.0.0.1:{free_port()}", "t", retry=policy) as c, \
            pytest.raises(ServerUnreachable) as raised:
        c.status()
    assert isinstance(raised.value, errors.Unavailable)
    assert isinstance(raised.value.__cause__, httpx.ConnectError)
    assert time.monotonic() - t0 < 5


# -- which failures are transient: a scripted transport (the only mock in these tests) ----


def scripted(failures: list[Exception | int]) -> tuple[httpx.MockTransport, list[str]]:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if len(seen) <= len(failures):
            failure = failures[len(seen) - 1]
            if isinstance(failure, Exception):
                raise failure
            return httpx.Response(failure, json={"error": {"code": "x", "message": "no"}})
        return httpx.Response(200, json={"task": {"id": "t"}, "duplicate": True})

    return httpx.MockTransport(handle), seen


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422, 500])
def test_other_errors_are_never_retried(status: int) -> None:
    transport, seen = scripted([status])
    with Client("http://swarm.test", "t", retry=FAST, transport=transport) as c, \
            pytest.raises(errors.SwarmError):
        c.complete("t", 1)
    assert len(seen) == 1


def test_outcome_calls_retry_a_lost_answer() -> None:
    """complete/fail/progress are idempotent on the server: a read timeout repeats them."""
    lost = httpx.ReadTimeout("answer lost")
    transport, seen = scripted([lost, httpx.RemoteProtocolError("dropped")])
    with Client("http://swarm.test", "t", retry=FAST, transport=transport) as c:
        assert c.complete("t", 1, {"r": 1})["duplicate"] is True
    assert seen == ["/work/complete"] * 3


@pytest.mark.parametrize("call", ["request_work", "claim", "add_tasks", "register",
                                  "put_knowledge"])
def test_keyed_calls_repeat_a_lost_answer_with_the_same_key(call: str) -> None:
    """A call whose answer was lost may have happened: it is repeated only with its key, so
    the server can answer the repeat with the first answer."""
    keys: list[str | None] = []
    bodies: list[bytes] = []

    def handle(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("idempotency-key"))
        bodies.append(request.content)
        if len(keys) == 1:
            raise httpx.ReadTimeout("answer lost")
        return httpx.Response(204 if call == "request_work" else 200,
                              json={"tasks": [], "entry": {}})

    args: dict[str, tuple[object, ...]] = {
        "request_work": (1,), "claim": ("t",), "add_tasks": ([{"type": "x"}],),
        "register": (["build"],), "put_knowledge": ("k", 1)}
    with Client("http://swarm.test", "t", retry=FAST,
                transport=httpx.MockTransport(handle)) as c:
        getattr(c, call)(*args[call])
    assert len(keys) == 2 and keys[0] is not None and keys[0] == keys[1]
    assert bodies[0] == bodies[1]


def test_connect_errors_are_retried_for_every_call() -> None:
    transport, seen = scripted([httpx.ConnectError("refused")] * 2)
    with Client("http://swarm.test", "t", retry=FAST, transport=transport) as c:
        c.claim("t")
    assert len(seen) == 3


async def test_async_twin_uses_the_same_rules() -> None:
    seen: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        if len(seen) in (1, 3):
            raise httpx.ReadTimeout("lost")
        return httpx.Response(200, json={"task": {"id": "t"}, "duplicate": False})

    async with AsyncClient("http://swarm.test", "t", retry=FAST,
                           transport=httpx.MockTransport(handle)) as c:
        assert (await c.fail("t", 1, "boom"))["duplicate"] is False
        with pytest.raises(ServerUnreachable):
            await c.cancel("t")  # first answer lost again: no key, not repeated
    assert len(seen) == 3


def test_no_retry_policy_tries_once() -> None:
    transport, seen = scripted([503])
    with Client("http://swarm.test", "t", retry=RetryPolicy(attempts=1),
                transport=transport) as c, pytest.raises(errors.Unavailable):
        c.status()
    assert len(seen) == 1


class Outcomes:
    """A CallHook keeping each settled call's outcome."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def begin(self, call: object, token: str | None) -> None:
        return None

    def end(self, handle: object, outcome: str, value: object) -> None:
        self.seen.append(outcome)


def test_a_refusal_after_a_try_that_may_have_acted_is_indeterminate() -> None:
    """The first add landed but its answer was lost; the repeat (same key, on a server that
    does not yet keep answers by key) is refused as AlreadyExists. The call did act: the
    journal must say "info" (maybe), not "fail" (nothing happened)."""
    def handle(request: httpx.Request) -> httpx.Response:
        if len(hook.seen) == 0 and not handled:
            handled.append(1)
            raise httpx.ReadTimeout("answer lost")
        return httpx.Response(409, json={"error": {"code": "already_exists", "message": "x"}})

    hook, handled = Outcomes(), list[int]()
    with Client("http://swarm.test", "t", retry=FAST, transport=httpx.MockTransport(handle),
                on_call=hook) as c:
        with pytest.raises(errors.AlreadyExists):
            c.add_tasks([{"type": "x", "id": "a"}])
        handled.append(1)
        with pytest.raises(errors.AlreadyExists):  # refused at the first try: nothing done
            c.add_tasks([{"type": "x", "id": "a"}])
    assert hook.seen == ["info", "fail"]
