"""The Redis keyspace, written down before the code (P is `settings.redis_prefix`).

| key                        | type   | holds                                                   |
|----------------------------|--------|---------------------------------------------------------|
| P:meta                     | hash   | epoch, schema, completed, duration_sum, interrupt (JSON) |
| P:seq:events               | string | last event seq (INCR: contiguous, one per state change)  |
| P:events                   | zset   | seq -> event JSON {"seq","type","at","data"}              |
| P:seq:tasks                | string | last task seq (insertion order, the list cursor)         |
| P:task:{id}                | hash   | one task: the Task fields, plus seq, open_deps,          |
|                            |        | priority_ready (lifecycle.ready_priority, precomputed)  |
| P:tasks                    | zset   | seq -> task id: every task, insertion order              |
| P:status:{status}          | zset   | seq -> task id, per task status                          |
| P:count:tasks              | hash   | status -> number of tasks                                |
| P:ready:{capability}       | zset   | (10 - priority) * 2^43 + seq -> id: ready tasks needing  |
|                            |        | that capability; the head is the best one                |
| P:ready-any                | zset   | the same score -> id: every ready task (sessions without |
|                            |        | capabilities take any)                                   |
| P:deadlines                | zset   | deadline -> "{seq:015d}:{id}" (assigned, in_progress)   |
| P:dependents:{id}          | set    | ids of the tasks that depend on {id}                     |
| P:notes:{id}               | list   | handoff notes of the task, oldest first (JSON each)     |
| P:att:{id}:{token}         | hash   | the attempt that fencing token {token} started (its      |
|                            |        | `usage` JSON among its fields)                           |
| P:holders:{id}             | set    | sessions that ever held {id} (LeaseLost vs Forbidden)    |
| P:session:{id}             | hash   | one session: the Session fields, idle_since, token_hash, |
|                            |        | usage (sums JSON), rate_limited (JSON)                   |
| P:sessions                 | zset   | registered_at -> session id (then by id)                 |
| P:held:{session}           | zset   | seq -> task id: what the session holds (offers, leases)  |
| P:cscores:{session}        | hash   | capability -> score                                      |
| P:tokens                   | hash   | token hash -> session id                                 |
| P:stats                    | hash   | "session \\t capability" -> stats.PairStats JSON         |
| P:quarantine               | hash   | "session \\t capability" -> "until \\t ejections"         |
| P:silence                  | zset   | last_heartbeat + lease TTL -> session id (not offline)   |
| P:idle                     | zset   | idle_since -> session id (status idle)                   |
| P:count:sessions           | hash   | status -> number of sessions                             |
| P:kv                       | hash   | topic -> latest version (tombstones included)            |
| P:k:{topic}                | hash   | version -> entry JSON (every version is kept)            |
| P:klive                    | hash   | topic -> latest entry JSON, live topics only             |
| P:clock                    | string | the latest time a write recorded (store clock only)     |
| P:leader                   | string | "holder\\ntoken" of the leader lease (PX: expires)        |
| P:leader:token             | string | last leader token (INCR: monotonic, never expires)       |
| P:pins                     | hash   | pool -> the size the operator pinned it to               |
| P:usage                    | hash   | "swarm", "type \\t {type}" -> usage sums JSON (usage.py) |
| P:usage:types              | zset   | cost_usd sum -> task type (the costliest types first)    |
| P:{db}:notify (pub/sub)    |        | the last seq of each write: "re-read the event log"      |

The Lua scripts build key names from P, so every key of one swarm is derived from the
prefix: the store needs one standalone Redis primary (not Redis Cluster). A prefix is a
plain name (no `:`), so the keys of two prefixes can never collide. Pub/sub ignores the
database number, so the channel name carries it.
"""

from __future__ import annotations

import re

from ...errors import InvalidInput

PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Keys:
    """The names the Python side needs: the prefix (the scripts derive every key from it)
    and the pub/sub channel."""

    def __init__(self, prefix: str, db: int) -> None:
        if not PREFIX_RE.match(prefix):
            raise InvalidInput(f"redis_prefix {prefix!r} must match {PREFIX_RE.pattern}")
        self.prefix = prefix
        self.channel = f"{prefix}:{db}:notify"
