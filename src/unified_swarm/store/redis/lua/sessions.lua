-- Session operations: join, heartbeat, leave, drain, and the session reads.

-- A: id, name, capabilities (JSON), max_concurrent_tasks, heartbeat_interval, metadata
-- (JSON), token hash
OPS.register = function()
  local sid, name, caps, maxc, interval, meta, token = unpack(A, 1, 7)
  local key = S(sid)
  local old = redis.call('HMGET', key, 'status', 'token_hash')
  if old[1] and old[1] ~= 'offline' then return ERR('already_online', sid) end
  if old[2] then redis.call('HDEL', P .. ':tokens', old[2]) end
  put(key, 'name', name, 'capabilities', caps, 'max_concurrent_tasks', maxc,
      'heartbeat_interval', interval, 'idle_since', F(NOW), 'token_hash', token,
      'metadata', meta)
  if old[1] then -- resume: history, counters and scores stay
    session_status(sid, 'idle')
  else
    put(key, 'id', sid, 'status', 'idle', 'registered_at', F(NOW), 'performance_score', '0.5',
        'tasks_completed', '0', 'tasks_failed', '0')
    redis.call('HINCRBY', P .. ':count:sessions', 'idle', 1)
    redis.call('ZADD', P .. ':idle', NOW, sid)
    redis.call('ZADD', P .. ':sessions', NOW, sid)
  end
  redis.call('HSET', P .. ':tokens', token, sid)
  touch(sid, interval)
  emit('session.joined', obj('session_id', sid, 'name', name, 'capabilities', RAW(caps),
                             'resumed', old[1] ~= false, 'heartbeat_interval', RAW(interval),
                             'max_concurrent_tasks', tonumber(maxc)))
  return OK(session_reply(sid))
end

-- A: id, reported status ('' or '=' .. status)
OPS.heartbeat = function()
  local sid, report = A[1], OPT(A[2])
  local s = hgetall(S(sid))
  if not s then return ERR('no_session', sid) end
  revive(sid) -- it was only silent (paused, partitioned): back
  if report == 'draining' then
    drain(sid)
  elseif report == 'idle' or report == 'busy' then
    local cur = redis.call('HGET', S(sid), 'status')
    if cur == 'idle' or cur == 'busy' then session_status(sid, report) end
  end
  local deadline = NOW + FACTOR * tonumber(s.heartbeat_interval)
  local held, notes = {}, {}
  for _, tid in ipairs(redis.call('ZRANGE', HELD_KEY(sid), 0, -1)) do
    local t = hgetall(T(tid))
    if t.status == 'in_progress' and tonumber(t.lease_expires_at) > NOW then
      set_lease(t, renewed(t, deadline)) -- an expired lease is not revived
    end
    held[#held + 1] = redis.call('HGETALL', T(tid))
    notes[#notes + 1] = redis.call('LRANGE', P .. ':notes:' .. tid, 0, -1)
  end
  touch(sid, s.heartbeat_interval)
  return OK(session_reply(sid), held, F(NOW), notes)
end

-- A: id
OPS.set_draining = function()
  local sid = A[1]
  if redis.call('EXISTS', S(sid)) == 0 then return ERR('no_session', sid) end
  drain(sid)
  return OK(session_reply(sid))
end

-- A: id, reason ('left' or 'offline')
OPS.leave = function()
  local sid = A[1]
  if redis.call('EXISTS', S(sid)) == 0 then return ERR('no_session', sid) end
  leave(sid, A[2])
  return OK(session_reply(sid))
end

-- A: token hash
OPS.session_by_token = function()
  local sid = redis.call('HGET', P .. ':tokens', A[1])
  if not sid then return OK(false) end
  return OK(session_reply(sid))
end

-- A: id
OPS.get_session = function() return OK(session_reply(A[1])) end

OPS.list_sessions = function()
  local out = {}
  for _, sid in ipairs(redis.call('ZRANGE', P .. ':sessions', 0, -1)) do
    out[#out + 1] = session_reply(sid)
  end
  return OK(out)
end

-- A: idle_for. Idle sessions holding nothing, idle since now - idle_for or longer.
OPS.idle_sessions = function()
  local out = {}
  local cutoff = NOW - tonumber(A[1])
  for _, sid in ipairs(redis.call('ZRANGE', P .. ':idle', '-inf', cutoff, 'BYSCORE')) do
    if redis.call('ZCARD', HELD_KEY(sid)) == 0 then out[#out + 1] = session_reply(sid) end
  end
  return OK(out)
end
