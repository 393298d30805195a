"""The Lua scripts behind the job store and the worker: one call per state change.

Each script takes the key prefix (``REDIS_NAMESPACE:``) as its first argument and builds
the keys it touches from it, so a change is atomic across the record, its indexes, its
timer, its history, the audit stream and the Dramatiq queue. Dramatiq's own keys are
reached only through the fragments of :mod:`scheduler_service.wire`.

The worker's scripts pair a Dramatiq command with the record's transition: the fetch
marks each fetched job ``running``, the acknowledgement writes the attempt's outcome, the
rejection writes ``dead``, and the requeue at shutdown puts claimed records back to
``queued``. A job's path through a worker therefore costs the same round trips as a bare
Dramatiq message.
"""

from .metrics import LUA_METRICS
from .wire import LUA_CONSUMER, LUA_ENQUEUE

#: Transitions kept per job in its own history.
HISTORY_LIMIT = 200
#: Approximate length of the global audit stream.
AUDIT_MAXLEN = 100_000

# Shared helpers, prepended to each script. P is the key prefix ("ns:").
LUA_LIB = r"""
local P = ARGV[1]
local TERMINAL = {succeeded = true, dead = true, cancelled = true}
local function history(id, now, from, to, detail)
  local hk = P .. 'job:' .. id .. ':history'
  local entry = cjson.encode({at = tonumber(now), from = from, to = to, detail = detail})
  if redis.call('rpush', hk, entry) > HISTORY_LIMIT then
    redis.call('ltrim', hk, -HISTORY_LIMIT, -1)
  end
  redis.call('xadd', P .. 'audit', 'MAXLEN', '~', AUDIT_MAXLEN, '*',
             'job', id, 'from', from, 'to', to, 'at', now, 'detail', detail)
end
-- What a transition needs of a record, in one read.
local function read(id)
  return redis.call('hmget', P .. 'job:' .. id, 'state', 'createdAt', 'campaignId', 'attempts',
                    'idemKey', 'idempotencyKey')
end
-- The listing indexes of a job's type and campaign (they never change after the create),
-- each named once in jobs:indexes so that pruning finds them without a scan.
local function index_keys(jtype, campaign)
  return P .. 'jobs:type:' .. jtype, P .. 'jobs:campaign:' .. campaign
end
local function allowed_from(allowed, state)
  return string.find(',' .. allowed .. ',', ',' .. state .. ',', 1, true) ~= nil
end
-- Move a record (rec = read(id)) to state `to`, setting `fields` (a flat list, changed in
-- place). wall_due: the wall timer to place ('' for none); 'scheduled' places the timer
-- of the record's own due time. Does not enqueue.
local function move(id, rec, to, detail, now, fields, retention, wall_due)
  local jk = P .. 'job:' .. id
  local from, created, campaign = rec[1], rec[2], rec[3]
  fields[#fields + 1] = 'state'
  fields[#fields + 1] = to
  fields[#fields + 1] = 'updatedAt'
  fields[#fields + 1] = now
  redis.call('hset', jk, unpack(fields))
  if from ~= to then
    redis.call('zrem', P .. 'jobs:state:' .. from, id)
    redis.call('zadd', P .. 'jobs:state:' .. to, created, id)
  end
  if to ~= 'running' and (from == 'scheduled' or from == 'failed' or to == 'scheduled') then
    redis.call('zrem', P .. 'timers:wall', id)
    redis.call('zrem', P .. 'timers:world:' .. campaign, id)
  end
  if to == 'scheduled' then
    local wall, world = unpack(redis.call('hmget', jk, 'runAt', 'runAtWorldTime'))
    if world and world ~= '' then redis.call('zadd', P .. 'timers:world:' .. campaign, world, id)
    else redis.call('zadd', P .. 'timers:wall', wall, id) end
  end
  if wall_due ~= '' then redis.call('zadd', P .. 'timers:wall', wall_due, id) end
  history(id, now, from, to, detail)
  if TERMINAL[to] then
    redis.call('expire', jk, retention)
    redis.call('expire', jk .. ':history', retention)
    local key = rec[5]
    if not key or key == '' then key = rec[6] end
    if key and key ~= '' then redis.call('expire', P .. 'idem:' .. key, retention) end
  elseif TERMINAL[from] then
    redis.call('persist', jk)
    redis.call('persist', jk .. ':history')
  end
end
""".replace("HISTORY_LIMIT", str(HISTORY_LIMIT)).replace("AUDIT_MAXLEN", str(AUDIT_MAXLEN)) \
    + LUA_ENQUEUE

# ARGV: P, then per job: the number of its arguments n, then n arguments: now, id, idem_key
# (scoped: "api:..." or "internal:..."), timer ('' = due now, 'wall', 'world'), due,
# campaign, field/value pairs. Returns, per job in order, {1, state} for a new job or
# {0, the stored record's fields} when the idempotency key names a job already there.
# Callers send one job, or the creates that came in while the previous call ran.
CREATE = LUA_LIB + r"""
local function create(a, base, n)
  local now, id, idem, timer, due, campaign =
    a[base], a[base + 1], a[base + 2], a[base + 3], a[base + 4], a[base + 5]
  if idem ~= '' then
    local existing = redis.call('get', P .. 'idem:' .. idem)
    if existing then
      local stored = redis.call('hgetall', P .. 'job:' .. existing)
      if #stored > 0 then return {0, stored} end
    end
  end
  local jk = P .. 'job:' .. id
  if timer == 'world' then
    -- A world time the campaign has already reached makes the job due now (atomic with
    -- pump_world, so a job can never slip in behind a pump that already passed it).
    local known = redis.call('hget', P .. 'worldtime', campaign)
    if known and tonumber(known) >= tonumber(due) then
      timer = ''
    else
      timer = P .. 'timers:world:' .. campaign
    end
  elseif timer == 'wall' then
    timer = P .. 'timers:wall'
  end
  local state = timer ~= '' and 'scheduled' or 'queued'
  local fields, queue, rid, message, jtype = {'state', state}, nil, nil, nil, ''
  for i = base + 6, base + n - 1, 2 do
    local k, v = a[i], a[i + 1]
    fields[#fields + 1] = k
    fields[#fields + 1] = v
    if k == 'queue' then queue = v elseif k == 'rid' then rid = v elseif k == 'message' then message = v
    elseif k == 'type' then jtype = v end
  end
  redis.call('hset', jk, unpack(fields))
  redis.call('zadd', P .. 'jobs:all', now, id)
  redis.call('zadd', P .. 'jobs:state:' .. state, now, id)
  local tk, ck = index_keys(jtype, campaign)
  redis.call('zadd', tk, now, id)
  redis.call('zadd', ck, now, id)
  redis.call('sadd', P .. 'jobs:indexes', tk, ck)
  if idem ~= '' then redis.call('set', P .. 'idem:' .. idem, id) end
  if timer ~= '' then
    redis.call('zadd', timer, due, id)
  else
    enqueue_all({[queue] = {rid, stamp(message, now)}})
  end
  history(id, now, '', state, state == 'queued' and 'created, due now' or 'created')
  return {1, state}
end
local out, i = {}, 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  out[#out + 1] = create(ARGV, i + 1, n)
  i = i + 1 + n
end
return out
"""

# ARGV: P, now, count, then per job: id, timer ('' | 'wall' | 'world'), due, campaign,
# idempotency key (scoped, or ''), number of field/value items, field/value pairs (with
# 'queue', 'rid' and 'message'). Creates many jobs, each as CREATE would, with the index,
# timer and queue writes of the whole batch made in one command each; a job whose key
# already names a job is left out (its caller derives ids from keys). Returns how many
# were created.
CREATE_MANY = LUA_LIB + r"""
local now, count = ARGV[2], tonumber(ARGV[3])
local all, by_state, wall, world, known, by_index = {}, {}, {}, {}, {}, {}
local msgs = {}
local created = 0
local function indexed(key, id)
  by_index[key] = by_index[key] or {}
  table.insert(by_index[key], now)
  table.insert(by_index[key], id)
end
local function create_one(id, timer, due, campaign, fields, queue, rid, message, jtype)
  if timer == 'world' then
    if known[campaign] == nil then
      known[campaign] = tonumber(redis.call('hget', P .. 'worldtime', campaign) or '-1')
    end
    if known[campaign] >= tonumber(due) then timer = '' end
  end
  local state = timer ~= '' and 'scheduled' or 'queued'
  fields[#fields + 1] = 'state'
  fields[#fields + 1] = state
  redis.call('hset', P .. 'job:' .. id, unpack(fields))
  all[#all + 1] = now
  all[#all + 1] = id
  by_state[state] = by_state[state] or {}
  table.insert(by_state[state], now)
  table.insert(by_state[state], id)
  local tk, ck = index_keys(jtype, campaign)
  indexed(tk, id)
  indexed(ck, id)
  if timer == 'wall' then
    wall[#wall + 1] = due
    wall[#wall + 1] = id
  elseif timer == 'world' then
    world[campaign] = world[campaign] or {}
    table.insert(world[campaign], due)
    table.insert(world[campaign], id)
  else
    msgs[queue] = msgs[queue] or {}
    table.insert(msgs[queue], rid)
    table.insert(msgs[queue], stamp(message, now))
  end
  history(id, now, '', state, state == 'queued' and 'created, due now' or 'created')
  created = created + 1
end
local i = 4
for _ = 1, count do
  local id, timer, due, campaign, idem, n =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], tonumber(ARGV[i + 5])
  local fields, queue, rid, message, jtype = {}, nil, nil, nil, ''
  for j = i + 6, i + 5 + n, 2 do
    local k, v = ARGV[j], ARGV[j + 1]
    fields[#fields + 1] = k
    fields[#fields + 1] = v
    if k == 'queue' then queue = v elseif k == 'rid' then rid = v elseif k == 'message' then message = v
    elseif k == 'type' then jtype = v end
  end
  i = i + 6 + n
  if idem == '' or redis.call('set', P .. 'idem:' .. idem, id, 'NX') then
    create_one(id, timer, due, campaign, fields, queue, rid, message, jtype)
  end
end
if #all > 0 then redis.call('zadd', P .. 'jobs:all', unpack(all)) end
local names = {}
for key, items in pairs(by_index) do
  redis.call('zadd', key, unpack(items))
  names[#names + 1] = key
end
if #names > 0 then redis.call('sadd', P .. 'jobs:indexes', unpack(names)) end
for state, items in pairs(by_state) do redis.call('zadd', P .. 'jobs:state:' .. state, unpack(items)) end
if #wall > 0 then redis.call('zadd', P .. 'timers:wall', unpack(wall)) end
for campaign, items in pairs(world) do
  redis.call('zadd', P .. 'timers:world:' .. campaign, unpack(items))
end
enqueue_all(msgs)
return created
"""

# KEYS[1]: timer zset. ARGV: P, now, max_score, limit, detail, clock ('wall' or 'world'). A
# job waiting on a timer is ``scheduled`` (its due time) or ``failed`` (its next attempt
# after a backoff). The timer, index and queue writes of the batch are made in one command
# each; so are the metrics (promotions, and for wall timers the lateness: now - due time).
PUMP = LUA_LIB + LUA_METRICS + r"""
local now, clock = ARGV[2], ARGV[6] or ''
local flat = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[3], 'WITHSCORES', 'LIMIT', 0,
                        tonumber(ARGV[4]))
if #flat == 0 then return {0, 0} end
local ids = {}
for k = 1, #flat, 2 do ids[#ids + 1] = flat[k] end
redis.call('zrem', KEYS[1], unpack(ids))
local moved, from, queued, msgs, late = 0, {}, {}, {}, {}
for k = 1, #flat, 2 do
  local id = flat[k]
  local jk = P .. 'job:' .. id
  local v = redis.call('hmget', jk, 'state', 'createdAt', 'message', 'rid', 'queue')
  local state = v[1]
  if (state == 'scheduled' or state == 'failed') and v[3] then
    redis.call('hset', jk, 'state', 'queued', 'updatedAt', now)
    from[state] = from[state] or {}
    table.insert(from[state], id)
    queued[#queued + 1] = v[2]
    queued[#queued + 1] = id
    local queue = v[5]
    msgs[queue] = msgs[queue] or {}
    table.insert(msgs[queue], v[4])
    table.insert(msgs[queue], stamp(v[3], now))
    history(id, now, state, 'queued', state == 'failed' and 'retry due' or ARGV[5])
    moved = moved + 1
    if clock == 'wall' then observe_lateness(late, math.max(0, tonumber(now) - tonumber(flat[k + 1]))) end
  end
end
for state, list in pairs(from) do redis.call('zrem', P .. 'jobs:state:' .. state, unpack(list)) end
if #queued > 0 then redis.call('zadd', P .. 'jobs:state:queued', unpack(queued)) end
enqueue_all(msgs)
if clock ~= '' then flush_lateness(late, clock, moved) end
return {moved, #ids}
"""

# ARGV: P, now, id, allowed states (comma list), to, detail, retention, wall_due,
# field/value pairs...
TRANSITION = LUA_LIB + r"""
local now, id, allowed, to, detail = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local rec = read(id)
local state = rec[1]
if not state then return {-1, ''} end
if not allowed_from(allowed, state) then return {0, state} end
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
if to == 'running' then
  fields[#fields + 1] = 'attempts'
  fields[#fields + 1] = (tonumber(rec[4]) or 0) + 1
end
move(id, rec, to, detail, now, fields, ARGV[7], ARGV[8])
if to == 'queued' then enqueue(id, now) end
return {1, state}
"""

# The worker's side. ARGV: P, now, queue, worker id, then the command's own arguments.
LUA_WORKER = LUA_LIB + LUA_METRICS + r"""
local now, queue, worker = ARGV[2], ARGV[3], ARGV[4]
""" + LUA_CONSUMER + r"""
local function job_of(rid)
  return string.match(rid, '^(.+)#[^#]*$')
end
"""

# ARGV[5]: how many to fetch. Pops up to that many messages (Dramatiq's fetch) and claims
# each one's job: queued/failed/running -> running with the attempt counted. Returns a flat
# list of (data, claim, attempt, previous state): claim 'run' (claimed), 'skip' (the record
# is in a state that must not run: previous state given) or '' (no record). The index moves
# of the batch are made in one command each.
FETCH = LUA_WORKER + r"""
heartbeat()
local rids, datas = pop_messages(tonumber(ARGV[5]))
local out, moved_from, running, lost = {}, {}, {}, {}
for i, rid in ipairs(rids) do
  local data = datas[i]
  if data then
    local claim, attempt, previous = '', 0, ''
    local id = job_of(rid)
    if id then
      local rec = read(id)
      previous = rec[1] or ''
      if previous == 'queued' or previous == 'failed' or previous == 'running' then
        attempt = (tonumber(rec[4]) or 0) + 1
        local jk = P .. 'job:' .. id
        redis.call('hset', jk, 'rid', rid, 'attempts', attempt, 'state', 'running',
                   'updatedAt', now)
        if previous ~= 'running' then
          moved_from[previous] = moved_from[previous] or {}
          table.insert(moved_from[previous], id)
          running[#running + 1] = rec[2]
          running[#running + 1] = id
        end
        history(id, now, previous, 'running', 'attempt ' .. attempt .. ' started')
        claim = 'run'
      elseif previous ~= '' then
        claim = 'skip'
      end
    end
    out[#out + 1] = data
    out[#out + 1] = claim
    out[#out + 1] = attempt
    out[#out + 1] = previous
  else
    lost[#lost + 1] = rid
  end
end
for state, ids in pairs(moved_from) do
  redis.call('zrem', P .. 'jobs:state:' .. state, unpack(ids))
end
if #running > 0 then redis.call('zadd', P .. 'jobs:state:running', unpack(running)) end
forget(lost)
return out
"""

# ARGV[5]: retention, ARGV[6]: count, then per message: rid, job id ('' = no record to
# change), to, detail, wall_due, dead copy ('' unless to is 'dead'), number of field/value
# items, field/value pairs. Acknowledges each message (Dramatiq's ack, or its rejection
# into the dead letters with the dead copy when to is 'dead') and moves its record from
# running to `to`, all in one call. Returns per message: acknowledged, transition ok (-1
# missing), state found. After the messages come the batch's metric deltas
# (:func:`scheduler_service.metrics.job_deltas`), and a job a sweep's tick created updates
# that sweep's metrics. (No heartbeat here: the worker's fetches, and the polls of its
# idle consumers, keep it alive.)
OUTCOMES = LUA_WORKER + r"""
local retention, count = ARGV[5], tonumber(ARGV[6])
local out = {}
local i = 7
for _ = 1, count do
  local rid, id, to, detail, wall_due, dead_copy, n =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], tonumber(ARGV[i + 6])
  local first, last = i + 7, i + 6 + n
  i = last + 1
  local acked
  if to == 'dead' then acked = nack_message(rid, dead_copy) else acked = ack_message(rid) end
  local ok, found = 1, ''
  if id ~= '' then
    local rec = read(id)
    if not rec[1] then
      ok = -1
    elseif rec[1] ~= 'running' then
      ok, found = 0, rec[1]
    else
      local fields = {}
      for j = first, last do fields[#fields + 1] = ARGV[j] end
      if to == 'scheduled' then
        -- Back on its timer without spending the attempt (an open circuit).
        fields[#fields + 1] = 'attempts'
        fields[#fields + 1] = math.max(0, (tonumber(rec[4]) or 1) - 1)
      end
      move(id, rec, to, detail, now, fields, retention, wall_due)
      sweep_outcome(rec[5], to, now, rec[2])
      found = 'running'
    end
  end
  out[#out + 1] = acked and 1 or 0
  out[#out + 1] = ok
  out[#out + 1] = found
end
apply_deltas(i)
return out
"""

# ARGV: P, now, queue, worker, detail, spent ('1': the attempt counts), then the rids to give
# back: those a stopping worker fetched but did not run (the attempt not spent), or those its
# acknowledgement set still lists though it no longer holds them (an acknowledgement lost in
# a failover: the attempt ran). Puts each message back on its queue (Dramatiq's requeue) and
# its claimed record back to queued.
REQUEUE = LUA_WORKER + r"""
heartbeat()
local detail, spent = ARGV[5], ARGV[6] == '1'
local returned = 0
for i = 7, #ARGV do
  local rid = ARGV[i]
  if requeue_message(rid) then
    returned = returned + 1
    local id = job_of(rid)
    if id then
      local rec = read(id)
      if rec[1] == 'running' and redis.call('hget', P .. 'job:' .. id, 'rid') == rid then
        local attempts = tonumber(rec[4]) or 1
        if not spent then attempts = math.max(0, attempts - 1) end
        move(id, rec, 'queued', detail, now, {'attempts', attempts}, 0, '')
      end
    end
  end
end
return returned
"""

# ARGV: P, campaign, world ms. Keeps the newest world time of a campaign: never backwards.
REMEMBER_WORLD_TIME = r"""
local key = ARGV[1] .. 'worldtime'
local current = redis.call('hget', key, ARGV[2])
if current and tonumber(current) >= tonumber(ARGV[3]) then return 0 end
redis.call('hset', key, ARGV[2], ARGV[3])
return 1
"""
