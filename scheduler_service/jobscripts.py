"""The Lua scripts behind :mod:`scheduler_service.jobstore`: one call per state change.

Each script takes the key prefix (``REDIS_NAMESPACE:``) as its first argument and builds
the keys it touches from it, so a change is atomic across the record, its indexes, its
timer, its history, the audit stream and the Dramatiq queue.
"""

#: Transitions kept per job in its own history.
HISTORY_LIMIT = 200
#: Approximate length of the global audit stream.
AUDIT_MAXLEN = 100_000

# Shared helpers, prepended to each script. P is the key prefix ("ns:").
LUA_LIB = r"""
local P = ARGV[1]
local function history(id, now, from, to, detail)
  local entry = cjson.encode({at = tonumber(now), from = from, to = to, detail = detail})
  redis.call('rpush', P .. 'job:' .. id .. ':history', entry)
  redis.call('ltrim', P .. 'job:' .. id .. ':history', -HISTORY_LIMIT, -1)
  redis.call('xadd', P .. 'audit', 'MAXLEN', '~', AUDIT_MAXLEN, '*',
             'job', id, 'from', from, 'to', to, 'at', now, 'detail', detail)
end
local function set_state(id, from, to, now)
  local jk = P .. 'job:' .. id
  local created = redis.call('hget', jk, 'createdAt')
  if from ~= '' then redis.call('zrem', P .. 'jobs:state:' .. from, id) end
  redis.call('zadd', P .. 'jobs:state:' .. to, created, id)
  redis.call('hset', jk, 'state', to, 'updatedAt', now)
end
local function enqueue(id, now)
  local jk = P .. 'job:' .. id
  local v = redis.call('hmget', jk, 'message', 'rid', 'queue')
  redis.call('hset', P .. v[3] .. '.msgs', v[2], v[1])
  redis.call('rpush', P .. v[3], v[2])
end
local function finish(id, retention_s)
  local jk = P .. 'job:' .. id
  redis.call('expire', jk, retention_s)
  redis.call('expire', jk .. ':history', retention_s)
  local key = redis.call('hget', jk, 'idemKey')
  if not key or key == '' then key = redis.call('hget', jk, 'idempotencyKey') end
  if key and key ~= '' then redis.call('expire', P .. 'idem:' .. key, retention_s) end
end
""".replace("HISTORY_LIMIT", str(HISTORY_LIMIT)).replace("AUDIT_MAXLEN", str(AUDIT_MAXLEN))

# ARGV: P, now, id, idem_key (scoped: "api:..." or "internal:..."), timer ('' = due now,
# 'wall', 'world'), due, retention, field/value pairs
CREATE = LUA_LIB + r"""
local now, id, idem, timer, due = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if idem ~= '' then
  local existing = redis.call('get', P .. 'idem:' .. idem)
  if existing and redis.call('exists', P .. 'job:' .. existing) == 1 then
    return {0, existing}
  end
end
local jk = P .. 'job:' .. id
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('hset', jk, unpack(fields))
redis.call('zadd', P .. 'jobs:all', now, id)
if idem ~= '' then redis.call('set', P .. 'idem:' .. idem, id) end
if timer == 'world' then
  -- A world time the campaign has already reached makes the job due now (atomic with
  -- pump_world, so a job can never slip in behind a pump that already passed it).
  local campaign = redis.call('hget', jk, 'campaignId')
  local known = redis.call('hget', P .. 'worldtime', campaign)
  if known and tonumber(known) >= tonumber(due) then
    timer = ''
  else
    timer = P .. 'timers:world:' .. campaign
  end
elseif timer == 'wall' then
  timer = P .. 'timers:wall'
end
if timer ~= '' then
  set_state(id, '', 'scheduled', now)
  redis.call('zadd', timer, due, id)
  history(id, now, '', 'scheduled', 'created')
else
  set_state(id, '', 'queued', now)
  enqueue(id, now)
  history(id, now, '', 'queued', 'created, due now')
end
return {1, id}
"""

# KEYS[1]: timer zset. ARGV: P, now, max_score, limit, detail
PUMP = LUA_LIB + r"""
local now = ARGV[2]
local ids = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
local moved = 0
for _, id in ipairs(ids) do
  redis.call('zrem', KEYS[1], id)
  local jk = P .. 'job:' .. id
  if redis.call('hget', jk, 'state') == 'scheduled' then
    enqueue(id, now)
    set_state(id, 'scheduled', 'queued', now)
    history(id, now, 'scheduled', 'queued', ARGV[5])
    moved = moved + 1
  end
end
return {moved, #ids}
"""

# ARGV: P, now, id, allowed states (comma list), to, detail, retention, field/value pairs...
TRANSITION = LUA_LIB + r"""
local now, id, allowed, to, detail = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local jk = P .. 'job:' .. id
local state = redis.call('hget', jk, 'state')
if not state then return {-1, ''} end
if not string.find(',' .. allowed .. ',', ',' .. state .. ',', 1, true) then return {0, state} end
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
if #fields > 0 then redis.call('hset', jk, unpack(fields)) end
if to == 'running' then redis.call('hincrby', jk, 'attempts', 1) end
if to == 'scheduled' or to == 'cancelled' or to == 'queued' then
  local campaign, wall, world = unpack(redis.call('hmget', jk, 'campaignId', 'runAt', 'runAtWorldTime'))
  redis.call('zrem', P .. 'timers:wall', id)
  redis.call('zrem', P .. 'timers:world:' .. campaign, id)
  if to == 'scheduled' then
    if world and world ~= '' then redis.call('zadd', P .. 'timers:world:' .. campaign, world, id)
    else redis.call('zadd', P .. 'timers:wall', wall, id) end
  end
end
set_state(id, state, to, now)
history(id, now, state, to, detail)
if to == 'queued' then enqueue(id, now) end
if to == 'succeeded' or to == 'dead' or to == 'cancelled' then
  finish(id, ARGV[7])
else
  redis.call('persist', jk)
  redis.call('persist', jk .. ':history')
end
return {1, state}
"""
