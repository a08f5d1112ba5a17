-- Knowledge, the interrupt, reads, the store epoch and the leader lease.

-- knowledge ----------------------------------------------------------------------------------

local function knowledge_entry(topic, version, content, tags, by, deleted)
  return obj('topic', topic, 'version', version, 'content', RAW(content), 'tags', RAW(tags),
             'updated_by', by, 'updated_at', FL(NOW), 'deleted', deleted)
end

local function stale(topic, current, expected)
  if expected and tonumber(expected) ~= current then
    return ERR('stale_version', topic, D(current), expected)
  end
end

-- A: topic, content (JSON), tags (JSON), expected version (optional), updated_by (optional)
OPS.put_knowledge = function()
  local topic, content, tags, expected, by = A[1], A[2], A[3], OPT(A[4]), OPT(A[5])
  local current = tonumber(redis.call('HGET', P .. ':kv', topic) or '0')
  local refused = stale(topic, current, expected)
  if refused then return refused end
  local entry = knowledge_entry(topic, current + 1, content, tags, by, false)
  redis.call('HSET', P .. ':k:' .. topic, current + 1, entry)
  redis.call('HSET', P .. ':kv', topic, current + 1)
  redis.call('HSET', P .. ':klive', topic, entry)
  emit('knowledge.updated', obj('topic', topic, 'version', current + 1, 'updated_by', by,
                                'deleted', false))
  return OK(entry)
end

-- A: topic, expected version (optional), updated_by (optional)
OPS.delete_knowledge = function()
  local topic, expected, by = A[1], OPT(A[2]), OPT(A[3])
  local current = tonumber(redis.call('HGET', P .. ':kv', topic) or '0')
  if redis.call('HEXISTS', P .. ':klive', topic) == 0 then return ERR('no_topic', topic) end
  local refused = stale(topic, current, expected)
  if refused then return refused end
  local entry = knowledge_entry(topic, current + 1, 'null', '[]', by, true)
  redis.call('HSET', P .. ':k:' .. topic, current + 1, entry)
  redis.call('HSET', P .. ':kv', topic, current + 1)
  redis.call('HDEL', P .. ':klive', topic)
  emit('knowledge.updated', obj('topic', topic, 'version', current + 1, 'updated_by', by,
                                'deleted', true))
  return OK(entry)
end

-- A: topic, version (optional). The latest version (false when deleted), or exactly one.
OPS.get_knowledge = function()
  local topic, version = A[1], OPT(A[2])
  if not version then return OK(redis.call('HGET', P .. ':klive', topic)) end
  return OK(redis.call('HGET', P .. ':k:' .. topic, version))
end

OPS.list_knowledge = function() return OK(redis.call('HVALS', P .. ':klive')) end

-- the interrupt --------------------------------------------------------------------------------

-- A: the interrupt (optional JSON), its reason (optional), the emergency task it serves
-- (optional)
OPS.set_interrupt = function()
  local value, reason, task = OPT(A[1]), OPT(A[2]), OPT(A[3])
  put(P .. ':meta', 'interrupt', value)
  emit('swarm.interrupt', obj('active', value ~= nil, 'reason', reason, 'task_id', task))
  return OK()
end

OPS.get_interrupt = function() return OK(redis.call('HGET', P .. ':meta', 'interrupt')) end

-- reads ------------------------------------------------------------------------------------------

-- A: task id
OPS.get_task = function()
  local flat = redis.call('HGETALL', T(A[1]))
  return OK(#flat > 0 and flat or false)
end

-- A: task id. Its handoff notes, oldest first.
OPS.notes = function()
  return OK(redis.call('LRANGE', P .. ':notes:' .. A[1], 0, -1))
end

-- A: task id, note (JSON). Appends a note to a task that exists.
OPS.add_note = function()
  if redis.call('EXISTS', T(A[1])) == 0 then return ERR('no_task', A[1]) end
  add_note(A[1], A[2])
  return OK()
end

-- A: task ids. Their statuses (false: no such task), for a plan (core/planning.py).
OPS.statuses = function()
  local out = {}
  for k, id in ipairs(A) do out[k] = redis.call('HGET', T(id), 'status') end
  return OK(out)
end

-- A: task id. Every attempt, oldest first (tokens run 1, 2, ... one attempt each).
OPS.history = function()
  local tid = A[1]
  local out = {}
  for k = 1, tonumber(redis.call('HGET', T(tid), 'fencing_token') or '0') do
    local flat = redis.call('HGETALL', ATT(tid, D(k)))
    if #flat > 0 then out[#out + 1] = flat end
  end
  return OK(out)
end

-- A: after seq, limit, status, capability, session (optional each), budget. Walks the
-- status index (or every task) in insertion order and stops after `budget` tasks looked
-- at: then it answers what it found, `more` and the seq where it stopped.
OPS.list_tasks = function()
  local last, limit = tonumber(A[1]), tonumber(A[2])
  local status, cap, sess, budget = OPT(A[3]), OPT(A[4]), OPT(A[5]), tonumber(A[6])
  local index = status and (P .. ':status:' .. status) or (P .. ':tasks')
  local found, looked, more = {}, 0, false
  while true do
    local page = redis.call('ZRANGE', index, '(' .. D(last), '+inf', 'BYSCORE',
                            'LIMIT', 0, 256, 'WITHSCORES')
    for k = 1, #page, 2 do
      if #found > limit or looked >= budget then more = true; break end
      local id = page[k]
      looked, last = looked + 1, tonumber(page[k + 1])
      local f = redis.call('HMGET', T(id), 'required_capability', 'assigned_to')
      if (not cap or f[1] == cap) and (not sess or f[2] == sess) then
        found[#found + 1] = redis.call('HGETALL', T(id))
      end
    end
    if more or #page < 512 then break end
  end
  return OK(found, more and 1 or 0, D(last))
end

-- A: how many task types' usage sums to read (the costliest first)
OPS.counts = function()
  local meta = redis.call('HMGET', P .. ':meta', 'completed', 'duration_sum')
  local types = {}
  for _, name in ipairs(redis.call('ZREVRANGE', P .. ':usage:types', 0, tonumber(A[1]) - 1)) do
    types[#types + 1] = name
    types[#types + 1] = redis.call('HGET', P .. ':usage', 'type\t' .. name)
  end
  return OK(redis.call('HGETALL', P .. ':count:sessions'),
            redis.call('HGETALL', P .. ':count:tasks'), meta[1], meta[2],
            redis.call('GET', P .. ':seq:events') or '0',
            redis.call('HGET', P .. ':usage', 'swarm'), types)
end

-- A: after seq, limit
OPS.events_after = function()
  return OK(redis.call('ZRANGE', P .. ':events', '(' .. A[1], '+inf', 'BYSCORE',
                       'LIMIT', 0, tonumber(A[2])))
end

OPS.ping = function() return OK() end

-- the store epoch -----------------------------------------------------------------------------

-- A: a fresh epoch, the schema version, '1' when it may be written. The epoch in force and
-- the schema; false when there is none and it may not be written. Refuses ('damaged') when
-- swarm keys exist without an epoch (an evicted or half-restored keyspace).
OPS.init = function()
  local meta = redis.call('HMGET', P .. ':meta', 'epoch', 'schema')
  if meta[1] then return OK(meta[1], meta[2]) end
  if redis.call('EXISTS', P .. ':seq:events', P .. ':seq:tasks', P .. ':sessions',
                P .. ':events', P .. ':tasks', P .. ':leader:token') > 0 then
    return ERR('damaged')
  end
  if A[3] ~= '1' then return OK(false, false) end
  redis.call('HSET', P .. ':meta', 'epoch', A[1], 'schema', A[2], 'completed', '0',
             'duration_sum', '0.0')
  return OK(A[1], A[2])
end

-- the leader lease ---------------------------------------------------------------------------

-- A: holder, ttl in ms. The holder's leader token (a new, higher one when the lease changes
-- hands or lapsed), or false while another holder's lease runs. Judged on the Redis clock.
OPS.lead = function()
  local holder, ttl = A[1], A[2]
  local cur = redis.call('GET', P .. ':leader')
  if cur then
    local h, token = string.match(cur, '^(.*)\n(%d+)$')
    if h ~= holder then return OK(false) end
    redis.call('PEXPIRE', P .. ':leader', ttl)
    return OK(token)
  end
  local token = D(redis.call('INCR', P .. ':leader:token'))
  redis.call('SET', P .. ':leader', holder .. '\n' .. token, 'PX', ttl)
  return OK(token)
end

-- A: holder. Give the lease up at once (a clean shutdown), if this holder has it.
OPS.resign = function()
  local cur = redis.call('GET', P .. ':leader')
  if cur and string.match(cur, '^(.*)\n%d+$') == A[1] then redis.call('DEL', P .. ':leader') end
  return OK()
end

-- autoscaling ----------------------------------------------------------------------------------

-- A: capabilities. How many ready tasks need each, in the same order.
OPS.ready_counts = function()
  local counts = {}
  for i = 1, #A do counts[i] = redis.call('ZCARD', P .. ':ready:' .. A[i]) end
  return OK(counts)
end

-- A: event type, event data (JSON, encoded by the caller)
OPS.record_event = function()
  emit(A[1], A[2])
  return OK(EVENTS[#EVENTS])
end

-- A: pool, pinned size or '' (lift)
OPS.set_pool_pin = function()
  local desired = OPT(A[2])
  put(P .. ':pins', A[1], desired)
  emit('pool.pinned', obj('pool', A[1], 'desired', desired and tonumber(desired) or nil))
  return OK()
end

OPS.pool_pins = function() return OK(redis.call('HGETALL', P .. ':pins')) end
