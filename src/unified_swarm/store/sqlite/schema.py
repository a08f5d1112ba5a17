"""The SQLite schema, in one place, with its version.

tasks.seq is the insertion order ("then age") and the list cursor. Partial indexes keep the
hot queries small: `tasks_ready` serves "best ready task of capability C" with one index probe
per capability, `tasks_deadline` serves the reaper, `tasks_holder` the per-session lookups.
events.seq is the contiguous event sequence: one writer commits, and a rolled-back step
gives its numbers back, so there are no gaps.
"""

from __future__ import annotations

from collections.abc import Iterable

from ...lifecycle import HELD
from ...models import TaskStatus

SCHEMA_VERSION = 1

#: columns added after a table first shipped: (table, column, declaration). A data file
#: from an earlier version gains them when it opens; new tables come from their CREATE
#: TABLE IF NOT EXISTS alone.
ADDED_COLUMNS = (
    ("attempts", "predicted", "REAL"),
    ("sessions", "detected_capabilities", "TEXT NOT NULL DEFAULT '[]'"),
    ("tasks", "preempt_at", "REAL"),
    ("tasks", "context_topics", "TEXT NOT NULL DEFAULT '[]'"),
    ("tasks", "depth", "INTEGER NOT NULL DEFAULT 0"),
    ("attempts", "usage", "TEXT"),
    ("sessions", "usage", "TEXT"),
    ("sessions", "rate_limited", "TEXT"),
    ("tasks", "preemptions", "INTEGER NOT NULL DEFAULT 0"),
)


def sql_in(statuses: Iterable[TaskStatus]) -> str:
    """A set of statuses as an SQL list, `('assigned', 'in_progress')`: sorted, so the text
    is the same in every query and in the partial indexes (SQLite uses a partial index only
    for a query whose WHERE repeats the index's own terms)."""
    return "(" + ", ".join(f"'{s.value}'" for s in sorted(statuses)) + ")"


#: the lifecycle's status sets as SQL: every status list in this store comes from these
HELD_IN = sql_in(HELD)
READY = f"'{TaskStatus.READY.value}'"
RUNNING = f"'{TaskStatus.IN_PROGRESS.value}'"
OFFERED = f"'{TaskStatus.ASSIGNED.value}'"

DDL = f"""
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS sessions (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    capabilities         TEXT NOT NULL,          -- JSON list
    status               TEXT NOT NULL,
    max_concurrent_tasks INTEGER NOT NULL,
    heartbeat_interval   REAL NOT NULL,
    last_heartbeat       REAL NOT NULL,
    registered_at        REAL NOT NULL,
    idle_since           REAL NOT NULL,
    token_hash           TEXT UNIQUE,
    metadata             TEXT NOT NULL,          -- JSON object
    performance_score    REAL NOT NULL DEFAULT 0.5,
    capability_scores    TEXT NOT NULL DEFAULT '{{}}',
    tasks_completed      INTEGER NOT NULL DEFAULT 0,
    tasks_failed         INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS tasks (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    type                TEXT NOT NULL,
    title               TEXT NOT NULL,
    input               TEXT,                    -- JSON
    required_capability TEXT NOT NULL,
    priority            INTEGER NOT NULL,
    priority_given      INTEGER NOT NULL,
    critical            INTEGER NOT NULL,
    infinite_scale      INTEGER NOT NULL,
    roi                 TEXT,
    estimated_hours     REAL,
    dependencies        TEXT NOT NULL,           -- JSON list, also rows in deps
    status              TEXT NOT NULL,
    assigned_to         TEXT,
    attempts            INTEGER NOT NULL,
    max_attempts        INTEGER NOT NULL,
    lease_expires_at    REAL,
    fencing_token       INTEGER NOT NULL,
    progress            REAL NOT NULL,
    progress_message    TEXT,
    result              TEXT,                    -- JSON
    error               TEXT,
    parent_id           TEXT,
    created_at          REAL NOT NULL,
    started_at          REAL,
    completed_at        REAL,
    updated_at          REAL,
    preempt_at          REAL                     -- the end of a preemption's grace
);
CREATE INDEX IF NOT EXISTS tasks_ready
    ON tasks (required_capability, priority DESC, seq) WHERE status = {READY};
CREATE INDEX IF NOT EXISTS tasks_ready_any
    ON tasks (priority DESC, seq) WHERE status = {READY};
CREATE INDEX IF NOT EXISTS tasks_deadline
    ON tasks (lease_expires_at) WHERE status IN {HELD_IN};
CREATE INDEX IF NOT EXISTS tasks_holder
    ON tasks (assigned_to) WHERE status IN {HELD_IN};
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status, seq);
-- the task list's capability filter (GET /work?capability=): a range of one index in
-- insertion order, not a walk over every task until a page fills. (No such index for the
-- session filter: SQLite would take it over tasks_holder for the claim path's "what does
-- this session hold" and walk every task the session ever ran.)
CREATE INDEX IF NOT EXISTS tasks_capability ON tasks (required_capability, seq);
CREATE INDEX IF NOT EXISTS tasks_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL;

-- one row per split parent (collab.py): its subtasks in the holder's order (a merge task
-- last), the merge strategy, and the attempt's token and request digest (a retried split
-- answers the same subtasks)
CREATE TABLE IF NOT EXISTS splits (
    task_id       TEXT PRIMARY KEY,
    fencing_token INTEGER NOT NULL,
    merge         TEXT NOT NULL,
    merge_task    TEXT,
    children      TEXT NOT NULL                  -- JSON list of task ids
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS deps (
    task_id    TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    PRIMARY KEY (task_id, depends_on)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deps_reverse ON deps (depends_on);

CREATE TABLE IF NOT EXISTS attempts (
    task_id       TEXT NOT NULL,
    fencing_token INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    session_id    TEXT NOT NULL,
    capability    TEXT NOT NULL,
    started_at    REAL NOT NULL,
    ended_at      REAL,
    outcome       TEXT,
    error         TEXT,
    digest        TEXT,                          -- of the recorded outcome, for idempotency
    lease_expires_at REAL,                       -- the lease's deadline when the attempt ended
    PRIMARY KEY (task_id, fencing_token)
) WITHOUT ROWID;

-- handoff notes per task, in the order they were left (models.note JSON)
CREATE TABLE IF NOT EXISTS notes (
    task_id TEXT NOT NULL,
    n       INTEGER NOT NULL,
    note    TEXT NOT NULL,                       -- JSON object
    PRIMARY KEY (task_id, n)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS knowledge (
    topic      TEXT NOT NULL,
    version    INTEGER NOT NULL,
    content    TEXT,                             -- JSON
    tags       TEXT NOT NULL,                    -- JSON list
    updated_by TEXT,
    updated_at REAL NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, version)
) WITHOUT ROWID;

-- the learned model's evidence per (session, capability), and per session under '*'
-- (stats.PairStats, moved by stats.ON_SUCCESS / ON_FAILURE in the outcome's step)
CREATE TABLE IF NOT EXISTS stats (
    session_id TEXT NOT NULL,
    capability TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    successes  INTEGER NOT NULL,
    failures   INTEGER NOT NULL,
    w_success  REAL NOT NULL,
    w_failure  REAL NOT NULL,
    w_duration REAL NOT NULL,
    sum_log    REAL NOT NULL,
    sum_log2   REAL NOT NULL,
    sum_log_raw REAL NOT NULL,
    streak     INTEGER NOT NULL,
    PRIMARY KEY (session_id, capability)
) WITHOUT ROWID;

-- open and half-open circuit breakers (models.Quarantine)
CREATE TABLE IF NOT EXISTS quarantines (
    session_id TEXT NOT NULL,
    capability TEXT NOT NULL,
    until      REAL NOT NULL,
    ejections  INTEGER NOT NULL,
    PRIMARY KEY (session_id, capability)
) WITHOUT ROWID;

-- the answers of keyed steps (an Idempotency-Key in its scope), kept until expires_at
-- (store/replay.py), expired rows purged a few at a time by later keyed writes
CREATE TABLE IF NOT EXISTS idempotency (
    id          TEXT PRIMARY KEY,                -- models.Idem.id: scope and key, digested
    fingerprint TEXT NOT NULL,                   -- of the request that first carried it
    kind        TEXT NOT NULL,                   -- replay.KINDS
    reply       TEXT NOT NULL,                   -- JSON (replay.encode)
    expires_at  REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);

-- usage sums (unified_swarm.usage) per task type (scope 'type', name the type) and for the
-- swarm (scope 'swarm', name ''), a session's own sums being in sessions.usage
CREATE TABLE IF NOT EXISTS usage_totals (
    scope    TEXT NOT NULL,
    name     TEXT NOT NULL,
    sums     TEXT NOT NULL,                      -- JSON object (usage.SUM_FIELDS)
    cost_usd REAL NOT NULL,                      -- sums.cost_usd, for the costliest types
    PRIMARY KEY (scope, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_totals_cost ON usage_totals (scope, cost_usd DESC);

-- tasks per status, kept by the triggers below in the step that moves a task: the status
-- view reads a handful of rows instead of counting a million tasks (the Redis store keeps
-- the same in its count:tasks hash)
CREATE TABLE IF NOT EXISTS task_counts (
    status TEXT PRIMARY KEY,
    n      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    at   REAL NOT NULL,
    data TEXT NOT NULL                           -- JSON object
);
"""

#: the triggers that keep task_counts (each one statement: a trigger body holds `;`, so they
#: are not in DDL, which is split on it)
TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS task_counts_insert AFTER INSERT ON tasks BEGIN
        INSERT INTO task_counts (status, n) VALUES (NEW.status, 1)
            ON CONFLICT (status) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER IF NOT EXISTS task_counts_delete AFTER DELETE ON tasks BEGIN
        UPDATE task_counts SET n = n - 1 WHERE status = OLD.status;
    END""",
    """CREATE TRIGGER IF NOT EXISTS task_counts_update AFTER UPDATE OF status ON tasks
        WHEN OLD.status IS NOT NEW.status BEGIN
        UPDATE task_counts SET n = n - 1 WHERE status = OLD.status;
        INSERT INTO task_counts (status, n) VALUES (NEW.status, 1)
            ON CONFLICT (status) DO UPDATE SET n = n + 1;
    END""",
)
