"""The pure half of the SDK: what each call sends, how an answer is read, which failures
are worth another try. No I/O here; `Client` and `AsyncClient` only send what this builds.

Every endpoint is one function returning a `Call`: method, path, body, and how to turn the
answer's JSON into the typed result. Errors come back as the `SwarmError` class the server
raised (`{"error": {"code", "message"}}` -> `errors.from_code`).
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Protocol, Self, TypeVar, cast
from urllib.parse import quote

import httpx

from ..errors import (
    InvalidInput,
    RateLimited,
    ServerUnreachable,
    SwarmError,
    Unavailable,
    from_code,
)
from ..models import (
    MAX_CLAIM,  # tasks one call may claim
    MAX_WAIT,  # the protocol's one long-poll cap: refused here before sending
)
from .types import (
    JSON,
    Claimed,
    CompletedBatch,
    Emergency,
    Health,
    HeartbeatReply,
    Interrupt,
    KnowledgeEntry,
    Offered,
    OutcomeIn,
    RateLimit,
    Recorded,
    Registered,
    Session,
    Split,
    Status,
    Task,
    TaskDetail,
    TaskIn,
    TaskPage,
    Usage,
)

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8600"
#: how long past `wait` a long-poll may take before the client gives up on the answer
LONG_POLL_MARGIN = 10.0
Params = dict[str, str | int | float]


class _NoBody:
    """Marks a call without a request body (None is a valid JSON body: `null`)."""


NO_BODY: Any = _NoBody()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff for transient failures.

    `attempts` counts every try, the first one included; no retry starts once `budget`
    seconds have passed since the first. A `Retry-After` from the server lengthens the pause
    (never past the budget). `RetryPolicy(attempts=1)` turns retries off.
    """

    attempts: int = 4
    backoff: float = 0.2
    multiplier: float = 2.0
    max_backoff: float = 3.0
    budget: float = 10.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.budget < 0 or self.multiplier < 1:
            raise InvalidInput(f"unusable retry policy: {self!r}")
        if not 0 <= self.jitter < 1:
            raise InvalidInput("jitter must be within 0..1")

    def pause(self, retry: int, retry_after: float | None, elapsed: float,
              rand: float = 0.5) -> float | None:
        """Seconds to sleep before retry number `retry` (1 = the second try), or None when
        no retry is left. `rand` in [0, 1) spreads clients that failed together."""
        if retry >= self.attempts:
            return None
        pause = min(self.max_backoff, self.backoff * self.multiplier ** (retry - 1))
        pause *= 1 + self.jitter * (2 * rand - 1)
        if retry_after is not None:
            pause = max(pause, retry_after)
        if elapsed + pause > self.budget:
            return None
        return pause


NO_RETRY = RetryPolicy(attempts=1)


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP exchange: what to send and how to read a successful answer.

    `idempotent` calls may be repeated after any failure that may have reached the server
    (a read timeout, a dropped connection, a 503). So may a call that carries an idempotency
    `key` (sent as `Idempotency-Key`): every try sends the same key and the same body, so
    the server can answer a repeat with the first answer instead of acting twice. Other
    calls are repeated only when the request surely did nothing (no connection, 429): a 503
    may come from a store step that timed out on our side and still ran.
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Params | None = None
    body: JSON = NO_BODY
    idempotent: bool = False
    auth: bool = True
    read_timeout: float | None = None
    #: error statuses whose body is still the answer (healthz says "degraded" with 503)
    accept: frozenset[int] = field(default_factory=frozenset)
    #: the `Idempotency-Key` of a call that is not idempotent by itself (None: none sent)
    key: str | None = None

    @property
    def repeatable(self) -> bool:
        """May a try that possibly reached the server be repeated?"""
        return self.idempotent or self.key is not None


IDEMPOTENCY_HEADER = "idempotency-key"


def new_key() -> str:
    """A fresh idempotency key: 128 random bits, so two clients never share one."""
    return uuid.uuid4().hex


def keyed(key: str | None) -> str:
    """The key a non-idempotent call carries: the caller's own (to repeat a call across
    processes, say after a crash) or a fresh one. Every try of the call reuses it."""
    if key is not None and not (0 < len(key) <= 255 and key.isascii() and key.isprintable()):
        raise InvalidInput("an idempotency key is 1..255 printable ASCII characters")
    return key if key is not None else new_key()


def encode(value: JSON) -> bytes:
    """JSON the server accepts: no NaN or Infinity (refused here, not with a 422)."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"the request body is not JSON: {exc}") from None


def request_args(call: Call[Any], token: str | None, timeout: float) -> dict[str, Any]:
    """Keyword arguments for `httpx.Client.build_request` (the same for the async one)."""
    headers = {"accept": "application/json"}
    if token and call.auth:
        headers["authorization"] = f"Bearer {token}"
    if call.key is not None:
        headers[IDEMPOTENCY_HEADER] = call.key
    read = max(timeout, call.read_timeout or 0.0)
    args: dict[str, Any] = {
        "method": call.method, "url": call.path, "headers": headers,
        "timeout": httpx.Timeout(timeout, connect=min(timeout, 5.0), read=read),
    }
    if call.params:
        args["params"] = call.params
    if not isinstance(call.body, _NoBody):
        args["content"] = encode(call.body)
        headers["content-type"] = "application/json"
    return args


def parse_retry_after(raw: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date."""
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def error_from(status: int, headers: Mapping[str, str], content: bytes) -> SwarmError:
    """The SwarmError a non-2xx answer stands for; a body that is not ours still maps by
    its status (a proxy's 502 page, for one)."""
    retry_after = parse_retry_after(headers.get("retry-after"))
    code = message = ""
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        code, message = str(err.get("code") or ""), str(err.get("message") or "")
    elif isinstance(err, str):
        message = err
    if not message:
        text = content[:200].decode("utf-8", "replace").strip()
        message = f"HTTP {status}" + (f": {text}" if text else "")
    return from_code(code, message, status, retry_after)


def decode(call: Call[T], status: int, headers: Mapping[str, str], content: bytes) -> T:
    """The typed result of an answer, or raise the error it carries."""
    if not (200 <= status < 300 or status in call.accept):
        raise error_from(status, headers, content)
    if status == 204 or not content:
        return call.parse(None)
    try:
        body = json.loads(content)
    except ValueError:
        raise SwarmError(f"the server answered {status} with a body that is not JSON") from None
    return call.parse(body)


def untouched(exc: BaseException) -> bool:
    """Did this failure surely leave the server untouched? (The request never left, or the
    rate limit refused it before any routing.)"""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                      | RateLimited)


def is_transient(exc: BaseException, repeatable: bool) -> bool:
    """Worth another try? Never a 4xx other than 429.

    `repeatable`: the call is idempotent or carries an idempotency key (`Call.repeatable`).
    """
    if untouched(exc):
        return True  # safe for every call
    # a 503 may come from a store step that timed out here and still ran (a Redis script
    # keeps going), and a lost answer may follow a done deed: repeat only what is safe to
    return isinstance(exc, Unavailable | httpx.TransportError) and repeatable


def retry_after_of(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, SwarmError) else None


def unreachable(url: str, exc: httpx.TransportError) -> ServerUnreachable:
    what = "did not answer in time" if isinstance(exc, httpx.TimeoutException) else "failed"
    return ServerUnreachable(f"{url} {what}: {type(exc).__name__}: {exc}")


class CallHook(Protocol):
    """Told of every call: `begin` before the first try, `end` once it is settled.

    `outcome` is "ok" (a 2xx), "fail" (a 4xx: nothing happened) or "info" (no answer, or a
    5xx: it may or may not have taken effect); `value` is the result or the exception. A
    process killed between the two leaves a begun call without an end: indeterminate.
    """

    def begin(self, call: Call[Any], token: str | None) -> Any: ...

    def end(self, handle: Any, outcome: str, value: Any) -> None: ...


def outcome_of(exc: BaseException, touched: bool = False) -> str:
    """How a call that raised `exc` ended, for a CallHook: "fail" only when the server
    surely did nothing; a 4xx after a retried try that may have acted (`touched`: say the
    first add landed, and its repeat is refused as `AlreadyExists`) is "info"."""
    if isinstance(exc, SwarmError) and not isinstance(exc, ServerUnreachable):
        status = getattr(exc, "status", 500)
        return "fail" if 400 <= status < 500 and not touched else "info"
    return "info"


class BaseClient:
    """What both twins share: where, who, how long, how persistent.

    `token` is the operator token or a session token (`with_token` switches); `url` and
    `token` default to `SWARM_URL` and `SWARM_TOKEN`. Transient failures are retried by
    `retry` (a `RetryPolicy`); every error the server answers is raised as the
    `unified_swarm.errors` class it raised, and a server that cannot be reached as
    `ServerUnreachable` (an `Unavailable`). Pass `transport` to talk through any httpx
    transport (tests, proxies, a Unix socket), and `on_call` to hear of every settled call
    (see `CallHook`: `swarm worker` passes its operation journal when one is asked for).

    Register, add, request, claim and knowledge PUT are not idempotent by themselves: each
    call sends an `Idempotency-Key` (fresh, or `idempotency_key=` to repeat a call across
    processes), and only such calls and idempotent ones are retried after a 503 or a lost
    answer, with the same key and body.
    """

    def __init__(self, url: str | None, token: str | None, timeout: float,
                 retry: RetryPolicy | None, on_call: CallHook | None = None) -> None:
        self.url = (url or os.environ.get("SWARM_URL") or DEFAULT_URL).rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise InvalidInput(f"the server URL must start with http:// or https://: {url!r}")
        self.token = token if token is not None else os.environ.get("SWARM_TOKEN") or None
        if timeout <= 0:
            raise InvalidInput("timeout must be > 0")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._rand = random.Random()
        self.on_call = on_call
        #: False on a `with_token` copy: the connections are its original's to close
        self._owns_http = True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"  # never the token

    def with_token(self, token: str) -> Self:
        """The same client acting with another token (say, a session's own), sharing this
        one's connections. Close the original, not the copy."""
        twin = copy.copy(self)
        twin.token = token
        twin._owns_http = False
        return twin

    def _args(self, call: Call[Any]) -> dict[str, Any]:
        return request_args(call, self.token, self.timeout)

    def _tries(self, call: Call[T]) -> Tries[T]:
        return Tries(self, call)


class Tries(Generic[T]):
    """The tries of one call, without the I/O: the twins send and sleep, this decides
    what an answer or a failure means, how long to pause, and when to give up.

        for retry in tries:          # try numbers, 1 = the first
            try: value = tries.decode(<send>)
            except (httpx.TransportError, SwarmError) as exc: <sleep> tries.failed(exc, retry)
            else: return tries.ok(value)
    """

    def __init__(self, client: BaseClient, call: Call[T]) -> None:
        self.call, self.url, self.policy = call, client.url, client.retry
        self.rand, self.on_call = client._rand, client.on_call
        self.started = time.monotonic()
        self.handle = None if self.on_call is None else self.on_call.begin(call, client.token)
        self.touched = False  # may an earlier try have acted? (then a final 4xx settles nothing)

    def __iter__(self) -> Iterator[int]:
        return iter(range(1, self.policy.attempts + 1))

    def decode(self, response: httpx.Response) -> T:
        return decode(self.call, response.status_code, response.headers, response.content)

    def ok(self, value: T) -> T:
        self._settled("ok", value)
        return value

    def failed(self, exc: httpx.TransportError | SwarmError, retry: int) -> float:
        """The pause before the next try; raises the call's error when no retry is left."""
        pause = (self.policy.pause(retry, retry_after_of(exc),
                                   time.monotonic() - self.started, self.rand.random())
                 if is_transient(exc, self.call.repeatable) else None)
        if pause is None:
            err = unreachable(self.url, exc) if isinstance(exc, httpx.TransportError) else exc
            self._settled(outcome_of(err, self.touched), err)
            raise err from (exc if err is not exc else None)
        self.touched = self.touched or not untouched(exc)
        return pause

    def _settled(self, outcome: str, value: Any) -> None:
        if self.on_call is not None:
            self.on_call.end(self.handle, outcome, value)


# -- the endpoints -------------------------------------------------------------------------


def _seg(value: str, what: str) -> str:
    if not value:
        raise InvalidInput(f"{what} must not be empty")
    return quote(value, safe="")


def _topic(topic: str) -> str:
    if not topic:
        raise InvalidInput("a knowledge topic must not be empty")
    return quote(topic, safe="/")


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _key(name: str) -> Callable[[Any], Any]:
    return lambda body: body[name]


def healthz() -> Call[Health]:
    return Call("GET", "/healthz", lambda b: cast(Health, b), auth=False,
                idempotent=True, accept=frozenset({503}))


def register(capabilities: Iterable[str], *, id: str | None, name: str | None,
             max_concurrent_tasks: int | None, heartbeat_interval: float | None,
             metadata: Mapping[str, JSON] | None, key: str | None = None) -> Call[Registered]:
    body = {"capabilities": list(capabilities), **_given(
        id=id, name=name, max_concurrent_tasks=max_concurrent_tasks,
        heartbeat_interval=heartbeat_interval,
        metadata=dict(metadata) if metadata is not None else None)}
    return Call("POST", "/session/register", lambda b: cast(Registered, b), body=body,
                key=keyed(key))


def heartbeat(status: str | None) -> Call[HeartbeatReply]:
    return Call("POST", "/session/heartbeat", lambda b: cast(HeartbeatReply, b),
                body=_given(status=status), idempotent=True)


def leave(session_id: str) -> Call[Session]:
    return Call("DELETE", f"/session/{_seg(session_id, 'session id')}", _key("session"))


def drain(session_id: str) -> Call[Session]:
    return Call("POST", f"/session/{_seg(session_id, 'session id')}/drain", _key("session"))


def interrupt(reason: str) -> Call[Interrupt]:
    return Call("POST", "/swarm/interrupt", _key("interrupt"), body={"reason": reason},
                idempotent=True)


def lift_interrupt() -> Call[None]:
    return Call("DELETE", "/swarm/interrupt", lambda _: None, idempotent=True)


def sessions(status: str | None) -> Call[list[Session]]:
    return Call("GET", "/sessions", _key("sessions"), params=_given(status=status),
                idempotent=True)


def session(session_id: str) -> Call[Session]:
    return Call("GET", f"/session/{_seg(session_id, 'session id')}", _key("session"),
                idempotent=True)


def add_tasks(tasks: Iterable[TaskIn], key: str | None = None) -> Call[list[Task]]:
    return Call("POST", "/work", _key("tasks"), body={"tasks": [dict(t) for t in tasks]},
                key=keyed(key))


def task_in(type: str, **fields: Any) -> TaskIn:
    """One task object, leaving out every field not given (the server fills defaults)."""
    given = _given(**fields)
    if "dependencies" in given:
        given["dependencies"] = list(given["dependencies"])
    return cast(TaskIn, {"type": type, **given})


def add_task(task: TaskIn, key: str | None = None) -> Call[Task]:
    return Call("POST", "/work", lambda b: cast(Task, b["tasks"][0]), body=dict(task),
                key=keyed(key))


def list_tasks(status: str | None, capability: str | None, session: str | None,
               limit: int | None, cursor: str | None) -> Call[TaskPage]:
    params = _given(status=status, capability=capability, session=session, limit=limit,
                    cursor=cursor)
    return Call("GET", "/work", lambda b: cast(TaskPage, b), params=params, idempotent=True)


def get_task(task_id: str) -> Call[TaskDetail]:
    return Call("GET", f"/work/{_seg(task_id, 'task id')}", lambda b: cast(TaskDetail, b),
                idempotent=True)


def request_work(wait: float, key: str | None = None) -> Call[Claimed | None]:
    if not 0 <= wait <= MAX_WAIT:  # also refuses NaN
        raise InvalidInput(f"wait must be within 0..{MAX_WAIT:g} seconds, got {wait!r}")
    # a lost answer may have claimed a task: the key lets the server answer a repeat with
    # that same lease (and where it cannot, the heartbeat's `held` finds the stray)
    return Call("GET", "/work/request", lambda b: cast("Claimed | None", b),
                params={"wait": wait}, read_timeout=wait + LONG_POLL_MARGIN, key=keyed(key))


def _claims(body: Any) -> list[Claimed]:
    """A batch claim's answer: `{"claimed": [...]}`; a server from before batches ignores
    `max` and answers one task (`{"task", "lease"}`), or 204 for none."""
    if body is None:
        return []
    if "claimed" in body:
        return cast("list[Claimed]", body["claimed"])
    return [cast(Claimed, body)]


def request_batch(wait: float, max: int, key: str | None = None) -> Call[list[Claimed]]:
    """Up to `max` tasks claimed in one step (a worker with that many free slots)."""
    if not 0 <= wait <= MAX_WAIT:  # also refuses NaN
        raise InvalidInput(f"wait must be within 0..{MAX_WAIT:g} seconds, got {wait!r}")
    _check_max(max)
    return Call("GET", "/work/request", _claims, params={"wait": wait, "max": max},
                read_timeout=wait + LONG_POLL_MARGIN, key=keyed(key))


def _check_max(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CLAIM:
        raise InvalidInput(f"max must be an integer within 1..{MAX_CLAIM}, got {n!r}")
def offer_work(wait: float) -> Call[Offered | None]:
    if not 0 <= wait <= MAX_WAIT:  # also refuses NaN
        raise InvalidInput(f"wait must be within 0..{MAX_WAIT:g} seconds, got {wait!r}")
    # safe to repeat: the offer standing for the session is answered again
    return Call("GET", "/work/offer", lambda b: cast("Offered | None", b),
                params={"wait": wait}, read_timeout=wait + LONG_POLL_MARGIN, idempotent=True)


def claim(task_id: str, key: str | None = None) -> Call[Claimed]:
    return Call("POST", "/work/claim", lambda b: cast(Claimed, b), body={"task_id": task_id},
                key=keyed(key))


def progress(task_id: str, fencing_token: int, value: float, message: str | None,
             usage: Usage | None = None, rate_limit: RateLimit | None = None
             ) -> Call[Recorded]:
    """`rate_limit` (even `{}`) says the agent waits on the API now; a report without one
    says it no longer does."""
    body = {"task_id": task_id, "fencing_token": fencing_token, "progress": value,
            **_given(message=message, usage=_dict(usage), rate_limit=_dict(rate_limit))}
    return Call("POST", "/work/progress", lambda b: cast(Recorded, b), body=body,
                idempotent=True)


def complete(task_id: str, fencing_token: int, result: JSON, claim_next: int = 0,
             key: str | None = None, usage: Usage | None = None) -> Call[Recorded]:
    """With `claim_next`, the same call claims up to that many next tasks (`claimed`): no
    longer idempotent by itself, so it carries a key, as a request for work does. (A server
    from before batches ignores it and answers without `claimed`.)"""
    body: dict[str, JSON] = {"task_id": task_id, "fencing_token": fencing_token,
                             "result": result, **_given(usage=_dict(usage))}
    return _complete(lambda b: cast(Recorded, b), body, claim_next, key)


def complete_many(outcomes: Iterable[OutcomeIn], claim_next: int = 0,
                  key: str | None = None) -> Call[CompletedBatch]:
    """Several successes in one call, each recorded on its own (idempotent per fencing
    token); with `claim_next`, then up to that many next tasks."""
    body: dict[str, JSON] = {"outcomes": [dict(o) for o in outcomes]}
    if not body["outcomes"]:
        raise InvalidInput("a batch needs at least one outcome")
    return _complete(lambda b: cast(CompletedBatch, b), body, claim_next, key)


def _complete(read: Callable[[Any], T], body: dict[str, JSON], claim_next: int,
              key: str | None) -> Call[T]:
    """POST /work/complete: idempotent by itself (per fencing token), unless it also claims
    the next tasks (`max`): then it carries a key, as a request for work does."""
    if not claim_next:
        return Call("POST", "/work/complete", read, body=body, idempotent=True)
    _check_max(claim_next)
    return Call("POST", "/work/complete", read, body={**body, "max": claim_next},
                key=keyed(key))


def fail(task_id: str, fencing_token: int, error: str, retry: bool,
         usage: Usage | None = None) -> Call[Recorded]:
    body = {"task_id": task_id, "fencing_token": fencing_token, "error": error,
            "retry": retry, **_given(usage=_dict(usage))}
    return Call("POST", "/work/fail", lambda b: cast(Recorded, b), body=body, idempotent=True)


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


def split(task_id: str, fencing_token: int, subtasks: Iterable[TaskIn],
          merge: str | Mapping[str, Any]) -> Call[Split]:
    """The holder splits its task; the same split again answers the same subtasks."""
    body = {"fencing_token": fencing_token, "subtasks": [dict(t) for t in subtasks],
            "merge": merge if isinstance(merge, str) else dict(merge)}
    return Call("POST", f"/work/{_seg(task_id, 'task id')}/split",
                lambda b: cast(Split, b), body=body, idempotent=True)


def release(task_id: str, fencing_token: int, note: str | None) -> Call[Recorded]:
    body = {"task_id": task_id, "fencing_token": fencing_token, **_given(note=note)}
    return Call("POST", "/work/release", lambda b: cast(Recorded, b), body=body,
                idempotent=True)


def input_request(task_id: str, fencing_token: int, question: str) -> Call[Recorded]:
    body = {"task_id": task_id, "fencing_token": fencing_token, "question": question}
    return Call("POST", "/work/input-request", lambda b: cast(Recorded, b), body=body,
                idempotent=True)


def answer(task_id: str, text: str, key: str | None = None) -> Call[Task]:
    return Call("POST", f"/work/{_seg(task_id, 'task id')}/input", _key("task"),
                body={"answer": text}, key=keyed(key))


def emergency(task: TaskIn, interrupt: bool, preempt: bool,
              key: str | None = None) -> Call[Emergency]:
    body = {"task": dict(task), "interrupt": interrupt, "preempt": preempt}
    return Call("POST", "/swarm/emergency", lambda b: cast(Emergency, b), body=body,
                key=keyed(key))


def cancel(task_id: str, reason: str | None) -> Call[Task]:
    body = {"reason": reason} if reason is not None else NO_BODY
    return Call("POST", f"/work/{_seg(task_id, 'task id')}/cancel", _key("task"), body=body)


def get_knowledge(topic: str, version: int | None) -> Call[KnowledgeEntry]:
    return Call("GET", f"/knowledge/{_topic(topic)}", _key("entry"),
                params=_given(version=version), idempotent=True)


def put_knowledge(topic: str, content: JSON, expected_version: int | None,
                  tags: Iterable[str], key: str | None = None) -> Call[KnowledgeEntry]:
    body = {"content": content, "tags": list(tags), **_given(expected_version=expected_version)}
    return Call("PUT", f"/knowledge/{_topic(topic)}", _key("entry"), body=body, key=keyed(key))


def list_knowledge(tag: str | None) -> Call[list[KnowledgeEntry]]:
    return Call("GET", "/knowledge", _key("entries"), params=_given(tag=tag), idempotent=True)


def delete_knowledge(topic: str, expected_version: int | None) -> Call[KnowledgeEntry]:
    return Call("DELETE", f"/knowledge/{_topic(topic)}", _key("entry"),
                params=_given(expected_version=expected_version))


def status() -> Call[Status]:
    return Call("GET", "/swarm/status", lambda b: cast(Status, b), idempotent=True)


def scaling() -> Call[dict[str, Any]]:
    return Call("GET", "/swarm/scaling", lambda b: cast(dict[str, Any], b), idempotent=True)


def scale_pool(name: str, desired: int | None) -> Call[dict[str, Any]]:
    # the same pin twice is the same state: safe to repeat
    return Call("POST", f"/swarm/pools/{_seg(name, 'pool name')}/scale", _key("pool"),
                body={"desired": desired}, idempotent=True)
