-- The learned scheduler's state: statistics (moved by `learn` in lib.lua inside each
-- outcome's step), circuit breakers and detected capabilities.

-- every statistics row: "session \t capability", JSON, ...
OPS.all_stats = function() return OK(redis.call('HGETALL', P .. ':stats')) end

-- every open or half-open breaker: "session \t capability", "until \t ejections", ...
OPS.quarantines = function() return OK(redis.call('HGETALL', P .. ':quarantine')) end

-- A: session, capability, until ('' closes the breaker), ejections, the ejections expected
-- now (0: none). A compare-and-set, so two deciders never stack ejections.
OPS.set_quarantine = function()
  local sid, cap, until_, ejections, expected = A[1], A[2], OPT(A[3]), A[4], tonumber(A[5])
  local field = sid .. '\t' .. cap
  local raw = redis.call('HGET', P .. ':quarantine', field)
  local have = raw and tonumber(string.match(raw, '\t(%d+)$')) or 0
  if have ~= expected then return OK(false) end
  local shown = cap ~= STATS_ANY and cap or nil
  if not until_ then
    if raw then
      redis.call('HDEL', P .. ':quarantine', field)
      emit('session.restored', obj('session_id', sid, 'capability', shown))
    end
    return OK(true)
  end
  redis.call('HSET', P .. ':quarantine', field, until_ .. '\t' .. ejections)
  emit('session.quarantined', obj('session_id', sid, 'capability', shown,
                                  'until', RAW(until_), 'ejections', tonumber(ejections)))
  return OK(true)
end

-- A: session, detected capabilities (JSON list, sorted)
OPS.set_detected = function()
  local sid, caps = A[1], A[2]
  if redis.call('EXISTS', S(sid)) == 0 then return ERR('no_session', sid) end
  redis.call('HSET', S(sid), 'detected_capabilities', caps)
  emit('session.detected', obj('session_id', sid, 'detected_capabilities', RAW(caps)))
  return OK(true)
end
