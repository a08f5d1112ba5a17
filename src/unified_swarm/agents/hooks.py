"""`swarm hook <event>`: what an agent CLI's hooks run. One short process per event.

Each reads the CLI's hook JSON on stdin (`session_id`, `source`, `hook_event_name`, ...),
talks to the server over urllib and prints what the CLI expects on stdout. It never breaks the
CLI: bad input, an unreachable server or any error is one line on stderr and exit 0 with
nothing on stdout (for Codex `{}`: its Stop hook must always print JSON). The one exit that
means something else is stop-wait's 2, which wakes an idle Claude Code session.

- session-start: register the swarm session for this CLI session (or resume the one the
  token file names), write the token file, answer the protocol and any held lease as context
  (on `compact`, the lease again: the summary may have dropped it).
- prompt-submit: the user is driving; the session says busy, so it gets no offers now.
- stop: a held lease not finished is named once; otherwise an offer, if there is one, is named
  (as context for the model with autopilot, else as a message to the user).
- stop-wait: Claude Code's background (asyncRewake) waiter for autopilot: waits for an offer
  and exits 2 with it, which wakes the idle session; 0 when superseded, the user drives, the
  CLI is gone or an hour has passed.
- notification: a permission or idle prompt: input is required; a held lease is renewed with a
  progress message saying so, so it neither expires nor looks stalled.
- pre-compact: a held lease's progress is recorded (a checkpoint) before the context shrinks.
- session-end: leave the swarm, best effort, and forget the token file.

Stdlib only (see agents/http.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import identity, protocol
from .http import CallFailed, call

EVENTS = ("session-start", "prompt-submit", "stop", "stop-wait", "notification",
          "pre-compact", "session-end")
DEFAULT_URL = "http://127.0.0.1:8600"
#: stop-wait's whole life and each long poll (the server's most is 60 s)
WAIT_TOTAL = 3600.0
WAIT_POLL = 25.0
#: stop-wait exits 2 to wake Claude Code (asyncRewake)
WAKE = 2


@dataclass(slots=True)
class Hook:
    """One hook run: the CLI's input, where the server is, and what to print."""

    event: str
    cli: str
    url: str
    payload: dict[str, Any]
    env: Mapping[str, str]
    autopilot: bool = False
    capabilities: tuple[str, ...] = ("build",)
    out: dict[str, Any] = field(default_factory=dict)

    @property
    def cli_session_id(self) -> str | None:
        sid = self.payload.get("session_id")
        if isinstance(sid, str) and sid:
            return sid
        return identity.cli_session_id(self.env)

    @property
    def data_dir(self) -> Path:
        cwd = self.payload.get("cwd")
        if not self.env.get("SWARM_DATA_DIR") and isinstance(cwd, str) and cwd:
            # the CLI's project, where the hook's working directory should be anyway
            return Path(cwd) / identity.DEFAULT_DATA_DIR
        return identity.data_dir(self.env)

    def operator_token(self) -> str | None:
        token = self.env.get("SWARM_TOKEN")
        if token:
            return token
        try:
            return (self.data_dir / "token").read_text().strip() or None
        except OSError:
            return None

    def context(self, text: str) -> None:
        """Text the model sees (SessionStart, Stop, UserPromptSubmit)."""
        event = {"session-start": "SessionStart", "stop": "Stop"}.get(self.event, self.event)
        if self.cli == "gemini" and self.event == "stop":
            event = "AfterAgent"
        self.out = {"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}

    def tell_user(self, text: str) -> None:
        self.out = {"systemMessage": text}

    def continue_with(self, text: str) -> None:
        """Keep the agent working on `text`: Claude Code and Codex continue the turn with a
        Stop hook's block reason (Claude Code's Stop additionalContext is newer than many
        installed versions: 2.1.197 ignores it, measured); Gemini with AfterAgent's deny."""
        self.out = {"decision": "deny" if self.cli == "gemini" else "block", "reason": text}


# -- the token file and the hook's own small state -------------------------------------------


def _state_path(hook: Hook, cli_id: str) -> Path:
    return identity.token_path(hook.data_dir, cli_id).with_suffix(".hook.json")


def _load_state(hook: Hook, cli_id: str) -> dict[str, Any]:
    try:
        raw = json.loads(_state_path(hook, cli_id).read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _save_state(hook: Hook, cli_id: str, state: dict[str, Any]) -> None:
    path = _state_path(hook, cli_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def _known(hook: Hook) -> identity.AgentIdentity | None:
    cli_id = hook.cli_session_id
    return identity.read_identity(hook.data_dir, cli_id) if cli_id else None


def _beat(hook: Hook, who: identity.AgentIdentity, status: str | None = None) -> Any:
    body = {"status": status} if status else None
    return call(hook.url, "POST", "/session/heartbeat", who.token, body).body


# -- the events ----------------------------------------------------------------------------


def session_start(hook: Hook) -> None:
    cli_id = hook.cli_session_id
    if not cli_id:
        raise CallFailed("the hook input names no session_id")
    who = identity.read_identity(hook.data_dir, cli_id)
    beat = None
    if who is not None:
        try:
            beat = _beat(hook, who, "idle")
        except CallFailed as exc:
            if exc.status not in (401, 403, 404):
                raise
            who = None  # the server no longer knows it (left, or another server): anew
    if who is None:
        who = _register(hook, cli_id)
        beat = _beat(hook, who, "idle")
    _save_state(hook, cli_id, {"session_id": who.session_id, "reminded": []})
    held = beat.get("held", []) if isinstance(beat, dict) else []
    lines = [protocol.PROTOCOL, f"Swarm: this session is {who.session_id} at {hook.url}."]
    lines += [protocol.lease_text(lease) for lease in held]
    if hook.payload.get("source") == "compact" and held:
        lines.append("Swarm: the context was compacted; the lease above is still this "
                     "session's.")
    hook.context("\n".join(lines))


def _register(hook: Hook, cli_id: str) -> identity.AgentIdentity:
    body = {"capabilities": list(hook.capabilities),
            "name": identity.session_name(hook.cli, cli_id),
            "metadata": {"cli": hook.cli, "cli_session_id": cli_id, "joined_by": "hook",
                         "cwd": hook.payload.get("cwd")}}
    got = call(hook.url, "POST", "/session/register", hook.operator_token(), body).body
    session_id, token = got["session"]["id"], got["token"]
    _keep_out_of_git(identity.token_path(hook.data_dir, cli_id).parent)
    identity.write_token(hook.data_dir, cli_id, token, session_id=session_id, url=hook.url)
    return identity.AgentIdentity(cli_id, session_id, token, hook.url)


def _keep_out_of_git(directory: Path) -> None:
    """The token files live in the project's data dir: a `.gitignore` of `*` there keeps them
    out of any commit, whatever the project's own .gitignore says."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")


def prompt_submit(hook: Hook) -> None:
    who = _known(hook)
    if who is None:
        return
    _beat(hook, who, "busy")
    state = _load_state(hook, who.cli_session_id)
    _save_state(hook, who.cli_session_id, state | {"user_driving": time.time()})


def stop(hook: Hook) -> None:
    who = _known(hook)
    if who is None:
        return
    state = _load_state(hook, who.cli_session_id)
    state.pop("user_driving", None)
    beat = _beat(hook, who, "idle")
    held = beat.get("held", []) if isinstance(beat, dict) else []
    reminded = set(state.get("reminded", []))
    unfinished = [lease for lease in held if lease.get("task_id") not in reminded]
    if unfinished:
        lease = unfinished[0]
        state["reminded"] = sorted(reminded | {lease.get("task_id")})
        _save_state(hook, who.cli_session_id, state)
        hook.continue_with(protocol.unfinished_text(lease))
        return
    if held:
        _save_state(hook, who.cli_session_id, state)
        return  # reminded once already: the model chose to stop; that is the user's to see
    got = call(hook.url, "GET", "/work/offer?wait=0", who.token)
    if got.status != 200 or not isinstance(got.body, dict) or \
            _announced(state, got.body, _stop_mark(hook)):
        _save_state(hook, who.cli_session_id, state)
        return
    _save_state(hook, who.cli_session_id, state)
    text = protocol.offer_text(got.body.get("task", {}), got.body.get("offer", {}))
    if hook.autopilot:
        hook.continue_with(text)
    else:
        hook.tell_user(text + " (autopilot is off: ask for it to take it)")


def _announced(state: dict[str, Any], offered: dict[str, Any], mark: str | None) -> bool:
    """Whether this offer was named to the session already (then it is not named again: an
    ignored offer lapses to another session instead of looping); notes it when not, with
    the Stop it was named in (`mark`)."""
    key = _offer_key(offered)
    seen = list(state.get("announced", []))
    if key in seen:
        return True
    state["announced"] = [*seen, key][-20:]
    state["named_in"] = [key, mark]
    return False


def _offer_key(offered: dict[str, Any]) -> str:
    offer = offered.get("offer") or {}
    return f"{offer.get('task_id')}@{offer.get('expires_at')}"


def _stop_mark(hook: Hook) -> str | None:
    """Which Stop this is: the transcript as it stands when its hooks start (Claude Code
    writes the turn before its Stop hooks run and their output after every one has ended),
    so the stop hook and stop-wait of one Stop read the same mark. None when unknown."""
    path = hook.payload.get("transcript_path")
    if not isinstance(path, str) or not path:
        return None
    try:
        return f"{path}:{os.stat(path).st_size}"
    except OSError:
        return None


def _named_in_this_stop(state: dict[str, Any], offered: dict[str, Any],
                        mark: str | None) -> bool:
    """The stop hook of this same Stop named the offer: the turn goes on with it."""
    return mark is not None and state.get("named_in") == [_offer_key(offered), mark]


def _offer_left(offered: dict[str, Any]) -> float:
    """Seconds until the offer lapses (0 when unknown)."""
    raw = (offered.get("offer") or {}).get("expires_at")
    try:
        expires = datetime.fromisoformat(str(raw)).timestamp()
    except ValueError:
        return 0.0
    return max(0.0, expires - time.time())


def stop_wait(hook: Hook, clock: Callable[[], float] = time.monotonic) -> int:
    """Wait for an offer; 2 with its text on stderr wakes the session, 0 ends quietly.

    One waiter per CLI session: each writes its pid into the hook state, and one that finds
    another pid there after a 204 (the server answers the older of two waits at once) ends.
    """
    who = _known(hook)
    if who is None:
        return 0
    me, cli, mark = os.getpid(), _cli_pid(hook.env), _stop_mark(hook)
    _save_state(hook, who.cli_session_id, _load_state(hook, who.cli_session_id) | {"waiter": me})
    deadline = clock() + WAIT_TOTAL
    while clock() < deadline:
        state = _load_state(hook, who.cli_session_id)
        if state.get("user_driving") or state.get("waiter") != me or not _cli_alive(cli):
            return 0
        beat = _beat(hook, who)
        if isinstance(beat, dict) and beat.get("held"):
            return 0  # it has work: the stop hook names it; nothing to wait for
        wait = min(WAIT_POLL, max(1.0, deadline - clock()))
        got = call(hook.url, "GET", f"/work/offer?wait={wait:.0f}", who.token,
                   timeout=wait + 15)
        if got.status == 200 and isinstance(got.body, dict):
            state = _load_state(hook, who.cli_session_id)
            if state.get("user_driving"):
                return 0  # the user took the session meanwhile; the offer lapses to another
            if _named_in_this_stop(state, got.body, mark):
                # Claude Code goes on with the stop hook's block only once every Stop hook
                # has ended (measured): waiting here would hold the turn that takes it
                return 0
            if _announced(state, got.body, mark):  # named already and not taken: let it lapse
                _pause(hook, who, min(_offer_left(got.body) + 1.0, deadline - clock()), me, cli)
                continue
            _save_state(hook, who.cli_session_id, state)
            print(protocol.offer_text(got.body.get("task", {}), got.body.get("offer", {})),
                  file=sys.stderr)
            return WAKE
    return 0


def _pause(hook: Hook, who: identity.AgentIdentity, seconds: float, me: int,
           cli: int | None) -> None:
    """Sleep up to `seconds`, a second at a time, ending early when this waiter is no longer
    the one or the CLI is gone."""
    end = time.monotonic() + max(0.0, seconds)
    while time.monotonic() < end:
        state = _load_state(hook, who.cli_session_id)
        if state.get("waiter") != me or not _cli_alive(cli):
            return
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))


def _cli_pid(env: Mapping[str, str]) -> int | None:
    """The agent CLI's process: CLAUDE_PID when it says, else our parent, or its parent when
    the parent is the shell the CLI ran the hook command in."""
    pid = env.get("CLAUDE_PID")
    if pid and pid.isdigit():
        return int(pid)
    parent = os.getppid()
    try:
        comm = Path(f"/proc/{parent}/comm").read_text().strip()
        if comm in ("sh", "bash", "dash", "zsh"):
            return int(Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return parent if parent > 1 else None


def _cli_alive(pid: int | None) -> bool:
    """Whether the CLI still runs (a waiter outliving it would hold an offer for nobody)."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _checkpoint(hook: Hook, message: str) -> None:
    """A progress report on every held lease: renews it and says what is going on."""
    who = _known(hook)
    if who is None:
        return
    beat = _beat(hook, who)
    for lease in beat.get("held", []) if isinstance(beat, dict) else []:
        task_id = str(lease.get("task_id"))
        task = call(hook.url, "GET", "/work/" + quote(task_id, safe="/"), who.token).body
        # keep the value the agent last reported: this only adds the message
        progress = ((task.get("task") or {}).get("progress") or {}).get("value") \
            if isinstance(task, dict) else None
        call(hook.url, "POST", "/work/progress", who.token, {
            "task_id": task_id, "fencing_token": lease.get("fencing_token"),
            "progress": progress if isinstance(progress, int | float) else 0.0,
            "message": message})


def notification(hook: Hook) -> None:
    kind = hook.payload.get("notification_type") or "prompt"
    text = str(hook.payload.get("message") or "")[:200]
    _checkpoint(hook, f"input required ({kind}): {text}".strip())


def pre_compact(hook: Hook) -> None:
    trigger = hook.payload.get("trigger") or "auto"
    _checkpoint(hook, f"checkpoint: the agent's context is being compacted ({trigger})")


def session_end(hook: Hook) -> None:
    who = _known(hook)
    if who is None:
        return
    try:
        call(hook.url, "DELETE", "/session/" + quote(who.session_id, safe="/"), who.token,
             timeout=2.0)
    finally:
        identity.remove_token(hook.data_dir, who.cli_session_id)
        _state_path(hook, who.cli_session_id).unlink(missing_ok=True)


HANDLERS: dict[str, Callable[[Hook], None]] = {
    "session-start": session_start, "prompt-submit": prompt_submit, "stop": stop,
    "notification": notification, "pre-compact": pre_compact, "session-end": session_end,
}


# -- the entry point -----------------------------------------------------------------------

USAGE = ("usage: swarm hook EVENT [--cli claude|codex|gemini] [--url URL] [--autopilot] "
         "[--capabilities A,B]\n  EVENT: " + ", ".join(EVENTS))


def parse(argv: Sequence[str], env: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """EVENT and the options (a tiny parser: argparse would be fine, but this is all)."""
    args = list(argv)
    if not args or args[0] not in EVENTS:
        raise ValueError(f"unknown or missing event {args[0] if args else ''!r}")
    event, rest = args[0], args[1:]
    opts: dict[str, Any] = {"cli": "claude", "url": env.get("SWARM_URL") or DEFAULT_URL,
                            "autopilot": False, "capabilities": ("build",)}
    while rest:
        flag = rest.pop(0)
        if flag == "--autopilot":
            opts["autopilot"] = True
        elif flag in ("--cli", "--url", "--capabilities") and rest:
            value = rest.pop(0)
            if flag == "--capabilities":
                opts["capabilities"] = tuple(c for c in value.split(",") if c)
            else:
                opts[flag[2:]] = value
        else:
            raise ValueError(f"unexpected argument {flag!r}")
    if opts["cli"] not in ("claude", "codex", "gemini"):
        raise ValueError(f"--cli must be claude, codex or gemini, got {opts['cli']!r}")
    return event, opts


def read_payload(raw: str) -> dict[str, Any]:
    if not raw.strip():
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the hook input is not a JSON object")
    return data


def main(argv: Sequence[str], stdin: Any = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    try:
        event, opts = parse(argv, env)
    except ValueError as exc:
        print(f"swarm hook: {exc}\n{USAGE}", file=sys.stderr)
        return 0  # a hook never fails the CLI
    hook = Hook(event=event, cli=opts["cli"], url=opts["url"].rstrip("/"), payload={}, env=env,
                autopilot=opts["autopilot"], capabilities=opts["capabilities"])
    code = 0
    try:
        hook.payload = read_payload((stdin or sys.stdin).read())
        if event == "stop-wait":
            code = stop_wait(hook)
        else:
            HANDLERS[event](hook)
    except CallFailed as exc:
        print(f"swarm hook {event}: {exc}", file=sys.stderr)
    except Exception as exc:
        print(f"swarm hook {event}: {type(exc).__name__}: {exc}", file=sys.stderr)
    if hook.out:
        print(json.dumps(hook.out))
    elif hook.cli == "codex" and code == 0:
        print("{}")
    return code
