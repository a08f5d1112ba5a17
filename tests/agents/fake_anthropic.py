"""A scripted stand-in for the Anthropic Messages API, on loopback, for the real `claude`.

Claude Code talks to `ANTHROPIC_BASE_URL`; this answers `POST /v1/messages` (streamed as
server-sent events, or as one JSON message), `POST /v1/messages/count_tokens` and
`HEAD`/`GET` probes. Its "model" follows the swarm's protocol and nothing else:

- when the conversation names an offer ("claim_task with task_id X") it has not claimed,
  it calls the swarm's claim_task tool with that id;
- with the claim's answer it calls complete_task with the task id and the lease's
  fencing_token it read there, and the result `RESULT` (or, with `hold` set, it waits: the
  test kills claude meanwhile);
- after complete_task, and for anything else (a title, a plain prompt), it answers text.

Every request is kept (`requests`) so a test can say what the model was shown.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RESULT = {"answer": 42, "by": "the scripted model"}
OFFER = re.compile(r"claim_task with task_id ([A-Za-z0-9._:@/-]+)")
TOKEN = re.compile(r'"fencing_token"\s*:\s*(\d+)')
#: how many times the model waits for a still-connecting MCP server before giving up
MAX_WAITS = 20
TASK_ID = re.compile(r'"task_id"\s*:\s*"([^"]+)"')


@dataclass
class Script:
    hold: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)
    completed: list[dict[str, Any]] = field(default_factory=list)
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The content blocks of the next assistant message."""
        tools = {t.get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)}
        claim = next((t for t in tools if t.endswith("claim_task")), None)
        complete = next((t for t in tools if t.endswith("complete_task")), None)
        messages = body.get("messages") or []
        seen = " ".join(_text_of(m.get("content")) for m in messages)
        seen += " " + _text_of(body.get("system"))
        waits = list(_tool_names(messages).values()).count("WaitForMcpServers")
        if messages and not claim and "WaitForMcpServers" in tools and OFFER.search(seen) \
                and waits < MAX_WAITS:
            # the swarm's bridge is still starting: wait for its tools (again, while the
            # answer says "still connecting"), as a model would
            return [tool_use("WaitForMcpServers", {"servers": ["swarm"]}, waits)]
        if not (claim and complete and messages):
            return [text("ok")]
        # the last turn of the user (Claude Code may add a "system" message after it)
        last: dict[str, Any] = next(
            (m for m in reversed(messages) if m.get("role") == "user"), {})
        results = [b for b in _blocks(last) if b.get("type") == "tool_result"]
        if results:
            called = _tool_names(messages)
            name = called.get(str(results[-1].get("tool_use_id")), "")
            shown = _text_of(results[-1].get("content"))
            if name.endswith("claim_task"):
                token, task = TOKEN.search(shown), TASK_ID.search(shown)
                if not (token and task):
                    return [text(f"The claim gave no lease: {shown[:200]}")]
                if self.hold:
                    self.holding.set()
                    self.release.wait(120)
                return [tool_use(complete, {"task_id": task.group(1),
                                            "fencing_token": int(token.group(1)),
                                            "result": RESULT})]
            if name.endswith("complete_task"):
                with self.lock:
                    self.completed.append({"shown": shown})
                return [text("The swarm task is complete.")]
        with self.lock:
            offered = [t for t in OFFER.findall(seen) if t not in self.claimed]
            if offered:
                self.claimed.append(offered[-1])
        if offered:
            return [text("Claiming the offered task."),
                    tool_use(claim, {"task_id": offered[-1]})]
        return [text("Nothing for me to do.")]


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(name: str, arguments: dict[str, Any], n: int = 0) -> dict[str, Any]:
    key = abs(hash((name, json.dumps(arguments), n)))
    return {"type": "tool_use", "id": f"toolu_{key}", "name": name, "input": arguments}


def _blocks(message: Any) -> list[dict[str, Any]]:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return [{"type": "text", "text": content}] if isinstance(content, str) else []


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_text_of(b.get("text") if b.get("type") == "text" else b.get("content"))
                        for b in content if isinstance(b, dict))
    return ""


def _tool_names(messages: list[Any]) -> dict[str, str]:
    return {str(b.get("id")): str(b.get("name")) for m in messages for b in _blocks(m)
            if b.get("type") == "tool_use"}


def _events(blocks: list[dict[str, Any]], model: str) -> Iterator[tuple[str, dict[str, Any]]]:
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    yield "message_start", {"type": "message_start", "message": {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 100, "output_tokens": 1}}}
    for i, block in enumerate(blocks):
        if block["type"] == "text":
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {"type": "text", "text": ""}}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {**block, "input": {}}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                      "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": i}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": stop, "stop_sequence": None},
                            "usage": {"output_tokens": 20}}
    yield "message_stop", {"type": "message_stop"}


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            self._json(200, {})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                             "message": "not JSON"}})
                return
            if self.path.startswith("/v1/messages/count_tokens"):
                self._json(200, {"input_tokens": 100})
                return
            if not self.path.startswith("/v1/messages"):
                self._json(404, {"type": "error", "error": {"type": "not_found_error",
                                                             "message": self.path}})
                return
            with script.lock:
                script.requests.append(body)
            blocks = script.answer(body)
            model = str(body.get("model") or "claude-fake")
            if body.get("stream"):
                self._stream(blocks, model)
            else:
                message = dict(next(_events(blocks, model))[1]["message"])
                message.update(content=blocks, stop_reason="tool_use" if any(
                    b["type"] == "tool_use" for b in blocks) else "end_turn")
                self._json(200, message)

        def _stream(self, blocks: list[dict[str, Any]], model: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for name, data in _events(blocks, model):
                self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
            self.close_connection = True

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def fake_anthropic(script: Script) -> Iterator[str]:
    """Serve the script on a free loopback port; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        script.release.set()
        server.shutdown()
        server.server_close()
