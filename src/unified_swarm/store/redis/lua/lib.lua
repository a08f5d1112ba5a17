-- Helpers every operation shares. scripts.py puts the header before this file (OP, P,
-- EPOCH, CLOCK, FENCE, CHANNEL, FACTOR, NOWARG, the op arguments A) with the rules of
-- lifecycle.py as data (TRANSITIONS, HELD, FINAL, DEAD, RELEASE, ALPHA, SCORE_START,
-- MAX_PRIORITY), and the dispatcher after the operation files.
--
-- Discipline that keeps each operation one atomic step: Redis never rolls a script back,
-- so every operation checks everything it may refuse BEFORE its first write. After the
-- first write only bugs (an illegal transition) can raise.

local NULL = cjson.null
local EVENTS = {}
local NOW = 0
local SHIFT = 0 -- server clock minus the caller's clock (0 unless CLOCK == 's')
-- 2^43: ready score = (MAX_PRIORITY - priority) * 2^43 + seq, best first
local READY_UNIT = 8796093022208

-- numbers ---------------------------------------------------------------------------------

-- A float as text that parses back to the very same double (Lua's own tostring keeps
-- only 14 digits), always with a dot so JSON readers see a float.
local function F(x)
  local s = string.format('%.17g', x)
  if not string.find(s, '[%.eEn]') then s = s .. '.0' end
  return s
end

local function D(x) return string.format('%d', x) end

-- optional string arguments arrive as '' (None) or '=' .. value
local function OPT(a)
  if a == nil or a == '' then return nil end
  return string.sub(a, 2)
end

-- Redis TIME, but never behind a time this swarm already wrote (Redis's clock stepped
-- back, or a failover to a host whose clock lags): timestamps follow the commit order
local function store_now()
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local last = tonumber(redis.call('GET', P .. ':clock') or '0')
  if now < last then now = last end
  return now
end

local function set_now(raw)
  local given = tonumber(raw)
  if CLOCK == 's' then
    NOW = store_now()
    SHIFT = NOW - given
  else
    NOW = given
  end
end

-- JSON with exact numbers and ordered keys (cjson keeps 14 digits and no key order) ------

local RAW_MT, ARR_MT = {}, {}
local function RAW(s) return setmetatable({s}, RAW_MT) end
local function ARR(t) return setmetatable(t, ARR_MT) end
local function FL(x) return RAW(F(x)) end

local enc
local function obj(...)
  local parts = {}
  for i = 1, select('#', ...), 2 do
    local k, v = select(i, ...)
    parts[#parts + 1] = cjson.encode(k) .. ':' .. enc(v)
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

enc = function(v)
  local ty = type(v)
  if v == nil or v == NULL then return 'null' end
  if ty == 'boolean' then return v and 'true' or 'false' end
  if ty == 'number' then
    if v == math.floor(v) and math.abs(v) < 9007199254740992 then return D(v) end
    return string.format('%.17g', v)
  end
  if ty == 'string' then return cjson.encode(v) end
  if getmetatable(v) == RAW_MT then return v[1] end
  if getmetatable(v) == ARR_MT then
    local parts = {}
    for i = 1, #v do parts[i] = enc(v[i]) end
    return '[' .. table.concat(parts, ',') .. ']'
  end
  error('cannot encode a ' .. ty)
end

-- replies -----------------------------------------------------------------------------------

local function OK(...) return {'ok', EVENTS, ...} end
local function ERR(...) return {'!', EVENTS, ...} end

-- keys and hashes ------------------------------------------------------------------------

local function T(id) return P .. ':task:' .. id end
local function S(id) return P .. ':session:' .. id end
local function HELD_KEY(sid) return P .. ':held:' .. sid end
local function ATT(tid, token) return P .. ':att:' .. tid .. ':' .. token end
-- a member of P:deadlines: equal deadlines then sort by task seq (oldest first)
local function DUE(t) return string.format('%015d', tonumber(t.seq)) .. ':' .. t.id end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

-- HSET the name/value pairs; a nil value deletes the field
local function put(key, ...)
  local set, del = {}, {}
  for i = 1, select('#', ...), 2 do
    local k, v = select(i, ...)
    if v == nil then del[#del + 1] = k else set[#set + 1] = k; set[#set + 1] = v end
  end
  if #set > 0 then redis.call('HSET', key, unpack(set)) end
  if #del > 0 then redis.call('HDEL', key, unpack(del)) end
end

-- events -------------------------------------------------------------------------------------

-- Append one event in this same step: INCR gives the next seq, and a script is all or
-- nothing on a single primary, so the sequence has no gaps.
local function emit(type_, data)
  local seq = redis.call('INCR', P .. ':seq:events')
  local ev = '{"seq":' .. D(seq) .. ',"type":"' .. type_ .. '","at":' .. F(NOW) ..
      ',"data":' .. data .. '}'
  redis.call('ZADD', P .. ':events', seq, ev)
  EVENTS[#EVENTS + 1] = ev
end

-- task state -------------------------------------------------------------------------------

-- lifecycle.check_transition, over the header's TRANSITIONS
local function check_transition(old, new)
  if not TRANSITIONS[old .. '>' .. tostring(new)] then
    error('illegal transition ' .. old .. ' -> ' .. new) -- a bug, never a client error
  end
end

local function ready_score(t)
  return (MAX_PRIORITY - tonumber(t.priority)) * READY_UNIT + tonumber(t.seq)
end

-- Move task `t` (a loaded hash) to `new`, keeping every index that follows the status in
-- step. Entering a held state needs t.assigned_to set first; leaving one drops the lease.
local function set_status(t, new)
  local old, id = t.status, t.id
  if old == new then return end
  check_transition(old, new)
  if old == 'ready' then
    redis.call('ZREM', P .. ':ready:' .. t.required_capability, id)
    redis.call('ZREM', P .. ':ready-any', id)
  end
  if HELD[old] and t.assigned_to then redis.call('ZREM', HELD_KEY(t.assigned_to), id) end
  if HELD[new] then
    redis.call('ZADD', HELD_KEY(t.assigned_to), t.seq, id)
  else
    redis.call('ZREM', P .. ':deadlines', DUE(t))
  end
  if new == 'ready' then
    local score = ready_score(t)
    redis.call('ZADD', P .. ':ready:' .. t.required_capability, score, id)
    redis.call('ZADD', P .. ':ready-any', score, id)
  end
  redis.call('ZREM', P .. ':status:' .. old, id)
  redis.call('ZADD', P .. ':status:' .. new, t.seq, id)
  redis.call('HINCRBY', P .. ':count:tasks', old, -1)
  redis.call('HINCRBY', P .. ':count:tasks', new, 1)
  redis.call('HSET', T(id), 'status', new)
  t.status = new
end

-- the lease or offer deadline (nil clears it)
local function set_lease(t, deadline)
  if deadline then
    t.lease_expires_at = F(deadline)
    redis.call('HSET', T(t.id), 'lease_expires_at', t.lease_expires_at)
    redis.call('ZADD', P .. ':deadlines', deadline, DUE(t))
  else
    t.lease_expires_at = nil
    redis.call('HDEL', T(t.id), 'lease_expires_at')
    redis.call('ZREM', P .. ':deadlines', DUE(t))
  end
end

-- the attempt keeps the lease deadline it ended with (so requeue latency is checkable)
local function end_attempt(t, outcome, err, digest)
  put(ATT(t.id, t.fencing_token), 'ended_at', F(NOW), 'outcome', outcome, 'error', err,
      'digest', digest, 'lease_expires_at', t.lease_expires_at)
end

-- append a handoff note (models.note JSON, written by Python) to the task, in this step
local function add_note(tid, note)
  redis.call('RPUSH', P .. ':notes:' .. tid, note)
end

-- session state ------------------------------------------------------------------------------

local function session_status(sid, new)
  local key = S(sid)
  local cur = redis.call('HGET', key, 'status')
  if cur == new then return end
  redis.call('HSET', key, 'status', new)
  redis.call('HINCRBY', P .. ':count:sessions', cur, -1)
  redis.call('HINCRBY', P .. ':count:sessions', new, 1)
  if new == 'idle' then
    redis.call('ZADD', P .. ':idle', redis.call('HGET', key, 'idle_since'), sid)
  elseif cur == 'idle' then
    redis.call('ZREM', P .. ':idle', sid)
  end
  if new == 'offline' then redis.call('ZREM', P .. ':silence', sid) end
end

-- alive now: the session's silence deadline moves to now + lease TTL
local function touch(sid, interval)
  redis.call('HSET', S(sid), 'last_heartbeat', F(NOW))
  redis.call('ZADD', P .. ':silence', NOW + FACTOR * tonumber(interval), sid)
end

-- alive at NOW (it heart-beat or asked for work): one that had only gone silent is back
local function revive(sid)
  local s = redis.call('HMGET', S(sid), 'status', 'name', 'capabilities', 'heartbeat_interval',
                      'max_concurrent_tasks')
  if s[1] == 'offline' then
    redis.call('HSET', S(sid), 'idle_since', F(NOW))
    session_status(sid, redis.call('ZCARD', HELD_KEY(sid)) > 0 and 'busy' or 'idle')
    emit('session.joined', obj('session_id', sid, 'name', s[2], 'capabilities', RAW(s[3]),
                               'resumed', true, 'heartbeat_interval', RAW(s[4]),
                               'max_concurrent_tasks', tonumber(s[5])))
  end
  touch(sid, s[4])
end

local function maybe_idle(sid)
  local key = S(sid)
  if redis.call('HGET', key, 'status') == 'busy' and redis.call('ZCARD', HELD_KEY(sid)) == 0 then
    redis.call('HSET', key, 'idle_since', F(NOW))
    session_status(sid, 'idle')
  end
end

-- lifecycle.updated_score, with its ALPHA and SCORE_START from the header
local function score(sid, cap, success)
  local x = success and 1.0 or 0.0
  local key, ck = S(sid), P .. ':cscores:' .. sid
  local old = tonumber(redis.call('HGET', key, 'performance_score'))
  local oc = tonumber(redis.call('HGET', ck, cap) or SCORE_START)
  redis.call('HSET', ck, cap, F((1 - ALPHA) * oc + ALPHA * x))
  redis.call('HSET', key, 'performance_score', F((1 - ALPHA) * old + ALPHA * x))
  redis.call('HINCRBY', key, success and 'tasks_completed' or 'tasks_failed', 1)
  maybe_idle(sid)
end

-- the learned model's evidence: stats.apply with the rule from the header (STATS_RULES), on
-- the session's row for the capability and on its totals (STATS_ANY). Rows live in the hash
-- P:stats under "session \t capability", as JSON with exact numbers. Returns the rows as an
-- event carries them.
local function learn(sid, cap, success, duration, estimated_hours)
  local rule = STATS_RULES[success and 'success' or 'failure']
  local est = tonumber(estimated_hours)
  local size = (est and est > 0) and est * 3600 or 1.0 -- stats.size_of
  local d = math.log(math.max(duration, STATS_MIN_DURATION))
  local x = math.log(math.max(duration, STATS_MIN_DURATION) / size)
  local parts = {}
  for _, c in ipairs({cap, STATS_ANY}) do
    local raw = redis.call('HGET', P .. ':stats', sid .. '\t' .. c)
    local row = raw and cjson.decode(raw) or {}
    for _, step in ipairs(rule) do
      local name, a, b = step[1], step[2], step[3]
      if b == 'x' then b = x elseif b == 'x2' then b = x * x elseif b == 'd' then b = d end
      local v = (tonumber(row[name]) or 0) * a + b
      if STATS_INT[name] then v = math.floor(v + 0.5) end
      row[name] = v
    end
    local fields = {}
    for _, name in ipairs(STATS_FIELDS) do
      local v = tonumber(row[name]) or 0
      fields[#fields + 1] = name
      fields[#fields + 1] = STATS_INT[name] and v or FL(v)
    end
    local enc = obj(unpack(fields))
    redis.call('HSET', P .. ':stats', sid .. '\t' .. c, enc)
    parts[#parts + 1] = c
    parts[#parts + 1] = RAW(enc)
  end
  return RAW(obj(unpack(parts)))
end

-- usage (unified_swarm.usage: grow and add, over USAGE_FIELDS from the header) ----------------

-- a usage report or sum as the wire has it (usage.wire): counts whole, dollars to 6 places
local function usage_wire(u, with_attempts)
  if not u then return nil end
  local parts = {}
  for _, f in ipairs(USAGE_FIELDS) do
    local v = tonumber(u[f]) or 0
    parts[#parts + 1] = f
    if f == 'cost_usd' then
      parts[#parts + 1] = RAW(string.format('%.' .. USAGE_COST_DECIMALS .. 'f', v))
    else
      parts[#parts + 1] = math.floor(v + 0.5)
    end
  end
  if with_attempts then
    parts[#parts + 1] = 'attempts'
    parts[#parts + 1] = math.floor((tonumber(u.attempts) or 0) + 0.5)
  end
  return RAW(obj(unpack(parts)))
end

-- a sum (JSON in `field` of hash `key`) after an attempt's report gained `gained`
local function add_usage(key, field, gained)
  local raw = redis.call('HGET', key, field)
  local sums = raw and cjson.decode(raw) or {}
  local parts = {}
  for _, f in ipairs(USAGE_SUM_FIELDS) do
    parts[#parts + 1] = f
    parts[#parts + 1] = FL((tonumber(sums[f]) or 0) + gained[f])
  end
  redis.call('HSET', key, field, obj(unpack(parts)))
  return (tonumber(sums.cost_usd) or 0) + gained.cost_usd
end

-- Keep `report` (JSON text, or nil) on the attempt of t's current token and add what it
-- gained to the sums of the session (its hash's `usage`), of the task type and of the
-- swarm (P:usage, the types ranked by cost in P:usage:types). Returns what the attempt
-- keeps now (nil when it never reported).
local function record_usage(t, sid, report)
  local key = ATT(t.id, t.fencing_token)
  local raw = redis.call('HGET', key, 'usage')
  local kept = raw and cjson.decode(raw) or nil
  if not report then return kept end
  local new = cjson.decode(report)
  local now, gained, moved = {}, {}, false
  for _, f in ipairs(USAGE_FIELDS) do
    local old = kept and tonumber(kept[f]) or 0
    now[f] = math.max(old, tonumber(new[f]) or 0)
    gained[f] = now[f] - old
    moved = moved or gained[f] > 0
  end
  gained.attempts = kept and 0 or 1
  if not (moved or gained.attempts > 0) then return kept end
  local parts = {}
  for _, f in ipairs(USAGE_FIELDS) do parts[#parts + 1] = f; parts[#parts + 1] = FL(now[f]) end
  redis.call('HSET', key, 'usage', obj(unpack(parts)))
  add_usage(S(sid), 'usage', gained)
  local cost = add_usage(P .. ':usage', 'type\t' .. t.type, gained)
  redis.call('ZADD', P .. ':usage:types', cost, t.type)
  add_usage(P .. ':usage', 'swarm', gained)
  return now
end

-- the session's rate-limited state becomes `state` (JSON text; nil clears it); a change
-- emits session.rate_limited
local function set_rate_limited(sid, state)
  local old = redis.call('HGET', S(sid), 'rate_limited')
  if old == (state or false) then return end
  put(S(sid), 'rate_limited', state)
  emit('session.rate_limited', obj('session_id', sid, 'rate_limited', state and RAW(state)))
end

local function session_reply(sid)
  local flat = redis.call('HGETALL', S(sid))
  if #flat == 0 then return false end
  return {flat, redis.call('ZRANGE', HELD_KEY(sid), 0, -1),
          redis.call('HGETALL', P .. ':cscores:' .. sid)}
end

-- dependencies ------------------------------------------------------------------------------

local function sorted_members(key)
  local ids = redis.call('SMEMBERS', key)
  table.sort(ids)
  return ids
end

-- collab.lua: a task reached a final status; its waiting split parent may end (defined there)
local child_ended

-- every pending task downstream of a dead one can never run: block it, transitively; a
-- blocked subtask then fails its waiting parent (after the walk, so the parent's cascade
-- never races it)
local function block_dependents(tid)
  local frontier, blocked = {tid}, {}
  while #frontier > 0 do
    local cause = table.remove(frontier)
    for _, dep in ipairs(sorted_members(P .. ':dependents:' .. cause)) do
      local t = hgetall(T(dep))
      if t and t.status == 'pending' then
        set_status(t, 'blocked')
        put(T(dep), 'updated_at', F(NOW), 'completed_at', F(NOW))
        emit('task.blocked', obj('task_id', dep, 'because', cause))
        frontier[#frontier + 1] = dep
        blocked[#blocked + 1] = t
      end
    end
  end
  for _, t in ipairs(blocked) do
    if t.parent_id then child_ended(t) end
  end
end

-- a completed task: dependents whose last open dependency it was become ready
local function release_dependents(tid)
  for _, dep in ipairs(sorted_members(P .. ':dependents:' .. tid)) do
    local t = hgetall(T(dep))
    if t and t.status == 'pending'
        and redis.call('HINCRBY', T(dep), 'open_deps', -1) <= 0 then
      t.priority = t.priority_ready -- lifecycle.on_ready, precomputed when the task was added
      put(T(dep), 'priority', t.priority, 'updated_at', F(NOW))
      set_status(t, 'ready')
      emit('task.ready', obj('task_id', dep, 'required_capability', t.required_capability,
                             'priority', tonumber(t.priority)))
    end
  end
end

-- releasing held work --------------------------------------------------------------------------

-- an attempt that does not count against max_attempts (released, preempted, or waiting for
-- an answer when its holder went)
local function uncount(t)
  t.attempts = D(tonumber(t.attempts) - 1)
  redis.call('HSET', T(t.id), 'attempts', t.attempts)
end

-- a renewed lease: a preempted one runs no further than its grace (lifecycle.renewed)
local function renewed(t, deadline)
  local until_ = tonumber(t.preempt_at)
  if until_ and until_ < deadline then return until_ end
  return deadline
end

-- lifecycle.after_release: where a held task goes (RELEASE from the header), by whether it
-- may run again (lifecycle.may_retry: a retry is wanted and attempts remain)
local function release(t, retry, reason, err, extra)
  local holder = t.assigned_to
  local again = retry and tonumber(t.attempts) < tonumber(t.max_attempts)
  local new = RELEASE[t.status .. '|' .. (again and 'again' or 'done')]
  check_transition(t.status, new)
  set_status(t, new)
  set_lease(t, nil)
  t.assigned_to = nil
  put(T(t.id), 'assigned_to', nil, 'updated_at', F(NOW), 'preempt_at', nil)
  if err then redis.call('HSET', T(t.id), 'error', err) end
  if FINAL[new] then redis.call('HSET', T(t.id), 'completed_at', F(NOW)) end
  if holder then maybe_idle(holder) end
  local data = obj('task_id', t.id, 'session_id', holder, 'reason', reason, 'error', err,
                   'attempts', tonumber(t.attempts), 'required_capability', t.required_capability)
  -- extra: more fields for the event, as obj() takes them (a failure's stats and usage)
  if extra then data = string.sub(data, 1, -2) .. ',' .. string.sub(obj(unpack(extra)), 2) end
  emit(new == 'ready' and 'task.requeued' or 'task.failed', data)
  if DEAD[new] then
    t.error = err or t.error
    child_ended(t) -- first: the parent's error names this task
    block_dependents(t.id)
  end
  return new
end

-- everything a departing session holds goes back to the queue (offers and leases);
-- `moved` (optional) collects {id, new status} of each
local function release_held(sid, outcome, reason, moved)
  for _, tid in ipairs(redis.call('ZRANGE', HELD_KEY(sid), 0, -1)) do
    local t = hgetall(T(tid))
    if PAUSED[t.status] then -- it waited for an answer, it did not fail: not counted
      end_attempt(t, outcome, UNCOUNTED_ERRORS.waited)
      uncount(t)
    elseif RUNNING[t.status] then
      end_attempt(t, outcome, reason)
    end
    local new = release(t, true, reason, nil)
    if moved then moved[#moved + 1] = {tid, new} end
  end
end

-- the SQLite store's sessions.py `_drain`: a draining session keeps its leases and starts nothing new, so
-- offers it has not claimed go back at once (whether the operator or the session asked)
local function drain(sid)
  local st = redis.call('HGET', S(sid), 'status')
  if st == 'idle' or st == 'busy' then
    session_status(sid, 'draining')
    emit('session.draining', obj('session_id', sid))
  end
  for _, tid in ipairs(redis.call('ZRANGE', HELD_KEY(sid), 0, -1)) do
    local t = hgetall(T(tid))
    if t.status == 'assigned' then release(t, true, 'draining', nil) end
  end
end

local function leave(sid, reason, moved)
  local s = hgetall(S(sid))
  local outcome = reason == 'left' and 'released' or 'expired'
  release_held(sid, outcome, 'session ' .. reason, moved)
  session_status(sid, 'offline')
  redis.call('HDEL', S(sid), 'rate_limited') -- a session that is gone waits on no API
  if reason == 'left' and s.token_hash then
    redis.call('HDEL', P .. ':tokens', s.token_hash)
    redis.call('HDEL', S(sid), 'token_hash')
  end
  if s.status ~= 'offline' or reason == 'left' then
    emit('session.' .. reason, obj('session_id', sid, 'name', s.name))
  end
end
