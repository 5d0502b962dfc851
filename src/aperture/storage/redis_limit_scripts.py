"""The Lua scripts behind ``RedisLimits``, one per operation, each run atomically.

Each script takes its time from ``redis.call('TIME')`` (µs), writes every key's PEXPIRE in the
same call, and is idempotent per request id where a retried call could double count. The
comment above each says its KEYS and ARGV, in the order ``redis_limits.py`` passes them.
"""

__all__ = [
    "ACQUIRE",
    "ADJUST",
    "BEAT",
    "CLAIM",
    "LOST",
    "RESERVE",
    "RETIRE",
    "SEED",
    "SETTLE",
    "STATE",
]

LIB = """
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function int(n)
  return string.format('%d', n)
end

-- Drop the members of a window stamped at or before cutoff; return the window's total.
local function purge_window(at, costs, cutoff)
  local gone = redis.call('ZRANGEBYSCORE', at, '-inf', int(cutoff))
  if #gone > 0 then
    local freed = 0
    for _, member in ipairs(gone) do
      local field = 'm:' .. member
      freed = freed + tonumber(redis.call('HGET', costs, field) or '0')
      redis.call('HDEL', costs, field)
    end
    redis.call('ZREMRANGEBYSCORE', at, '-inf', int(cutoff))
    if freed ~= 0 then
      redis.call('HINCRBY', costs, 'sum', int(-freed))
    end
  end
  return tonumber(redis.call('HGET', costs, 'sum') or '0')
end

-- Give back what a request's hold reserved in one scope (the caller removes it from holds).
local function release(state, amounts, id)
  local held = redis.call('HMGET', amounts, 'm:' .. id, 't:' .. id)
  redis.call('HDEL', amounts, 'm:' .. id, 't:' .. id)
  if redis.call('EXISTS', state) == 1 then
    redis.call('HINCRBY', state, 'reserved_micros', int(-(tonumber(held[1]) or 0)))
    redis.call('HINCRBY', state, 'reserved_tokens', int(-(tonumber(held[2]) or 0)))
  end
end

local function purge_holds(state, holds, amounts, now)
  local lapsed = redis.call('ZRANGEBYSCORE', holds, '-inf', int(now))
  for _, id in ipairs(lapsed) do
    release(state, amounts, id)
  end
  if #lapsed > 0 then
    redis.call('ZREMRANGEBYSCORE', holds, '-inf', int(now))
  end
end

-- {spent_micros, spent_tokens, reserved_micros, reserved_tokens}, or nil if unseeded.
local function read_state(state)
  local v = redis.call('HMGET', state,
    'spent_micros', 'spent_tokens', 'reserved_micros', 'reserved_tokens')
  if not v[1] then
    return nil
  end
  return {tonumber(v[1]), tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0}
end
"""

# KEYS: at, costs. ARGV: member, cost, limit, window (µs), TTL (ms).
# Returns {admitted, used, retry_after in µs or -1 for never}.
ACQUIRE = (
    LIB
    + """
local now = now_us()
local member, cost, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local used = purge_window(KEYS[1], KEYS[2], now - window)
if redis.call('ZSCORE', KEYS[1], member) then
  return {1, used, -1}
end
if used + cost <= limit then
  redis.call('ZADD', KEYS[1], int(now), member)
  redis.call('HSET', KEYS[2], 'm:' .. member, ARGV[2])
  used = redis.call('HINCRBY', KEYS[2], 'sum', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  return {1, used, -1}
end
if cost > limit then
  return {0, used, -1}
end
-- Oldest first: the cost fits once enough of it has slid out of the window.
local need, freed, start = used + cost - limit, 0, 0
while true do
  local batch = redis.call('ZRANGE', KEYS[1], start, start + 99, 'WITHSCORES')
  if #batch == 0 then
    break
  end
  for i = 1, #batch, 2 do
    freed = freed + tonumber(redis.call('HGET', KEYS[2], 'm:' .. batch[i]) or '0')
    if freed >= need then
      return {0, used, tonumber(batch[i + 1]) + window - now}
    end
  end
  start = start + 100
end
return {0, used, window}
"""
)

# KEYS: at, costs. ARGV: member, delta, window (µs), TTL (ms). Returns whether it was there.
ADJUST = (
    LIB
    + """
local now = now_us()
purge_window(KEYS[1], KEYS[2], now - tonumber(ARGV[3]))
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local field = 'm:' .. ARGV[1]
local old = tonumber(redis.call('HGET', KEYS[2], field) or '0')
local new = math.max(0, old + tonumber(ARGV[2]))
redis.call('HSET', KEYS[2], field, int(new))
redis.call('HINCRBY', KEYS[2], 'sum', int(new - old))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""
)

# KEYS: state. ARGV: spent micros, spent tokens, TTL (ms). Returns whether it was written.
SEED = """
if redis.call('HSETNX', KEYS[1], 'spent_micros', ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'spent_tokens', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: hold marker, applied marker, per scope: state, holds, amounts; then the owner's
# index if ARGV[7] is '1'. ARGV: request id, micros, tokens, hold (µs), hold (ms), number of
# scopes, owned ('1' or '0'), note, then per scope: limit micros, limit tokens ('' for none),
# TTL (ms). Returns {'reserved'} | {'duplicate'} | {'unseeded', i} | {'denied', i, <4 counters>}.
RESERVE = (
    LIB
    + """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then
  return {'duplicate'}
end
local now = now_us()
local id, micros, tokens = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local n = tonumber(ARGV[6])
for i = 1, n do
  local k, a = 3 * i, 6 + 3 * i
  purge_holds(KEYS[k], KEYS[k + 1], KEYS[k + 2], now)
  local s = read_state(KEYS[k])
  if not s then
    return {'unseeded', i}
  end
  local limit_micros, limit_tokens = ARGV[a], ARGV[a + 1]
  if (limit_micros ~= '' and s[1] + s[3] + micros > tonumber(limit_micros))
      or (limit_tokens ~= '' and s[2] + s[4] + tokens > tonumber(limit_tokens)) then
    return {'denied', i, s[1], s[2], s[3], s[4]}
  end
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[5])
if ARGV[7] == '1' then
  local index = KEYS[3 * n + 3]
  redis.call('HSET', index, id, ARGV[8])
  if redis.call('PTTL', index) < tonumber(ARGV[5]) then
    redis.call('PEXPIRE', index, ARGV[5])
  end
end
local expiry = int(now + tonumber(ARGV[4]))
for i = 1, n do
  local k, ttl = 3 * i, ARGV[8 + 3 * i]
  redis.call('ZADD', KEYS[k + 1], expiry, id)
  redis.call('HSET', KEYS[k + 2], 'm:' .. id, ARGV[2], 't:' .. id, ARGV[3])
  redis.call('HINCRBY', KEYS[k], 'reserved_micros', ARGV[2])
  redis.call('HINCRBY', KEYS[k], 'reserved_tokens', ARGV[3])
  redis.call('PEXPIRE', KEYS[k], ttl)
  redis.call('PEXPIRE', KEYS[k + 1], ttl)
  redis.call('PEXPIRE', KEYS[k + 2], ttl)
end
return {'reserved'}
"""
)

# KEYS: hold marker, applied marker, per scope: state, holds, amounts; then the owner's index
# and claims if ARGV[6] is '1'. ARGV: request id, micros, tokens, applied TTL (ms), number of
# scopes, owned ('1' or '0'), then per scope: TTL (ms).
# Returns whether this call applied the settlement.
SETTLE = (
    LIB
    + """
local id = ARGV[1]
local n = tonumber(ARGV[5])
if ARGV[6] == '1' then
  -- Even a repeated settle unindexes: a survivor's first try may have died right after it.
  redis.call('HDEL', KEYS[3 * n + 3], id)
  redis.call('ZREM', KEYS[3 * n + 4], id)
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local now = now_us()
redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
redis.call('DEL', KEYS[1])
for i = 1, n do
  local k, ttl = 3 * i, ARGV[6 + i]
  purge_holds(KEYS[k], KEYS[k + 1], KEYS[k + 2], now)
  if redis.call('ZSCORE', KEYS[k + 1], id) then
    release(KEYS[k], KEYS[k + 2], id)
    redis.call('ZREM', KEYS[k + 1], id)
  end
  if redis.call('HEXISTS', KEYS[k], 'spent_micros') == 1 then
    redis.call('HINCRBY', KEYS[k], 'spent_micros', ARGV[2])
    redis.call('HINCRBY', KEYS[k], 'spent_tokens', ARGV[3])
    redis.call('PEXPIRE', KEYS[k], ttl)
    redis.call('PEXPIRE', KEYS[k + 1], ttl)
    redis.call('PEXPIRE', KEYS[k + 2], ttl)
  end
end
return 1
"""
)

# KEYS: instances. ARGV: instance, heartbeat TTL (µs), registry TTL (ms).
BEAT = (
    LIB
    + """
redis.call('ZADD', KEYS[1], int(now_us() + tonumber(ARGV[2])), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
"""
)

# KEYS: instances. ARGV: how many. Returns the instances whose heartbeat lapsed.
LOST = (
    LIB
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now_us()), 'LIMIT', 0, ARGV[1])
"""
)

# KEYS: instances, index, claims. ARGV: instance, lease (µs), limit.
# Returns {id1, note1, id2, note2, ...}: the holds leased to the caller.
CLAIM = (
    LIB
    + """
local now = now_us()
local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
if beat and tonumber(beat) > now then
  return {}
end
local ids = redis.call('HKEYS', KEYS[2])
if #ids == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[3])
  return {}
end
local out, lease, limit = {}, int(now + tonumber(ARGV[2])), tonumber(ARGV[3]) * 2
for _, id in ipairs(ids) do
  local held = redis.call('ZSCORE', KEYS[3], id)
  if not held or tonumber(held) <= now then
    redis.call('ZADD', KEYS[3], lease, id)
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', KEYS[2], id)
    if #out >= limit then
      break
    end
  end
end
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return out
"""
)

# KEYS: instances, index. ARGV: instance.
RETIRE = """
if redis.call('HLEN', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
elseif redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 0, ARGV[1])
end
"""

# KEYS: state, holds, amounts. Returns the four counters, or {} if unseeded.
STATE = (
    LIB
    + """
purge_holds(KEYS[1], KEYS[2], KEYS[3], now_us())
return read_state(KEYS[1]) or {}
"""
)
