-- One GCRA step for one key on Redis's own clock, so every process sharing the key shares one budget.
-- KEYS[1]: the key, holding its theoretical arrival time (TAT) as decimal nanoseconds since 1970.
-- ARGV[1]: the slack, T * (burst - cost) ns: the most time the key may owe before the step and still be allowed.
-- ARGV[2]: the increment, T * cost ns: the time an allowed step adds.
-- Returns {allowed (1 or 0), owed}: owed = max(TAT - now, 0) before the step, in decimal ns; the caller derives
-- the decision from it with the same arithmetic as the in-process limiter.
-- Times are (seconds, nanoseconds) pairs because Lua numbers are doubles, exact only up to 2^53, and
-- nanoseconds since 1970 need 61 bits; every sum below stays exact.
if redis.replicate_commands then
  redis.replicate_commands() -- Redis 3.2 and 4 refuse a write after TIME without it; later ones always agree
end

local function split(decimal)
  local n = #decimal
  if n <= 9 then
    return 0, tonumber(decimal)
  end
  return tonumber(string.sub(decimal, 1, n - 9)), tonumber(string.sub(decimal, n - 8))
end

local function join(sec, ns)
  if sec == 0 then
    return string.format('%d', ns)
  end
  return string.format('%d%09d', sec, ns)
end

local function add(a_sec, a_ns, b_sec, b_ns)
  local sec, ns = a_sec + b_sec, a_ns + b_ns
  if ns >= 1000000000 then
    return sec + 1, ns - 1000000000
  end
  return sec, ns
end

local time = redis.call('TIME')
local now_sec, now_ns = tonumber(time[1]), tonumber(time[2]) * 1000

-- A missing key or a TAT in the past is a full bucket: nothing owed.
local owed_sec, owed_ns = 0, 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local tat_sec, tat_ns = split(stored)
  owed_sec, owed_ns = tat_sec - now_sec, tat_ns - now_ns
  if owed_ns < 0 then
    owed_sec, owed_ns = owed_sec - 1, owed_ns + 1000000000
  end
  if owed_sec < 0 then
    owed_sec, owed_ns = 0, 0
  end
end

local slack_sec, slack_ns = split(ARGV[1])
if owed_sec > slack_sec or (owed_sec == slack_sec and owed_ns > slack_ns) then
  return {0, join(owed_sec, owed_ns)}
end

-- Allowed: the key now owes owed + increment; it expires when that has passed (its bucket is full again).
local new_owed_sec, new_owed_ns = add(owed_sec, owed_ns, split(ARGV[2]))
local tat_sec, tat_ns = add(now_sec, now_ns, new_owed_sec, new_owed_ns)
local ttl_ms = new_owed_sec * 1000 + math.ceil(new_owed_ns / 1000000)
redis.call('SET', KEYS[1], join(tat_sec, tat_ns), 'PX', ttl_ms)
return {1, join(owed_sec, owed_ns)}
