-- Split parents (collab.py): the split operation, and how a parent ends when its subtasks
-- do. P:split:{id} holds the split: token, merge, merge_task, children (JSON list of ids in
-- the holder's order, a merge task last), digest.

local function split_children(id)
  local raw = redis.call('HGET', P .. ':split:' .. id, 'children')
  return raw and cjson.decode(raw) or {}
end

-- one task to cancelled (its attempt ends 'released'), without touching its dependents
local function cancel_one(t, reason)
  check_transition(t.status, 'cancelled')
  local holder = t.assigned_to
  if HELD[t.status] and t.status ~= 'assigned' then
    end_attempt(t, 'released', 'cancelled: ' .. reason)
  end
  set_status(t, 'cancelled')
  set_lease(t, nil)
  put(T(t.id), 'assigned_to', nil, 'completed_at', F(NOW), 'updated_at', F(NOW),
      'preempt_at', nil)
  if holder then maybe_idle(holder) end
  emit('task.cancelled', obj('task_id', t.id, 'reason', reason, 'session_id', holder))
end

-- cancel every open task below a split parent, through nested splits; the ids cancelled
local function cancel_tree(root, reason)
  local gone, frontier = {}, {root}
  while #frontier > 0 do
    for _, cid in ipairs(split_children(table.remove(frontier))) do
      local c = hgetall(T(cid))
      if c then
        frontier[#frontier + 1] = cid
        if not FINAL[c.status] then
          cancel_one(c, reason)
          gone[#gone + 1] = cid
        end
      end
    end
  end
  return gone
end

-- collab.merged, as JSON text built from the stored results (never re-encoded)
local function merged(merge, merge_task, children)
  local parts = {}
  for k, cid in ipairs(children) do
    local r = redis.call('HGET', T(cid), 'result') or 'null'
    if merge == 'task' and cid == merge_task then return r end
    parts[k] = merge == 'object' and (cjson.encode(cid) .. ':' .. r) or r
  end
  if merge == 'object' then return '{' .. table.concat(parts, ',') .. '}' end
  return '[' .. table.concat(parts, ',') .. ']'
end

-- a waiting parent completes with `result` or fails with `err`; a failed one cancels what
-- is still open below it; then its own parent hears of it
local function end_parent(p, new, result, err)
  check_transition(p.status, new)
  set_status(p, new)
  put(T(p.id), 'completed_at', F(NOW), 'updated_at', F(NOW))
  if new == 'completed' then
    put(T(p.id), 'result', result, 'progress', '1.0', 'error', nil)
    emit('task.completed', obj('task_id', p.id, 'session_id', nil, 'reason', 'merged',
                               'required_capability', p.required_capability))
    release_dependents(p.id)
  else
    p.error = err
    redis.call('HSET', T(p.id), 'error', err)
    emit('task.failed', obj('task_id', p.id, 'session_id', nil, 'reason', 'subtask_failed',
                            'error', err, 'attempts', tonumber(p.attempts),
                            'required_capability', p.required_capability))
    local gone = cancel_tree(p.id, 'parent ' .. cjson.encode(p.id) .. ' failed')
    block_dependents(p.id)
    for _, cid in ipairs(gone) do block_dependents(cid) end
  end
  child_ended(p)
end

-- collab.subtask_error
local function subtask_error(t)
  local e = 'subtask ' .. "'" .. t.id .. "' " .. t.status
  if t.error and t.error ~= '' then e = e .. ': ' .. t.error end
  return e
end

-- a task reached a final status: when it is a subtask of a waiting parent, the parent
-- completes once every subtask completed (counted from their statuses: exactly once), or
-- fails at once when this one cannot
child_ended = function(t)
  if not t.parent_id then return end
  local p = hgetall(T(t.parent_id))
  if not p or p.status ~= 'waiting' then return end
  if DEAD[t.status] then
    end_parent(p, 'failed', nil, subtask_error(t))
    return
  end
  local children = split_children(p.id)
  for _, cid in ipairs(children) do
    if redis.call('HGET', T(cid), 'status') ~= 'completed' then return end
  end
  local merge_task = redis.call('HGET', P .. ':split:' .. p.id, 'merge_task')
  end_parent(p, 'completed',
             merged(redis.call('HGET', P .. ':split:' .. p.id, 'merge'), merge_task, children))
end
