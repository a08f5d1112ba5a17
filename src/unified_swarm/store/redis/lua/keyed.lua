-- Keyed calls (an Idempotency-Key, store/replay.py): the dispatcher asks kept_answer()
-- before the operation runs and keep_answer(reply) after it, both inside this one script
-- call, so the answer is kept exactly when the write is made. IDEM (the key's id in its
-- scope), IDEM_FP (the request's fingerprint), IDEM_TTL (seconds) and IDEM_EXTRA (what
-- the caller needs besides the reply to rebuild the answer) come from the header.
--
-- P:idem:<id> is a hash: f fingerprint, e expiry (judged by NOW, as every deadline here),
-- k the operation, x the extra, r the reply payload as JSON. PEXPIRE drops it later.

local function IDEM_KEY(id) return P .. ':idem:' .. id end

-- A reply value as JSON, read back exactly as Redis returns the value itself: numbers
-- become integers, false becomes nil, true becomes 1, and a table is the array up to
-- its first nil.
local function reply_json(v)
  local ty = type(v)
  if ty == 'string' then return cjson.encode(v) end
  if ty == 'number' then return string.format('%d', v) end
  if ty == 'boolean' then return v and '1' or 'null' end
  if ty ~= 'table' then return 'null' end
  local parts, i = {}, 1
  while v[i] ~= nil do
    parts[i] = reply_json(v[i])
    i = i + 1
  end
  return '[' .. table.concat(parts, ',') .. ']'
end

-- the kept answer as a reply ('=', no events, extra, payload JSON); nil when there is none
local function kept_answer()
  local h = redis.call('HMGET', IDEM_KEY(IDEM), 'f', 'e', 'x', 'r')
  if not h[1] or tonumber(h[2]) <= NOW then return nil end
  if h[1] ~= IDEM_FP then return {'!', {}, 'idem_reused'} end
  return {'=', {}, h[3], h[4]}
end

-- an answer with nothing in it (a batch claim that found no task) is not kept: the
-- retry must look again, not be told "nothing" for as long as the key lives
local function empty_answer(reply)
  return reply[4] == nil and type(reply[3]) == 'table' and reply[3][1] == nil
end

local function keep_answer(reply)
  local payload, i = {}, 3
  while reply[i] ~= nil do
    payload[i - 2] = reply[i]
    i = i + 1
  end
  local key = IDEM_KEY(IDEM)
  redis.call('HSET', key, 'f', IDEM_FP, 'e', F(NOW + IDEM_TTL), 'k', OP, 'x', IDEM_EXTRA,
             'r', reply_json(payload))
  redis.call('PEXPIRE', key, math.ceil(IDEM_TTL * 1000))
end

-- A: the answer's kind. Keeps an answer made of several steps (an emergency's), whole in
-- IDEM_EXTRA, under the call's key; the dispatcher answered a key kept already ('=')
-- before this ran. A recall reports the kind as the operation.
OPS.keep = function()
  local key = IDEM_KEY(IDEM)
  redis.call('HSET', key, 'f', IDEM_FP, 'e', F(NOW + IDEM_TTL), 'k', A[1], 'x', IDEM_EXTRA,
             'r', '[]')
  redis.call('PEXPIRE', key, math.ceil(IDEM_TTL * 1000))
  return OK(true)
end

-- A: the key's id. The kept fingerprint, operation, extra and payload JSON, or false.
OPS.recall = function()
  local h = redis.call('HMGET', IDEM_KEY(A[1]), 'f', 'e', 'k', 'x', 'r')
  if not h[1] or tonumber(h[2]) <= NOW then return OK(false) end
  return OK(h[1], h[3], h[4], h[5])
end
