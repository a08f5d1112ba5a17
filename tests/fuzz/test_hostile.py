"""Hostile requests: each gets a 4xx, and the whole store is byte-for-byte what it was.

The curated list of tests/api/test_bad_input.py (88 requests, HTTP-visible digest) grows
here by the requests below. Each runs against a swarm with state in it, and a digest of
every table of the SQLite file (tests/fuzz/digest.py: sessions and token hashes, tasks,
dependencies, attempts, every knowledge version, the event log) is taken before and after
each one. Requests a client library would tidy up (dot segments, bad framing, NUL bytes,
giant or repeated headers, methods uvicorn does not know) go out as raw bytes on a socket.
"""

from __future__ import annotations

import contextlib
import re
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route, WebSocketRoute

from tests.conftest import LiveServer
from unified_swarm.app import create_app
from unified_swarm.config import Settings

from .digest import diff, dump

MiB = 1024 * 1024
OPERATOR = "hostile-operator-token"
NO_BODY: Any = object()


@dataclass(frozen=True)
class Hostile:
    name: str
    who: str = "op"  # op, w1 (holds "held"), w2 (idle), w3 (left), none, bad
    method: str = "GET"
    path: str = "/"
    json: Any = NO_BODY
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    #: sent as-is on a socket; %HOST%, %OP%, %W1%, %W2% are filled in
    raw: bytes | None = None
    status: int = 400
    #: refused by the HTTP server before the app (its plain-text 400, not our JSON shape)
    front: bool = False
    #: the body is streamed in chunks of this size, with no Content-Length
    chunked: int = 0


def deep(n: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(n):
        value = [value]
    return value


def deep_obj(n: int) -> Any:
    value: Any = 1
    for _ in range(n):
        value = {"a": value}
    return value


def raw(method: str, path: bytes, *headers: bytes, body: bytes = b"", auth: bytes = b"%OP%",
        host: bytes = b"%HOST%") -> bytes:
    lines = [method.encode() + b" " + path + b" HTTP/1.1", b"Host: " + host,
             b"Connection: close"]
    if auth:
        lines.append(b"Authorization: Bearer " + auth)
    lines += list(headers)
    if body:
        lines += [b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


TASK = {"type": "build"}
PUT = {"content": {"v": 2}}


def body_cases() -> list[Hostile]:
    """Oversized, deep, wide, wrongly typed and wrongly encoded bodies."""
    return [
        # size
        Hostile("body one byte over 16 MiB", method="POST", path="/work",
                content=b" " * (16 * MiB + 1), status=413),
        Hostile("chunked body over 16 MiB", method="POST", path="/work",
                content=b" " * (17 * MiB), chunked=MiB, status=413),
        Hostile("Content-Length of 10 GiB", raw=raw("POST", b"/work",
                b"Content-Type: application/json", b"Content-Length: 10737418240"),
                status=413),
        Hostile("input one byte over 1 MiB", method="POST", path="/work",
                json={**TASK, "input": "x" * (MiB - 1)}, status=413),
        Hostile("input of 100k keys", method="POST", path="/work",
                json={**TASK, "input": {f"k{i}": i for i in range(100_000)}}, status=413),
        Hostile("knowledge content over 1 MiB", method="PUT", path="/knowledge/plan",
                json={"content": ["x" * 1000] * 1100}, status=413),
        Hostile("result over 1 MiB", who="w1", method="POST", path="/work/complete",
                json={"task_id": "held", "fencing_token": 1, "result": "y" * (MiB + 1)},
                status=413),
        Hostile("metadata over 1 MiB", method="POST", path="/session/register",
                json={"capabilities": ["build"], "metadata": {"blob": "z" * (MiB + 1)}},
                status=413),
        # depth
        Hostile("input nested 65 deep", method="POST", path="/work",
                json={**TASK, "input": deep(64)}, status=400),
        Hostile("input of 100 nested objects", method="POST", path="/work",
                json={**TASK, "input": deep_obj(100)}, status=400),
        Hostile("100k open brackets", method="POST", path="/work",
                content=b"[" * 100_000, status=422),
        Hostile("knowledge content nested 200 deep", method="PUT", path="/knowledge/plan",
                json={"content": deep(200)}, status=400),
        Hostile("result nested 200 deep", who="w1", method="POST", path="/work/complete",
                json={"task_id": "held", "fencing_token": 1, "result": deep(200)},
                status=400),
        Hostile("metadata nested 200 deep", method="POST", path="/session/register",
                json={"capabilities": ["build"], "metadata": {"m": deep(200)}}, status=400),
        # batch and list caps
        Hostile("batch of 5,000 tasks", method="POST", path="/work",
                json={"tasks": [TASK] * 5000}, status=400),
        Hostile("1,001 dependencies", method="POST", path="/work",
                json={**TASK, "dependencies": [f"d{i}" for i in range(1001)]}, status=422),
        Hostile("101 capabilities", method="POST", path="/session/register",
                json={"capabilities": [f"c{i}" for i in range(101)]}, status=422),
        Hostile("101 tags", method="PUT", path="/knowledge/plan",
                json={**PUT, "tags": [f"t{i}" for i in range(101)]}, status=422),
        # string caps
        Hostile("title of 1,001 chars", method="POST", path="/work",
                json={**TASK, "title": "t" * 1001}, status=422),
        Hostile("type of 65 chars", method="POST", path="/work", json={"type": "b" * 65},
                status=422),
        Hostile("roi of 33 chars", method="POST", path="/work", json={**TASK, "roi": "r" * 33},
                status=422),
        Hostile("error of 65,537 chars", who="w1", method="POST", path="/work/fail",
                json={"task_id": "held", "fencing_token": 1, "error": "e" * 65537},
                status=422),
        Hostile("progress message of 4,097 chars", who="w1", method="POST",
                path="/work/progress", json={"task_id": "held", "fencing_token": 1,
                                             "progress": 0.5, "message": "m" * 4097},
                status=422),
        Hostile("interrupt reason of 1,025 chars", method="POST", path="/swarm/interrupt",
                json={"reason": "r" * 1025}, status=422),
        Hostile("empty interrupt reason", method="POST", path="/swarm/interrupt",
                json={"reason": ""}, status=422),
        Hostile("session name of 201 chars", method="POST", path="/session/register",
                json={"capabilities": ["build"], "name": "n" * 201}, status=422),
        Hostile("cancel reason of 1,025 chars", method="POST", path="/work/held/cancel",
                json={"reason": "r" * 1025}, status=422),
        # numbers
        Hostile("priority 1e400", method="POST", path="/work",
                content=b'{"type": "build", "priority": 1e400}', status=422),
        Hostile("priority 2**64", method="POST", path="/work",
                json={**TASK, "priority": 2**64}, status=422),
        Hostile("input integer past 64 bits", method="POST", path="/work",
                content=b'{"type": "build", "input": {"n": 18446744073709551616}}', status=422),
        Hostile("result integer past 64 bits", who="w1", method="POST", path="/work/complete",
                content=b'{"task_id": "held", "fencing_token": 1, "result": -9223372036854775809}',
                status=422),
        Hostile("knowledge integer of 40 digits", method="PUT", path="/knowledge/plan",
                content=b'{"content": [1, 2, 1234567890123456789012345678901234567890]}',
                status=422),
        Hostile("fencing token 2**53", who="w1", method="POST", path="/work/complete",
                json={"task_id": "held", "fencing_token": 2**53}, status=422),
        Hostile("fencing token 1.5", who="w1", method="POST", path="/work/complete",
                json={"task_id": "held", "fencing_token": 1.5}, status=422),
        Hostile("fencing token true", who="w1", method="POST", path="/work/complete",
                json={"task_id": "held", "fencing_token": True}, status=422),
        Hostile("expected_version 2**53", method="PUT", path="/knowledge/plan",
                json={**PUT, "expected_version": 2**53}, status=422),
        Hostile("estimated_hours 1e7", method="POST", path="/work",
                json={**TASK, "estimated_hours": 1e7}, status=422),
        Hostile("heartbeat_interval of a year", method="POST", path="/session/register",
                json={"capabilities": ["build"], "heartbeat_interval": 3.2e7}, status=422),
        Hostile("progress -0.001", who="w1", method="POST", path="/work/progress",
                json={"task_id": "held", "fencing_token": 1, "progress": -0.001}, status=422),
        Hostile("progress Infinity", who="w1", method="POST", path="/work/progress",
                content=b'{"task_id": "held", "fencing_token": 1, "progress": Infinity}',
                status=422),
        # types
        Hostile("priority as a list", method="POST", path="/work",
                json={**TASK, "priority": [5]}, status=422),
        Hostile("priority as an object", method="POST", path="/work",
                json={**TASK, "priority": {"v": 5}}, status=422),
        Hostile("priority true", method="POST", path="/work", json={**TASK, "priority": True},
                status=422),
        Hostile("type null", method="POST", path="/work", json={"type": None}, status=422),
        Hostile("type a number", method="POST", path="/work", json={"type": 7}, status=422),
        Hostile("dependencies an object", method="POST", path="/work",
                json={**TASK, "dependencies": {"held": True}}, status=422),
        Hostile("tasks an object", method="POST", path="/work", json={"tasks": {"a": TASK}},
                status=422),
        Hostile("capabilities an object", method="POST", path="/session/register",
                json={"capabilities": {"build": 1}}, status=422),
        Hostile("metadata a list", method="POST", path="/session/register",
                json={"capabilities": ["build"], "metadata": [1, 2]}, status=422),
        Hostile("tags a string", method="PUT", path="/knowledge/plan",
                json={**PUT, "tags": "api"}, status=422),
        Hostile("progress a string", who="w1", method="POST", path="/work/progress",
                json={"task_id": "held", "fencing_token": 1, "progress": "0.5"}, status=422),
        Hostile("retry a string", who="w1", method="POST", path="/work/fail",
                json={"task_id": "held", "fencing_token": 1, "error": "x", "retry": "yes"},
                status=422),
        Hostile("task_id a number", who="w2", method="POST", path="/work/claim",
                json={"task_id": 5}, status=422),
        Hostile("task_id null", who="w2", method="POST", path="/work/claim",
                json={"task_id": None}, status=422),
        Hostile("claim body a list", who="w2", method="POST", path="/work/claim",
                json=["held"], status=422),
        Hostile("heartbeat body a list", who="w1", method="POST", path="/session/heartbeat",
                json=[], status=422),
        Hostile("heartbeat status a number", who="w1", method="POST",
                path="/session/heartbeat", json={"status": 1}, status=422),
        Hostile("work body a string", method="POST", path="/work", json="build", status=422),
        Hostile("work body a number", method="POST", path="/work", json=5, status=422),
        Hostile("work body null", method="POST", path="/work", content=b"null", status=422),
        Hostile("knowledge body a list", method="PUT", path="/knowledge/plan", json=[1],
                status=422),
        Hostile("interrupt reason a number", method="POST", path="/swarm/interrupt",
                json={"reason": 5}, status=422),
        # encodings and content types
        Hostile("invalid UTF-8", method="POST", path="/work", content=b'{"type": "\xff"}',
                status=422),
        Hostile("overlong UTF-8 slash", method="POST", path="/work",
                content=b'{"type": "build", "id": "a\xc0\xafb"}', status=422),
        Hostile("UTF-8 BOM", method="POST", path="/work", content=b'\xef\xbb\xbf{"type": "b"}',
                status=422),
        Hostile("UTF-16 body", method="POST", path="/work",
                content='{"type": "build"}'.encode("utf-16"), status=422),
        Hostile("lone surrogate in a topic's content", method="PUT", path="/knowledge/plan",
                content=b'{"content": "\\udc00"}', status=422),
        Hostile("text/plain body", method="POST", path="/work", content=b'{"type": "build"}',
                headers={"content-type": "text/plain"}, status=422),
        Hostile("form body", method="POST", path="/work", content=b"type=build",
                headers={"content-type": "application/x-www-form-urlencoded"}, status=422),
        Hostile("multipart body", method="POST", path="/session/register",
                content=b'--b\r\nContent-Disposition: form-data; name="capabilities"\r\n\r\n'
                        b'build\r\n--b--\r\n',
                headers={"content-type": "multipart/form-data; boundary=b"}, status=422),
        Hostile("XML body", method="PUT", path="/knowledge/plan",
                content=b"<content>1</content>", headers={"content-type": "application/xml"},
                status=422),
        Hostile("JSON as text/plain to claim", who="w2", method="POST", path="/work/claim",
                content=b'{"task_id": "other"}', headers={"content-type": "text/plain"},
                status=422),
        Hostile("JSON as octet-stream to interrupt", method="POST", path="/swarm/interrupt",
                content=b'{"reason": "x"}',
                headers={"content-type": "application/octet-stream"}, status=422),
    ]


def unicode_cases() -> list[Hostile]:
    """NUL, bidi, zero-width, newline, look-alike and traversal ids and topics."""
    odd = {"NUL": "a\x00b", "RTL override": "a\u202eb", "zero-width space": "a\u200bb",
           "trailing newline": "held2\n", "fullwidth": "\uff21\uff22", "Cyrillic e": "h\u0435ld",
           "emoji": "\U0001f389", "dot segment": "a/../b", "leading dot": ".held",
           "double slash": "a//b", "trailing slash": "a/"}
    cases = [Hostile(f"task id with {k}", method="POST", path="/work",
                     json={**TASK, "id": v}, status=400) for k, v in odd.items()]
    cases += [Hostile(f"session id with {k}", method="POST", path="/session/register",
                      json={"capabilities": ["build"], "id": v}, status=400)
              for k, v in odd.items() if k in ("NUL", "RTL override", "zero-width space",
                                                 "trailing newline", "dot segment")]
    cases += [
        Hostile("capability with a newline", method="POST", path="/session/register",
                json={"capabilities": ["build\n"]}, status=400),
        Hostile("capability with a zero-width space", method="POST", path="/session/register",
                json={"capabilities": ["bu\u200bild"]}, status=400),
        Hostile("required_capability with RTL override", method="POST", path="/work",
                json={**TASK, "required_capability": "build\u202e"}, status=400),
        Hostile("type with NUL and no capability", method="POST", path="/work",
                json={"type": "build\x00"}, status=400),
        Hostile("dependency with a newline", method="POST", path="/work",
                json={**TASK, "dependencies": ["held\n"]}, status=400),
        Hostile("dependency with a zero-width space", method="POST", path="/work",
                json={**TASK, "dependencies": ["held\u200b"]}, status=400),
        Hostile("id with an escaped NUL", method="POST", path="/work",
                content=b'{"type": "build", "id": "a\\u0000b"}', status=400),
        Hostile("claim a look-alike of held", who="w2", method="POST", path="/work/claim",
                json={"task_id": "held\u200b"}, status=404),
        Hostile("complete held with a NUL", who="w1", method="POST", path="/work/complete",
                json={"task_id": "held\x00", "fencing_token": 1}, status=404),
        Hostile("GET a task id with %00", path="/work/held%00", status=400),
        Hostile("GET a task id with RTL override", path="/work/held%E2%80%AE", status=404),
        Hostile("GET a session id with a newline", path="/session/w1%0A", status=400),
        Hostile("DELETE a session id with a newline", method="DELETE", path="/session/w1%0A",
                status=400),
        Hostile("GET a topic with %00", path="/knowledge/plan%00", status=400),
        Hostile("PUT a topic with a final newline", method="PUT", path="/knowledge/plan%0A",
                json=PUT, status=400),
        Hostile("GET a task id with a tab", path="/work/held%09", status=400),
        Hostile("DELETE a topic with a zero-width space", method="DELETE",
                path="/knowledge/plan%E2%80%8B", status=404),
        Hostile("drain a session id with BOM", method="POST", path="/session/%EF%BB%BFw1/drain",
                status=404),
    ]
    topics = {"NUL": b"a%00b", "RTL override": b"a%E2%80%AEb",
              "zero-width space": b"a%E2%80%8Bb", "BOM": b"%EF%BB%BFplan",
              "line separator": b"a%E2%80%A8b", "DEL": b"a%7Fb", "C1 control": b"a%C2%85b",
              "newline": b"a%0Ab", "LRM": b"a%E2%80%8Eb", "257 chars": b"t" * 257,
              "../../etc/passwd": b"../../etc/passwd", "a/../b": b"a/../b",
              "encoded dot segments": b"%2e%2e/%2e%2e/etc/passwd",
              "encoded slashes": b"..%2f..%2fetc%2fpasswd", "double slash": b"a//b",
              "leading slash": b"/abs", "trailing slash": b"a/", "a lone dot": b".",
              "backslash dot segments": b"..%5C..%5Cwin.ini", "dot segment at end": b"a/.."}
    cases += [Hostile(f"PUT topic with {k}", raw=raw("PUT", b"/knowledge/" + v,
                                                      body=b'{"content": 1}'), status=400)
              for k, v in topics.items()]
    return cases


def authority_cases() -> list[Hostile]:
    """Other sessions' tasks, the wrong role, a revoked token, mangled credentials."""
    held = {"task_id": "held", "fencing_token": 1}
    return [
        Hostile("w2 completes w1's task", who="w2", method="POST", path="/work/complete",
                json={**held, "result": "stolen"}, status=403),
        Hostile("w2 fails w1's task for good", who="w2", method="POST", path="/work/fail",
                json={**held, "error": "x", "retry": False}, status=403),
        Hostile("w2 completes w1's task with a guessed token", who="w2", method="POST",
                path="/work/complete", json={"task_id": "held", "fencing_token": 2},
                status=403),
        Hostile("w2 reports progress on w1's task", who="w2", method="POST",
                path="/work/progress", json={**held, "progress": 1.0}, status=403),
        Hostile("w2 drains w1", who="w2", method="POST", path="/session/w1/drain", status=403),
        Hostile("w2 removes w1", who="w2", method="DELETE", path="/session/w1", status=403),
        Hostile("w2 cancels w1's task", who="w2", method="POST", path="/work/held/cancel",
                status=403),
        Hostile("w2 interrupts the swarm", who="w2", method="POST", path="/swarm/interrupt",
                json={"reason": "mine now"}, status=403),
        Hostile("w2 lifts the interrupt", who="w2", method="DELETE", path="/swarm/interrupt",
                status=403),
        Hostile("w2 registers a session", who="w2", method="POST", path="/session/register",
                json={"capabilities": ["build"]}, status=403),
        Hostile("w1 completes a ready task it never held", who="w1", method="POST",
                path="/work/complete", json={"task_id": "other", "fencing_token": 0},
                status=403),
        Hostile("w1 fails a pending task", who="w1", method="POST", path="/work/fail",
                json={"task_id": "dep", "fencing_token": 0, "error": "x"}, status=403),
        Hostile("w1 progresses a slash-id task", who="w1", method="POST", path="/work/progress",
                json={"task_id": "team/x", "fencing_token": 0, "progress": 0.1}, status=403),
        Hostile("w1 completes held with a stale token", who="w1", method="POST",
                path="/work/complete", json={"task_id": "held", "fencing_token": 0},
                status=409),
        Hostile("w1 claims a pending task", who="w1", method="POST", path="/work/claim",
                json={"task_id": "dep"}, status=409),
        Hostile("w2 claims a task of another capability", who="w2", method="POST",
                path="/work/claim", json={"task_id": "other"}, status=409),
        Hostile("left session completes", who="w3", method="POST", path="/work/complete",
                json=held, status=401),
        Hostile("left session heartbeats", who="w3", method="POST", path="/session/heartbeat",
                json={}, status=401),
        Hostile("left session asks for work", who="w3", path="/work/request", status=401),
        Hostile("left session reads", who="w3", path="/sessions", status=401),
        Hostile("left session re-joins itself", who="w3", method="POST",
                path="/session/register", json={"capabilities": ["build"], "id": "w3"},
                status=401),
        Hostile("operator claims", method="POST", path="/work/claim",
                json={"task_id": "other"}, status=403),
        Hostile("operator fails held", method="POST", path="/work/fail",
                json={**held, "error": "x"}, status=403),
        Hostile("Basic scheme", who="none", path="/sessions",
                headers={"authorization": f"Basic {OPERATOR}"}, status=401),
        Hostile("token without a scheme", who="none", path="/sessions",
                headers={"authorization": OPERATOR}, status=401),
        Hostile("scheme without a token", who="none", path="/sessions",
                headers={"authorization": "Bearer"}, status=401),
        Hostile("operator token with a byte off", who="none", path="/sessions",
                headers={"authorization": f"Bearer {OPERATOR[:-1]}X"}, status=401),
        Hostile("two tokens glued", who="none", path="/sessions",
                raw=raw("GET", b"/sessions", auth=b"%W1%%W2%"), status=401),
        Hostile("token with an RTL override", who="none", path="/sessions",
                raw=raw("GET", b"/sessions", auth=b"%OP%\xe2\x80\xae"), status=401),
        Hostile("token in the query string", who="none", path="/sessions",
                params={"token": OPERATOR}, status=401),
        Hostile("two Authorization headers", raw=raw(
            "POST", b"/work", b"Authorization: Bearer %W1%", body=b'{"type": "build"}'),
            status=400),
        # duplicates
        Hostile("add an existing id", method="POST", path="/work",
                json={**TASK, "id": "held"}, status=409),
        Hostile("add an existing slash id", method="POST", path="/work",
                json={**TASK, "id": "team/x"}, status=409),
        Hostile("duplicate JSON keys, the last an existing id", method="POST", path="/work",
                content=b'{"type": "build", "id": "fresh-1", "id": "other"}', status=409),
        Hostile("a batch whose third task repeats the first", method="POST", path="/work",
                json={"tasks": [{**TASK, "id": "n1"}, {**TASK, "id": "n2"},
                                {**TASK, "id": "n1"}]}, status=409),
        Hostile("register an online id", method="POST", path="/session/register",
                json={"capabilities": ["build"], "id": "w2"}, status=409),
        Hostile("stale expected_version", method="PUT", path="/knowledge/design/api",
                json={**PUT, "expected_version": 1}, status=409),
        Hostile("future expected_version", method="PUT", path="/knowledge/design/api",
                json={**PUT, "expected_version": 7}, status=409),
        Hostile("stale delete", method="DELETE", path="/knowledge/design/api",
                params={"expected_version": 1}, status=409),
        Hostile("cancel a task twice over: a completed one", method="POST",
                path="/work/done/cancel", status=409),
    ]


def framing_cases() -> list[Hostile]:
    """What the HTTP layer and the Guard refuse: framing, headers, methods, Host."""
    return [
        Hostile("1 MiB header", raw=raw("GET", b"/swarm/status", b"X-Big: " + b"a" * MiB),
                status=431),
        Hostile("5,000 headers", raw=raw("GET", b"/swarm/status",
                                         *(b"X-H%d: v" % i for i in range(5000))), status=431),
        Hostile("100 kB request line", raw=raw("GET", b"/work/" + b"a" * 100_000),
                front=True),
        Hostile("two Content-Length", raw=raw("POST", b"/work", b"Content-Length: 5",
                                              body=b'{"type": "build"}'), front=True),
        Hostile("Content-Length and chunked", raw=raw(
            "POST", b"/work", b"Transfer-Encoding: chunked", body=b'{"type": "build"}'),
            front=True),
        Hostile("negative Content-Length", raw=raw("POST", b"/work", b"Content-Length: -1"),
                front=True),
        Hostile("NUL in the path", raw=raw("GET", b"/work/a\x00b"), front=True),
        Hostile("space in a header name", raw=raw("GET", b"/sessions", b"Bad Header: x"),
                front=True),
        Hostile("unknown method BREW", raw=raw("BREW", b"/work"), front=True),
        Hostile("CONNECT", raw=raw("CONNECT", b"127.0.0.1:22"), front=True),
        Hostile("TLS hello on the plain port",
                raw=b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64, front=True),
        Hostile("foreign Host", raw=raw("POST", b"/work", body=b'{"type": "build"}',
                                        host=b"evil.example"), status=400),
        Hostile("Host that only starts like loopback", raw=raw(
            "POST", b"/work", body=b'{"type": "build"}', host=b"127.0.0.1.evil.example"),
            status=400),
        Hostile("Host with userinfo", raw=raw("POST", b"/work", body=b'{"type": "build"}',
                                              host=b"127.0.0.1@evil.example"), status=400),
        Hostile("no Host", raw=b"POST /work HTTP/1.0\r\nAuthorization: Bearer %OP%\r\n"
                               b"Content-Type: application/json\r\nContent-Length: 17\r\n\r\n"
                               b'{"type": "build"}', status=400),
        Hostile("two Host headers", raw=raw("POST", b"/work", b"Host: evil.example",
                                            body=b'{"type": "build"}'), status=400),
        Hostile("absolute URI to a foreign host", raw=raw(
            "POST", b"http://evil.example/work", body=b'{"type": "build"}',
            host=b"evil.example"), status=400),
    ]


def method_cases() -> list[Hostile]:
    """HEAD, OPTIONS and TRACE on every route that does not serve them (from the app's own
    route table, so a new route is covered the day it is added)."""
    with tempfile.TemporaryDirectory() as tmp:  # nothing is opened: the routes only
        app = create_app(Settings(token="x", data_dir=Path(tmp)))
    concrete = {"session_id": "w1", "task_id": "held", "topic": "plan", "pool": "build"}
    cases: dict[tuple[str, str], Hostile] = {}
    methods: tuple[str, ...]
    for route in _routes(app):
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: concrete[m.group(1)], route.path)
        if isinstance(route, WebSocketRoute):
            methods, served = ("GET", "HEAD", "OPTIONS", "TRACE"), set[str]()
            status = 404
        elif isinstance(route, Mount):
            path, methods, served, status = path + "/app.js", ("OPTIONS", "TRACE"), set(), 405
        else:
            methods, served, status = ("HEAD", "OPTIONS", "TRACE"), set(route.methods or ()), 405
        for m in methods:
            if m not in served:
                cases[(m, path)] = Hostile(f"{m} {path}", method=m, path=path, status=status)
    return list(cases.values())


def _routes(app: Any) -> Iterator[Any]:
    def walk(router: Any) -> Iterator[Any]:
        for route in getattr(router, "routes", ()):
            inner = getattr(route, "original_router", None)
            if inner is not None:
                yield from walk(inner)
            elif isinstance(route, APIRoute | Route | Mount | WebSocketRoute):
                yield route
    return walk(app.router)


CASES = body_cases() + unicode_cases() + authority_cases() + framing_cases() + method_cases()


def test_the_list_is_long_enough() -> None:
    """With the 88 of tests/api/test_bad_input.py, well past 200 hostile requests."""
    from tests.api.test_bad_input import CASES as CURATED

    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    print(f"\nhostile requests: {len(CASES)} here + {len(CURATED)} curated = "
          f"{len(CASES) + len(CURATED)}")
    assert len(CASES) + len(CURATED) >= 200


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """w1 holds 'held' (token 1); w2 is idle; w3 has left; 'dep' waits on 'held'; 'other'
    and 'team/x' are ready for research (nobody's); 'done' is completed; knowledge 'plan' v1
    and 'design/api' v2. Long heartbeats and idle threshold: nothing moves on its own."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("hostile"), token=OPERATOR,
                        rate_limit=0, idle_threshold=3600, task_claim_timeout=3600)
    server = LiveServer(settings).start()
    tokens = {"op": OPERATOR}
    with httpx.Client(base_url=server.url, timeout=30,
                      headers={"authorization": f"Bearer {OPERATOR}"}) as op:
        for sid in ("w1", "w2", "w3"):
            r = op.post("/session/register", json={"id": sid, "capabilities": ["build"],
                                                    "heartbeat_interval": 3600})
            assert r.status_code == 201, r.text
            tokens[sid] = r.json()["token"]
        me = {"authorization": f"Bearer {tokens['w3']}"}
        assert op.post("/work", json={"id": "done", "type": "build"}).status_code == 201
        assert op.get("/work/request", headers=me).json()["task"]["id"] == "done"
        assert op.post("/work/complete", headers=me,
                       json={"task_id": "done", "fencing_token": 1}).status_code == 200
        assert op.delete("/session/w3", headers=me).status_code == 200
        r = op.post("/work", json={"tasks": [
            {"id": "held", "type": "build", "priority": 10},
            {"id": "dep", "type": "build", "dependencies": ["held"]},
            {"id": "other", "type": "research"}, {"id": "team/x", "type": "research"}]})
        assert r.status_code == 201, r.text
        claimed = op.get("/work/request", headers={"authorization": f"Bearer {tokens['w1']}"})
        assert claimed.json()["lease"]["fencing_token"] == 1
        op.put("/knowledge/plan", json={"content": {"v": 1}})
        op.put("/knowledge/design/api", json={"content": {"v": 1}})
        op.put("/knowledge/design/api", json={"content": {"v": 2}, "tags": ["api"]})
    try:
        yield {"server": server, "tokens": tokens}
    finally:
        server.stop()


def send_raw(port: int, data: bytes, timeout: float = 20) -> tuple[int, dict[str, str], bytes]:
    """Send bytes, read the answer until the server closes; (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        with contextlib.suppress(OSError):  # answered and closed before reading it all
            conn.sendall(data)
        got = b""
        try:
            while chunk := conn.recv(65536):
                got += chunk
        except OSError:
            pass
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), got[:200]
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def _fill(data: bytes, port: int, tokens: dict[str, str]) -> bytes:
    return (data.replace(b"%HOST%", b"127.0.0.1:%d" % port)
            .replace(b"%OP%", tokens["op"].encode()).replace(b"%W1%", tokens["w1"].encode())
            .replace(b"%W2%", tokens["w2"].encode()))


def send(case: Hostile, server: LiveServer, tokens: dict[str, str]) -> tuple[int, str, bytes]:
    """(status, content type, body) of the case's answer."""
    if case.raw is not None:
        status, headers, body = send_raw(server.settings.port,
                                         _fill(case.raw, server.settings.port, tokens))
        return status, headers.get("content-type", ""), body
    token = tokens.get(case.who)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    headers.update(case.headers)
    kw: dict[str, Any] = {"params": case.params, "headers": headers}
    if case.chunked:
        data, size = case.content or b"", case.chunked
        kw["content"] = (data[i:i + size] for i in range(0, len(data), size))
        headers.setdefault("content-type", "application/json")
    elif case.content is not None:
        kw["content"] = case.content
        headers.setdefault("content-type", "application/json")
    elif case.json is not NO_BODY:
        kw["json"] = case.json
    r = httpx.request(case.method, server.url + case.path, timeout=30, **kw)
    return r.status_code, r.headers.get("content-type", ""), r.content


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_request_is_refused_and_changes_nothing(
    swarm: dict[str, Any], case: Hostile,
) -> None:
    server: LiveServer = swarm["server"]
    db = server.settings.sqlite_path
    before = dump(db)
    status, content_type, body = send(case, server, swarm["tokens"])
    assert status == case.status, (status, body[:300])
    assert 400 <= status < 500
    if not case.front and case.method != "HEAD":
        assert content_type.startswith("application/json"), (content_type, body[:200])
        error = httpx.Response(status, content=body).json()["error"]
        assert set(error) == {"code", "message"} and error["message"]
    after = dump(db)
    assert after == before, diff(before, after)


def test_zz_the_digest_sees_a_change(swarm: dict[str, Any]) -> None:
    """Runs last (file order): the digest covers every table and moves with any write."""
    server: LiveServer = swarm["server"]
    before = dump(server.settings.sqlite_path)
    assert {"sessions", "tasks", "deps", "attempts", "knowledge", "events", "meta"} <= set(before)
    assert all(before[t] for t in ("sessions", "tasks", "deps", "attempts", "knowledge", "events"))
    r = httpx.put(server.url + "/knowledge/plan", json=PUT, timeout=30,
                  headers={"authorization": f"Bearer {OPERATOR}"})
    assert r.status_code == 200
    changed = diff(before, dump(server.settings.sqlite_path))
    assert set(changed) == {"knowledge", "events"}
