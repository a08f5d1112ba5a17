"""No token reaches a log line, even one a client put in a query string."""

from __future__ import annotations

import logging

import pytest

from unified_swarm import logs


def test_redact() -> None:
    line = 'GET /swarm/realtime?after=3&token=abc123XYZ_-&types=task HTTP/1.1'
    assert logs.redact(line) == 'GET /swarm/realtime?after=3&token=[redacted]&types=task HTTP/1.1'
    assert logs.redact("/x?access_token=s3cret") == "/x?access_token=[redacted]"
    assert logs.redact("/work?status=ready") == "/work?status=ready"
    assert logs.redact("< authorization: Bearer abc.def") == "< authorization: Bearer [redacted]"
    assert logs.redact("sec-websocket-protocol: swarm, bearer.s3cret") == (
        "sec-websocket-protocol: swarm, bearer.[redacted]")


def test_uvicorn_access_lines_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    logs.install()
    logs.install()  # idempotent
    access = logging.getLogger("uvicorn.access")
    assert sum(isinstance(f, logs.RedactTokens) for f in access.filters) == 1
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET",
                    "/swarm/realtime?token=op-secret", "1.1", 101)
    assert "op-secret" not in caplog.text and "[redacted]" in caplog.text
