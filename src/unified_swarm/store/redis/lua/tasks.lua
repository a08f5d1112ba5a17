-- Task operations: insert a planned batch, candidates, claim, offer, outcomes, cancel, and
-- the reaper. Which task a session gets is decided in Python (core/scheduling.py); these
-- operations only read candidates and claim or offer the task they are named.

-- A: n external dependencies, then (id, status the plan assumed) each; n tasks, then per
-- task: id, status, open_deps, task.added data (JSON), n field pairs, the pairs, n deps,
-- the deps. The plan (core/planning.py) read those statuses; the batch is written only if
-- every one still holds ('replan' otherwise) and no id exists, else nothing is written.
-- Reads such a batch from A, from position `i`: the tasks, or nil and 'replan' or the
-- refusal. Writes nothing.
local function read_batch(i)
  local function nxt() i = i + 1; return A[i - 1] end
  local n_ext = tonumber(nxt())
  for _ = 1, n_ext do
    local id, assumed = nxt(), nxt()
    if redis.call('HGET', T(id), 'status') ~= assumed then return nil, OK('replan') end
  end
  local tasks = {}
  for k = 1, tonumber(nxt()) do
    local t = {id = nxt(), status = nxt(), open_deps = nxt(), data = nxt(), fields = {}, deps = {}}
    for f = 1, 2 * tonumber(nxt()) do t.fields[f] = nxt() end
    for d = 1, tonumber(nxt()) do t.deps[d] = nxt() end
    if redis.call('EXISTS', T(t.id)) == 1 then return nil, ERR('task_exists', t.id) end
    tasks[k] = t
  end
  return tasks
end

-- writes a batch read by read_batch; the seqs given
local function write_batch(tasks)
  local seqs = {}
  for k, t in ipairs(tasks) do
    local seq = redis.call('INCR', P .. ':seq:tasks')
    seqs[k] = seq
    local key = T(t.id)
    redis.call('HSET', key, unpack(t.fields))
    put(key, 'id', t.id, 'status', t.status, 'seq', D(seq), 'open_deps', t.open_deps,
        'created_at', F(NOW), 'updated_at', F(NOW))
    redis.call('ZADD', P .. ':tasks', seq, t.id)
    redis.call('ZADD', P .. ':status:' .. t.status, seq, t.id)
    redis.call('HINCRBY', P .. ':count:tasks', t.status, 1)
    if t.status == 'ready' then
      local f = redis.call('HMGET', key, 'priority', 'required_capability')
      local sc = ready_score({priority = f[1], seq = seq})
      redis.call('ZADD', P .. ':ready:' .. f[2], sc, t.id)
      redis.call('ZADD', P .. ':ready-any', sc, t.id)
    end
    for _, dep in ipairs(t.deps) do redis.call('SADD', P .. ':dependents:' .. dep, t.id) end
    emit('task.added', t.data)
  end
  return seqs
end

OPS.insert_batch = function()
  local tasks, refused = read_batch(1)
  if not tasks then return refused end
  return OK('added', write_batch(tasks), F(NOW))
end

-- claiming ----------------------------------------------------------------------------------

-- The session when it may start work now, else nil and the refusal. Writes nothing: a
-- session that had only gone silent counts as alive (asking for work proves liveness),
-- and the caller revives it once every check has passed.
local function claimable(sid)
  local s = hgetall(S(sid))
  if not s then return nil, ERR('no_session', sid) end
  if s.status == 'offline' and s.token_hash then
    s.status = redis.call('ZCARD', HELD_KEY(sid)) > 0 and 'busy' or 'idle'
  end
  if s.status == 'offline' then return nil, ERR('left', sid) end
  if s.status == 'draining' then return nil, ERR('draining', sid) end
  local running = 0
  for _, tid in ipairs(redis.call('ZRANGE', HELD_KEY(sid), 0, -1)) do
    if redis.call('HGET', T(tid), 'status') == 'in_progress' then running = running + 1 end
  end
  if running >= tonumber(s.max_concurrent_tasks) then
    return nil, ERR('at_capacity', sid, D(running))
  end
  s.running = running
  s.caps = cjson.decode(s.capabilities)
  return s
end

-- after every check passed: the session proved it is alive (one that left stays as it is)
local function alive(s)
  if s.token_hash then revive(s.id) end
end

-- the session declares capability `cap`, or none (then it takes any)
local function can_take(s, cap)
  if #s.caps == 0 then return true end
  for _, c in ipairs(s.caps) do
    if c == cap then return true end
  end
  return false
end

local function claim_task(tid, s, predicted)
  local t = hgetall(T(tid))
  check_transition(t.status, 'in_progress')
  local sid = s.id
  local attempts = tonumber(t.attempts) + 1
  local token = tonumber(t.fencing_token) + 1
  local lease = NOW + FACTOR * tonumber(s.heartbeat_interval)
  t.assigned_to = sid
  set_status(t, 'in_progress')
  put(T(tid), 'assigned_to', sid, 'attempts', D(attempts), 'fencing_token', D(token),
      'started_at', F(NOW), 'progress', '0.0', 'progress_message', nil, 'updated_at', F(NOW),
      'preempt_at', nil)
  set_lease(t, lease)
  put(ATT(tid, D(token)), 'attempt', D(attempts), 'session_id', sid, 'fencing_token', D(token),
      'capability', t.required_capability, 'started_at', F(NOW), 'predicted', predicted)
  redis.call('SADD', P .. ':holders:' .. tid, sid)
  if redis.call('HGET', S(sid), 'status') == 'idle' then session_status(sid, 'busy') end
  emit('task.claimed', obj('task_id', tid, 'session_id', sid, 'fencing_token', token,
                           'attempt', attempts, 'expires_at', FL(lease),
                           'required_capability', t.required_capability,
                           'predicted', predicted and RAW(predicted) or nil))
  return redis.call('HGETALL', T(tid)), redis.call('LRANGE', P .. ':notes:' .. tid, 0, -1)
end

-- the candidates (CANDIDATE_FIELDS) of the tasks `ids` names, appended to `out`; only those
-- in `status`, when it is given
local function candidates_of(ids, out, status)
  for _, tid in ipairs(ids) do
    if not status or redis.call('HGET', T(tid), 'status') == status then
      out[#out + 1] = redis.call('HMGET', T(tid), unpack(CANDIDATE_FIELDS))
    end
  end
  return out
end

-- A: limit, then the capabilities (none: any). At most `limit` ready tasks per capability,
-- each index's head first: one bounded ZRANGE per capability, however long the queue.
OPS.ready_candidates = function()
  local limit, out = tonumber(A[1]) - 1, {}
  if #A == 1 then
    return OK(candidates_of(redis.call('ZRANGE', P .. ':ready-any', 0, limit), out))
  end
  local seen = {}
  for k = 2, #A do
    if not seen[A[k]] then
      seen[A[k]] = true
      candidates_of(redis.call('ZRANGE', P .. ':ready:' .. A[k], 0, limit), out)
    end
  end
  return OK(out)
end

-- A: session id. The tasks offered to it, oldest first.
OPS.offered_to = function()
  return OK(candidates_of(redis.call('ZRANGE', HELD_KEY(A[1]), 0, -1), {}, 'assigned'))
end

-- A: session id. It asked for work: alive again, unless it may take none now.
OPS.check_in = function()
  local s, refused = claimable(A[1])
  if not s then return refused end
  alive(s)
  return OK(session_reply(A[1]))
end

-- A: session id, task id, the duration the scheduler predicted (optional float text)
OPS.claim = function()
  local sid, tid, predicted = A[1], A[2], OPT(A[3])
  local t = redis.call('HMGET', T(tid), 'status', 'assigned_to', 'required_capability')
  if not t[1] then return ERR('no_task', tid) end
  local s, refused = claimable(sid)
  if not s then return refused end
  if t[1] == 'assigned' and t[2] ~= sid then return ERR('offered_elsewhere', tid) end
  if t[1] ~= 'ready' and t[1] ~= 'assigned' then return ERR('not_ready', tid, t[1]) end
  if not can_take(s, t[3]) then return ERR('capability', tid, t[3], sid) end
  alive(s)
  return OK(claim_task(tid, s, predicted))
end

-- A: session id, then (task id, predicted or '') pairs. Claims the named tasks in order in
-- one step: one that can no longer be had is skipped, and claiming stops once the session
-- runs its max_concurrent_tasks. The session checks in as for one claim.
OPS.claim_many = function()
  local sid = A[1]
  local s, refused = claimable(sid)
  if not s then return refused end
  alive(s)
  local room, out, seen = tonumber(s.max_concurrent_tasks) - s.running, {}, {}
  for k = 2, #A - 1, 2 do
    local tid = A[k]
    if #out >= room then break end
    local t = redis.call('HMGET', T(tid), 'status', 'assigned_to', 'required_capability')
    if not seen[tid] and t[1] and (t[1] == 'ready' or (t[1] == 'assigned' and t[2] == sid))
        and can_take(s, t[3]) then
      seen[tid] = true
      out[#out + 1] = {claim_task(tid, s, OPT(A[k + 1]))}
    end
  end
  return OK(out)
end

-- A: session id, task id, deadline (on the caller's clock)
OPS.offer = function()
  -- an offer is the server's initiative, not the session's: it proves no liveness, and a
  -- session that went silent is offered nothing (else offers would keep a dead one alive)
  local sid, tid = A[1], A[2]
  if redis.call('HGET', S(sid), 'status') == 'offline' then return OK(false) end
  local s, refused = claimable(sid)
  if not s then return refused end
  local t = hgetall(T(tid))
  if not t then return ERR('no_task', tid) end
  if t.status ~= 'ready' then return ERR('not_ready', tid, t.status) end
  if not can_take(s, t.required_capability) then
    return ERR('capability', tid, t.required_capability, sid)
  end
  local deadline = tonumber(A[3]) + SHIFT
  t.assigned_to = s.id
  set_status(t, 'assigned')
  put(T(tid), 'assigned_to', s.id, 'updated_at', F(NOW))
  set_lease(t, deadline)
  emit('task.assigned', obj('task_id', tid, 'session_id', s.id, 'deadline', FL(deadline)))
  return OK(redis.call('HGETALL', T(tid)))
end

-- outcomes ---------------------------------------------------------------------------------

-- 'held' and the task when the caller holds a valid lease; 'dup' and the task when the very
-- same outcome was already recorded for this token; else nil and the refusal.
local function held_check(sid, tid, token, outcome, digest)
  local t = hgetall(T(tid))
  if not t then return nil, ERR('no_task', tid) end
  if t.status == 'in_progress' and t.assigned_to == sid and t.fencing_token == token
      and t.lease_expires_at and tonumber(t.lease_expires_at) > NOW then
    return 'held', t
  end
  local att = redis.call('HMGET', ATT(tid, token), 'session_id', 'outcome', 'digest')
  if att[1] ~= sid then
    if t.assigned_to == sid or redis.call('SISMEMBER', P .. ':holders:' .. tid, sid) == 1 then
      return nil, ERR('stale_token', tid, token)
    end
    return nil, ERR('not_holder', tid)
  end
  if outcome and att[2] == outcome then
    if att[3] == digest then return 'dup', t end
    return nil, ERR('other_outcome', tid, token, outcome)
  end
  if att[2] == 'completed' or att[2] == 'failed' then
    return nil, ERR('ended', tid, token, att[2])
  end
  return nil, ERR('lease_gone', tid, token, att[2] or '')
end

-- held_check for recording an outcome: the task when the caller may record it now; else nil
-- and the answer to give at once (the refusal, or 'dup' and the task for a repeat)
local function outcome_check(sid, tid, token, outcome, digest)
  local state, t = held_check(sid, tid, token, outcome, digest)
  if not state then return nil, t end
  if state == 'dup' then return nil, OK('dup', redis.call('HGETALL', T(tid))) end
  return t
end

-- A: session id, task id, token, progress (float text), message (optional), usage
-- (optional JSON), rate-limited state (optional JSON)
OPS.progress = function()
  local sid, tid, token, value, message = A[1], A[2], A[3], A[4], OPT(A[5])
  local report, limited = OPT(A[6]), OPT(A[7])
  local state, t = held_check(sid, tid, token, nil, nil)
  if not state then return t end
  local interval = redis.call('HGET', S(sid), 'heartbeat_interval')
  put(T(tid), 'progress', value, 'progress_message', message, 'updated_at', F(NOW))
  set_lease(t, renewed(t, NOW + FACTOR * tonumber(interval)))
  touch(sid, interval)
  record_usage(t, sid, report)
  emit('task.progress', obj('task_id', tid, 'session_id', sid, 'progress', RAW(value),
                            'message', message))
  set_rate_limited(sid, limited)
  return OK('held', redis.call('HGETALL', T(tid)))
end

-- A: session id, task id, token, result (optional JSON), digest, usage (optional JSON)
OPS.complete = function()
  local sid, tid, token, result, digest = A[1], A[2], A[3], OPT(A[4]), A[5]
  local report = OPT(A[6])
  local t, reply = outcome_check(sid, tid, token, 'completed', digest)
  if not t then return reply end
  check_transition(t.status, 'completed')
  local spent = record_usage(t, sid, report) -- before the attempt ends: its token
  end_attempt(t, 'completed', nil, digest)
  local duration = NOW - tonumber(t.started_at or NOW)
  set_status(t, 'completed')
  set_lease(t, nil)
  put(T(tid), 'result', result, 'completed_at', F(NOW), 'updated_at', F(NOW), 'progress', '1.0',
      'error', nil)
  score(sid, t.required_capability, true)
  local moved = learn(sid, t.required_capability, true, duration, t.estimated_hours)
  redis.call('HINCRBY', P .. ':meta', 'completed', 1)
  local sum = tonumber(redis.call('HGET', P .. ':meta', 'duration_sum') or '0')
  redis.call('HSET', P .. ':meta', 'duration_sum', F(sum + duration))
  emit('task.completed', obj('task_id', tid, 'session_id', sid, 'fencing_token', tonumber(token),
                             'duration', FL(duration),
                             'required_capability', t.required_capability, 'stats', moved,
                             'usage', usage_wire(spent)))
  set_rate_limited(sid, nil)
  release_dependents(tid)
  child_ended(t)
  return OK('held', redis.call('HGETALL', T(tid)), moved[1])
end

-- A: session id, task id, token, error, retry ('1' or '0'), digest, usage (optional JSON)
OPS.fail = function()
  local sid, tid, token, err, retry, digest = unpack(A, 1, 6)
  local report = OPT(A[7])
  local t, reply = outcome_check(sid, tid, token, 'failed', digest)
  if not t then return reply end
  local spent = record_usage(t, sid, report)
  local duration = NOW - tonumber(t.started_at or NOW)
  end_attempt(t, 'failed', err, digest)
  score(sid, t.required_capability, false)
  local moved = learn(sid, t.required_capability, false, duration, t.estimated_hours)
  release(t, retry == '1', 'failed', err,
          {'stats', moved, 'duration', FL(duration), 'usage', usage_wire(spent)})
  set_rate_limited(sid, nil)
  return OK('held', redis.call('HGETALL', T(tid)), moved[1])
end

-- A: task id, reason. The task, every task below it (a split parent's tree), its
-- waiting parent failed, its dependents blocked.
OPS.cancel = function()
  local tid, reason = A[1], A[2]
  local t = hgetall(T(tid))
  if not t then return ERR('no_task', tid) end
  if FINAL[t.status] then return ERR('final', tid, t.status) end -- FINAL: from the header
  cancel_one(t, reason)
  local gone = cancel_tree(tid, 'parent ' .. cjson.encode(tid) .. ' cancelled')
  child_ended(t)
  block_dependents(tid)
  for _, cid in ipairs(gone) do block_dependents(cid) end
  return OK(redis.call('HGETALL', T(tid)))
end

-- A: session id, task id, token, digest, merge, merge task (optional), n, the subtask ids in
-- the holder's order, then a batch as insert_batch reads it. See Store.split.
OPS.split = function()
  local sid, tid, token, digest, merge, merge_task = A[1], A[2], A[3], A[4], A[5], OPT(A[6])
  local state, t = held_check(sid, tid, token, 'split', digest)
  if not state then return t end
  if state == 'dup' then
    local out = {}
    for k, cid in ipairs(split_children(tid)) do out[k] = redis.call('HGETALL', T(cid)) end
    return OK('dup', redis.call('HGETALL', T(tid)), out)
  end
  local n = tonumber(A[7])
  if n == 0 then return ERR('no_subtasks', tid) end
  local order = {}
  for k = 1, n do order[k] = A[7 + k] end
  local tasks, refused = read_batch(8 + n)
  if not tasks then return refused end
  end_attempt(t, 'split', nil, digest)
  t.assigned_to = sid
  set_status(t, 'waiting')
  set_lease(t, nil)
  put(T(tid), 'assigned_to', nil, 'updated_at', F(NOW))
  maybe_idle(sid)
  put(P .. ':split:' .. tid, 'token', token, 'merge', merge, 'merge_task', merge_task,
      'children', enc(ARR(order)))
  emit('task.split', obj('task_id', tid, 'session_id', sid, 'fencing_token', tonumber(token),
                         'subtasks', ARR(order), 'merge', merge, 'merge_task', merge_task,
                         'required_capability', t.required_capability))
  write_batch(tasks)
  local out = {}
  for k, cid in ipairs(order) do out[k] = redis.call('HGETALL', T(cid)) end
  return OK('held', redis.call('HGETALL', T(tid)), out)
end

-- preemption, release, input ------------------------------------------------------------------

-- a preempted lease whose grace ran out: the attempt ends released (not counted) and the
-- fencing token moves on, so the old holder's late outcome never matches again
local function revoke(t)
  end_attempt(t, 'released', UNCOUNTED_ERRORS.revoked)
  uncount(t)
  t.fencing_token = D(tonumber(t.fencing_token) + 1)
  redis.call('HSET', T(t.id), 'fencing_token', t.fencing_token)
end

-- A: session id, task id, token, note (optional JSON, built by Python), digest
OPS.release = function()
  local sid, tid, token, note, digest = A[1], A[2], A[3], OPT(A[4]), A[5]
  local t, reply = outcome_check(sid, tid, token, 'released', digest)
  if not t then return reply end
  local reason = t.preempt_at and UNCOUNTED_ERRORS.preempted or UNCOUNTED_ERRORS.by_choice
  end_attempt(t, 'released', reason, digest)
  if note then add_note(tid, note) end
  uncount(t)
  release(t, true, reason, nil)
  return OK('held', redis.call('HGETALL', T(tid)))
end

-- A: task id, token, deadline (on the caller's clock)
OPS.preempt = function()
  local tid, token = A[1], A[2]
  local t = hgetall(T(tid))
  if not t then return ERR('no_task', tid) end
  if t.status ~= 'in_progress' or t.fencing_token ~= token or not t.lease_expires_at
      or tonumber(t.lease_expires_at) <= NOW then
    return OK(false)
  end
  local deadline = tonumber(A[3]) + SHIFT
  local old = tonumber(t.preempt_at)
  if old and old < deadline then deadline = old end -- lifecycle.mark_preempted
  -- a second mark of one attempt is not another preemption
  if not old then redis.call('HINCRBY', T(tid), 'preemptions', 1) end
  t.preempt_at = F(deadline)
  put(T(tid), 'preempt_at', t.preempt_at, 'updated_at', F(NOW))
  if tonumber(t.lease_expires_at) > deadline then set_lease(t, deadline) end
  emit('task.preempted', obj('task_id', tid, 'session_id', t.assigned_to,
                             'fencing_token', tonumber(token), 'preempt_at', FL(deadline),
                             'grace_s', FL(math.max(0, deadline - NOW))))
  return OK(redis.call('HGETALL', T(tid)))
end

-- A: session id, task id, token, question, the question's note (JSON)
OPS.request_input = function()
  local sid, tid, token, question, note = A[1], A[2], A[3], A[4], A[5]
  local cur = hgetall(T(tid))
  if cur and cur.status == 'input_required' and cur.assigned_to == sid
      and cur.fencing_token == token then
    return OK('dup', redis.call('HGETALL', T(tid)))
  end
  local state, t = held_check(sid, tid, token, nil, nil)
  if not state then return t end
  set_status(t, 'input_required')
  set_lease(t, nil)
  put(T(tid), 'updated_at', F(NOW))
  add_note(tid, note)
  emit('task.input_required', obj('task_id', tid, 'session_id', sid,
                                  'fencing_token', tonumber(token), 'question', question,
                                  'title', t.title))
  return OK('held', redis.call('HGETALL', T(tid)))
end

-- the task's last question has no answer yet (lifecycle.question_open)
local function question_open(t)
  if FINAL[t.status] then return false end
  local notes = redis.call('LRANGE', P .. ':notes:' .. t.id, 0, -1)
  for k = #notes, 1, -1 do
    local kind = cjson.decode(notes[k]).kind
    if kind == 'answer' then return false end
    if kind == 'question' then return true end
  end
  return false
end

-- A: task id, answer, the answer's note (JSON)
OPS.give_input = function()
  local tid, answer, note = A[1], A[2], A[3]
  local t = hgetall(T(tid))
  if not t then return ERR('no_task', tid) end
  if t.status ~= 'input_required' and not question_open(t) then
    return ERR('no_question', tid, t.status)
  end
  add_note(tid, note)
  if t.status == 'input_required' then
    local s = redis.call('HMGET', S(t.assigned_to), 'status', 'heartbeat_interval')
    if s[1] and s[1] ~= 'offline' then
      set_status(t, 'in_progress')
      set_lease(t, renewed(t, NOW + FACTOR * tonumber(s[2])))
      put(T(tid), 'updated_at', F(NOW))
    else
      end_attempt(t, 'released', UNCOUNTED_ERRORS.answered)
      uncount(t)
      release(t, true, 'input_given', nil)
    end
  end
  emit('task.input_given', obj('task_id', tid, 'session_id', t.assigned_to,
                               'status', t.status, 'answer', answer))
  return OK(redis.call('HGETALL', T(tid)))
end

-- reaping ------------------------------------------------------------------------------------

-- A: limit. Silent sessions go offline, then expired leases and offers move on.
OPS.reap = function()
  local limit = tonumber(A[1])
  local silent = redis.call('ZRANGE', P .. ':silence', '-inf', NOW, 'BYSCORE',
                            'LIMIT', 0, limit + 1)
  local offline, moved = {}, {}
  for k = 1, math.min(#silent, limit) do
    leave(silent[k], 'offline', moved)
    offline[k] = silent[k]
  end
  local due = redis.call('ZRANGE', P .. ':deadlines', '-inf', NOW, 'BYSCORE',
                         'LIMIT', 0, limit + 1)
  local requeued, failed = {}, {}
  for k = 1, math.min(#due, limit) do
    local t = hgetall(T(string.match(due[k], '^%d+:(.*)$')))
    local reason = 'claim_timeout'
    if t.status == 'in_progress' and t.preempt_at then
      revoke(t)
      reason = 'preempted'
    elseif t.status == 'in_progress' then
      end_attempt(t, 'expired', 'lease expired')
      reason = 'lease_expired'
    end
    if release(t, true, reason, nil) == 'ready' then
      requeued[#requeued + 1] = t.id
    else
      failed[#failed + 1] = t.id
    end
  end
  for _, m in ipairs(moved) do -- the silent sessions' tasks come after the expired leases
    if m[2] == 'ready' then requeued[#requeued + 1] = m[1] else failed[#failed + 1] = m[1] end
  end
  local more = (#silent > limit or #due > limit) and 1 or 0
  return OK(offline, requeued, failed, more)
end

-- the earliest deadline (false: none), and the store clock's time now
OPS.next_deadline = function()
  local best = false
  for _, key in ipairs({P .. ':deadlines', P .. ':silence'}) do
    local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if head[1] and (not best or tonumber(head[2]) < tonumber(best)) then best = head[2] end
  end
  return OK(best, F(store_now()))
end
