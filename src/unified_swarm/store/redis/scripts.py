"""The one Lua script behind every RedisStore operation, and what its replies mean.

The script is a generated header (the arguments unpacked, and `lifecycle`'s tables as Lua
data: `rules()`), lua/lib.lua (shared helpers), the operation files, and a dispatcher that
runs one operation. Every call sends:

    ARGV = op, prefix, epoch, clock, fence, channel, lease_factor, now, idem,
           [fingerprint, ttl, extra: only when idem is not ''], op arguments...

The dispatcher first refuses when the store epoch is not the one this process opened
(an emptied or replaced Redis), and, for the coordinator's writes (reap, offer),
when this process believes it leads but the leader lease says otherwise. Then it sets NOW
(the caller's `now`, or Redis TIME with the store clock, never behind the last time a
write recorded), runs the operation, and publishes the last event seq when the operation
emitted events. A call with an Idempotency-Key (`idem`, lua/keyed.lua) is answered
from the answer kept under the key when there is one (reply status "="), and otherwise
keeps its answer under the key in the same script call when it changed something.

A reply is `{"ok" | "!", [event JSON...], payload...}`; "!" carries a refusal code and
its arguments, which `refusal` turns into the same SwarmError the SQLite store raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import resources

from ... import lifecycle, stats, usage
from ...errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InvalidInput,
    LeaseLost,
    NotClaimable,
    NotFound,
    OutcomeMismatch,
    StaleVersion,
    SwarmError,
    TaskTaken,
    Unavailable,
)
from ...models import CANDIDATE_FIELDS, TaskStatus
from ..replay import reused

LUA_FILES = ("lib.lua", "collab.lua", "sessions.lua", "tasks.lua", "swarm.lua", "learning.lua",
             "keyed.lua")

ARGUMENTS = """\
local OP, P, EPOCH, CLOCK, FENCE, CHANNEL = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local FACTOR, NOWARG = tonumber(ARGV[7]), ARGV[8]
local IDEM, IDEM_FP, IDEM_TTL, IDEM_EXTRA, FIRST = ARGV[9], nil, nil, nil, 10
if IDEM ~= '' then
  IDEM_FP, IDEM_TTL, IDEM_EXTRA, FIRST = ARGV[10], tonumber(ARGV[11]), ARGV[12], 13
end
local A = {}
for i = FIRST, #ARGV do A[i - FIRST + 1] = ARGV[i] end
local OPS = {}
"""

DISPATCH = """\
local op = OPS[OP]
if not op then return {'!', {}, 'unknown_op', OP} end
if OP ~= 'init' then
  local epoch = redis.call('HGET', P .. ':meta', 'epoch')
  if epoch ~= EPOCH then return {'!', {}, 'epoch', epoch or ''} end
end
if FENCE ~= '' and (OP == 'reap' or OP == 'offer')
    and redis.call('GET', P .. ':leader') ~= FENCE then
  return {'!', {}, 'not_leader'}
end
if NOWARG ~= '' then set_now(NOWARG) end
if IDEM ~= '' then
  local kept = kept_answer()
  if kept then return kept end
end
local reply = op()
if IDEM ~= '' and reply[1] == 'ok' and #EVENTS > 0 and not empty_answer(reply) then
  keep_answer(reply)
end
if #EVENTS > 0 and CLOCK == 's' then redis.call('SET', P .. ':clock', F(NOW)) end
if #EVENTS > 0 then
  redis.call('PUBLISH', CHANNEL, string.match(EVENTS[#EVENTS], '^{"seq":(%d+)'))
end
return reply
"""


def _set(statuses: Iterable[TaskStatus]) -> str:
    return "{" + ", ".join(f"['{s.value}'] = true" for s in sorted(statuses)) + "}"


def rules() -> str:
    """The lifecycle's tables as Lua data, so no Lua file restates them:

    TRANSITIONS['old>new'], the sets HELD, PAUSED, RUNNING, FINAL and DEAD,
    RELEASE['status|again'] and RELEASE['status|done'] (`lifecycle.after_release`), the
    score's ALPHA and SCORE_START, and MAX_PRIORITY (the ready index's score)."""
    edges = ", ".join(f"['{old.value}>{new.value}'] = true"
                      for old, new in sorted(lifecycle.TRANSITIONS))
    release = ", ".join(f"['{status.value}|{'again' if again else 'done'}'] = '{new.value}'"
                        for (status, again), new in sorted(lifecycle.RELEASE.items()))
    return "\n".join([
        f"local TRANSITIONS = {{{edges}}}",
        f"local HELD = {_set(lifecycle.HELD)}",
        f"local PAUSED = {_set(lifecycle.PAUSED)}",
        f"local RUNNING = {_set(lifecycle.RUNNING)}",
        f"local FINAL = {_set(lifecycle.FINAL)}",
        f"local DEAD = {_set(lifecycle.DEAD)}",
        f"local RELEASE = {{{release}}}",
        f"local ALPHA, SCORE_START = {lifecycle.SCORE_ALPHA!r}, {lifecycle.SCORE_START!r}",
        f"local MAX_PRIORITY = {lifecycle.MAX_PRIORITY}",
        # the errors of attempts that do not count against max_attempts
        f"local UNCOUNTED_ERRORS = {{by_choice = '{lifecycle.RELEASED_BY_CHOICE}', "
        f"preempted = '{lifecycle.RELEASED_PREEMPTED}', revoked = '{lifecycle.REVOKED}', "
        f"answered = '{lifecycle.ANSWERED_AFTER_LEAVING}', "
        f"waited = '{lifecycle.WAITED_WHEN_GONE}'}}",
        # the learned model's update (stats.py): the same rule the SQLite store applies
        f"local STATS_RULES = {{success = {stats.lua_table(stats.ON_SUCCESS)}, "
        f"failure = {stats.lua_table(stats.ON_FAILURE)}}}",
        "local STATS_FIELDS = {" + ", ".join(f"'{f}'" for f in stats.FIELDS) + "}",
        f"local STATS_INT = {{{', '.join(f'{f} = true' for f in sorted(stats.INT_FIELDS))}}}",
        f"local STATS_ANY, STATS_MIN_DURATION = '{stats.ANY}', {stats.MIN_DURATION!r}",
        # what an attempt's usage holds and a sum adds up (usage.py: grow, add, wire)
        "local USAGE_FIELDS = {" + ", ".join(f"'{f}'" for f in usage.FIELDS) + "}",
        "local USAGE_SUM_FIELDS = {" + ", ".join(f"'{f}'" for f in usage.SUM_FIELDS) + "}",
        f"local USAGE_COST_DECIMALS = {usage.COST_DECIMALS}",
        # not a rule: the fields a scheduler's candidate carries (models.Candidate)
        "local CANDIDATE_FIELDS = {" + ", ".join(f"'{f}'" for f in CANDIDATE_FIELDS) + "}",
    ]) + "\n"


def source() -> str:
    """The whole script: arguments, the lifecycle's rules as data, the Lua files, dispatch."""
    parts = [ARGUMENTS, rules()]
    folder = resources.files(__package__).joinpath("lua")
    parts += [folder.joinpath(name).read_text(encoding="utf-8") for name in LUA_FILES]
    parts.append(DISPATCH)
    return "\n".join(parts)


def _lease_gone(tid: str, token: str, outcome: str) -> LeaseLost:
    suffix = " (expired)" if not outcome else f" ({outcome})"
    return LeaseLost(f"the lease of {tid!r} (token {token}) is no longer held{suffix}")


#: a refusal code of the scripts -> the error it stands for, built from its arguments
REFUSALS: dict[str, Callable[..., SwarmError]] = {
    "no_task": lambda tid: NotFound(f"task {tid!r} does not exist"),
    "no_session": lambda sid: NotFound(f"session {sid!r} does not exist"),
    "no_topic": lambda topic: NotFound(f"knowledge topic {topic!r} does not exist"),
    "already_online": lambda sid: AlreadyExists(f"session {sid!r} is online already"),
    "task_exists": lambda tid: AlreadyExists(f"task id {tid!r} already exists"),
    "left": lambda sid: NotClaimable(f"session {sid!r} left the swarm"),
    "draining": lambda sid: NotClaimable(f"session {sid!r} is draining and takes no new work"),
    "at_capacity": lambda sid, n: NotClaimable(
        f"session {sid!r} already runs {n} task(s), its max_concurrent_tasks"),
    "offered_elsewhere": lambda tid: TaskTaken(f"task {tid!r} is offered to another session"),
    "not_ready": lambda tid, status: TaskTaken(f"task {tid!r} is {status}, not ready"),
    "capability": lambda tid, cap, sid: TaskTaken(
        f"task {tid!r} needs capability {cap!r}, which session {sid!r} does not have"),
    "final": lambda tid, status: NotClaimable(f"task {tid!r} is already {status}"),
    "no_question": lambda tid, status: NotClaimable(
        f"task {tid!r} is {status} and asks no question"),
    "stale_token": lambda tid, token: LeaseLost(
        f"fencing token {token} is not the current lease of {tid!r}"),
    "not_holder": lambda tid: Forbidden(f"task {tid!r} is not held by this session"),
    "other_outcome": lambda tid, token, outcome: OutcomeMismatch(
        f"a different {outcome} outcome is already recorded for {tid!r} token {token}"),
    "ended": lambda tid, token, outcome: OutcomeMismatch(
        f"attempt {token} of {tid!r} already ended {outcome}"),
    "lease_gone": _lease_gone,
    "no_subtasks": lambda tid: InvalidInput(f"a split of {tid!r} needs at least one subtask"),
    "stale_version": lambda topic, current, expected: StaleVersion(
        f"knowledge {topic!r} is at version {current}, not {expected}: read it again"),
    "idem_reused": reused,
    "not_leader": lambda: Conflict("this replica no longer holds the leader lease"),
    "damaged": lambda: Unavailable(
        "refusing to start: swarm keys exist under this prefix but the store epoch is "
        "missing (evicted or partly restored data); restore the AOF"),
}


def refusal(code: str, args: list[str]) -> SwarmError:
    make = REFUSALS.get(code)
    if make is None:
        return SwarmError(f"the redis store script refused with {code!r} {args}")
    return make(*args)
