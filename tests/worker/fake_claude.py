"""A stand-in for the `claude` CLI, for tests only: the real one needs an API key.

It speaks `claude -p PROMPT --output-format stream-json --verbose`: one JSON event a line,
`system/init`, `assistant` messages, and a final `result` (type, subtype, is_error, result,
session_id, total_cost_usd, usage, num_turns, ...). `--session-id` is honoured. It never
calls a model.

`FAKE_CLAUDE_MODE` picks the behaviour: success (default), error (subtype error_max_turns),
is_error, list (the whole run as one JSON list, as `--output-format json --verbose`),
garbage (not JSON), crash (exit 2, stderr), slow (sleeps 30 s), retry (two
`system/api_retry` rate-limit events first), retry_wait (one api_retry, then it waits
until the file `FAKE_CLAUDE_GO` exists, at most 60 s, and goes on), hang (prints its init
and first message, then waits for signals: SIGINT is noted and ignored, as Claude Code
ends a turn; SIGTERM exits 143). `FAKE_CLAUDE_LOG`, when set, is a file that gets one JSON
line per run with the argv, stdin, the SWARM_* variables and the cwd it saw;
`FAKE_CLAUDE_SIGNALS` a file that gets the name of each signal it got.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from types import FrameType
from typing import Any


def emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


def noted(signum: int, frame: FrameType | None) -> None:
    path = os.environ.get("FAKE_CLAUDE_SIGNALS")
    if path:
        with open(path, "a") as f:
            f.write(signal.Signals(signum).name + "\n")
    if signum == signal.SIGTERM:
        sys.exit(143)


def bridge(argv: list[str], session: str) -> dict[str, Any] | None:
    """What `--mcp-config` gives the bridge: the config, and the token file the bridge of
    this session id would read (its mode and whose session; the token stays unlogged)."""
    if "--mcp-config" not in argv[:-1]:
        return None
    with open(argv[argv.index("--mcp-config") + 1]) as f:
        config = json.load(f)
    data = config["mcpServers"]["swarm"]["env"]["SWARM_DATA_DIR"]
    path = os.path.join(data, "agents", f"{session}.json")
    with open(path) as f:
        record = json.load(f)
    token = os.environ.get("FAKE_CLAUDE_EXPECT_TOKEN")
    return {"config": config, "mode": oct(os.stat(path).st_mode & 0o777),
            "session_id": record["session_id"], "url": record["url"],
            "token_matches": token is not None and record["token"] == token}


def main(argv: list[str]) -> int:
    mode = os.environ.get("FAKE_CLAUDE_MODE", "success")
    stdin = "" if sys.stdin.isatty() else sys.stdin.read()
    prompt = argv[argv.index("-p") + 1] if "-p" in argv[:-1] else ""
    if prompt.startswith("--"):  # `-p` followed by an option: the prompt came on stdin
        prompt = ""
    prompt = prompt or stdin
    session = argv[argv.index("--session-id") + 1] if "--session-id" in argv[:-1] \
        else str(uuid.uuid4())
    log = os.environ.get("FAKE_CLAUDE_LOG")
    if log:
        with open(log, "a") as f:
            env = {k: v for k, v in os.environ.items() if k.startswith("SWARM_")}
            f.write(json.dumps({"argv": argv, "stdin": stdin, "env": env, "cwd": os.getcwd(),
                                "mcp": bridge(argv, session)}) + "\n")
    if mode == "crash":
        print("fake claude: something broke", file=sys.stderr)
        return 2
    if mode == "garbage":
        print("this is not JSON")
        return 0
    if mode == "slow":
        time.sleep(30)
    model = argv[argv.index("--model") + 1] if "--model" in argv[:-1] else "claude-fake-1"
    events: list[dict[str, Any]] = [
        {"type": "system", "subtype": "init", "session_id": session, "model": model,
         "tools": ["Read", "Edit"], "mcp_servers": [{"name": "swarm", "status": "connected"}]},
        {"type": "assistant", "session_id": session,
         "message": {"content": [{"type": "text", "text": "Reading the task."},
                                 {"type": "tool_use", "name": "Read", "input": {}}]}},
    ]
    if mode == "retry":
        events[1:1] = [{"type": "system", "subtype": "api_retry", "attempt": n,
                        "max_retries": 10, "retry_delay_ms": 500 * n, "error_status": 429,
                        "error": "rate_limit"} for n in (1, 2)]
    if mode == "retry_wait":
        emit(events[0])
        emit({"type": "system", "subtype": "api_retry", "attempt": 1, "max_retries": 10,
              "retry_delay_ms": 4000, "error_status": 429, "error": "rate_limit"})
        go = os.environ.get("FAKE_CLAUDE_GO", "")
        for _ in range(600):
            if go and os.path.exists(go):
                break
            time.sleep(0.1)
        events = events[1:]
    if mode == "hang":
        signal.signal(signal.SIGINT, noted)
        signal.signal(signal.SIGTERM, noted)
        for event in events:
            emit(event)
        for _ in range(600):
            time.sleep(0.1)
        return 0
    result = {
        "type": "result",
        "subtype": "error_max_turns" if mode == "error" else "success",
        "is_error": mode in ("error", "is_error"),
        "duration_ms": 1234,
        "duration_api_ms": 1000,
        "num_turns": 3,
        "result": f"done: {prompt.splitlines()[0] if prompt else ''}",
        "session_id": session,
        "total_cost_usd": 0.0123,
        "usage": {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 30,
                  "cache_creation_input_tokens": 5, "server_tool_use": {"web_search_requests": 0},
                  "service_tier": "standard"},
        "terminal_reason": "completed",
    }
    events += [{"type": "assistant", "session_id": session,
                "message": {"content": [{"type": "text", "text": "Done."}]}}, result]
    if mode == "list":
        print(json.dumps(events))
    else:
        for event in events:
            emit(event)
    return 1 if result["is_error"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
