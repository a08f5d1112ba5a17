"""A stand-in for the `claude` CLI, for tests only: the real one needs an API key.

It speaks the same output format as `claude -p PROMPT --output-format json`: one JSON
object with type, subtype, is_error, result, session_id, total_cost_usd, duration_ms,
num_turns (a list of messages ending with it under --verbose). It never calls a model.

`FAKE_CLAUDE_MODE` picks the behaviour: success (default), error (subtype
error_max_turns), is_error, verbose, garbage (not JSON), crash (exit 2, stderr), slow
(sleeps 30 s). `FAKE_CLAUDE_LOG`, when set, is a file that gets one JSON line per run with
the argv, stdin and the SWARM_* variables it saw.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid


def main(argv: list[str]) -> int:
    mode = os.environ.get("FAKE_CLAUDE_MODE", "success")
    stdin = "" if sys.stdin.isatty() else sys.stdin.read()
    prompt = argv[argv.index("-p") + 1] if "-p" in argv[:-1] else ""
    if prompt.startswith("--"):  # `-p` followed by an option: the prompt came on stdin
        prompt = ""
    prompt = prompt or stdin
    log = os.environ.get("FAKE_CLAUDE_LOG")
    if log:
        with open(log, "a") as f:
            env = {k: v for k, v in os.environ.items() if k.startswith("SWARM_")}
            f.write(json.dumps({"argv": argv, "stdin": stdin, "env": env, "cwd": os.getcwd()})
                    + "\n")
    if mode == "crash":
        print("fake claude: something broke", file=sys.stderr)
        return 2
    if mode == "garbage":
        print("this is not JSON")
        return 0
    if mode == "slow":
        time.sleep(30)
    result = {
        "type": "result",
        "subtype": "error_max_turns" if mode == "error" else "success",
        "is_error": mode in ("error", "is_error"),
        "duration_ms": 1234,
        "duration_api_ms": 1000,
        "num_turns": 3,
        "result": f"done: {prompt.splitlines()[0] if prompt else ''}",
        "session_id": f"fake-{uuid.uuid4()}",
        "total_cost_usd": 0.0123,
        "usage": {"input_tokens": 10, "output_tokens": 20},
    }
    if mode == "verbose":
        messages = [{"type": "system", "subtype": "init", "session_id": result["session_id"]},
                    {"type": "assistant", "message": {"content": "thinking"}}, result]
        print(json.dumps(messages))
    else:
        print(json.dumps(result))
    return 1 if result["is_error"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
