#!lua name=claudeguard_v1
-- claude-guard's Redis functions: the only code that runs in Redis for the rate limiter and the replay
-- store (docs/limits.md). The manager loads this library (FUNCTION LOAD REPLACE over its admin
-- connection); sidecars call its functions by name (FCALL) as their namespace's ACL user, which may call
-- these three functions and run no code of its own (no EVAL, SCRIPT or FUNCTION).
--
-- Redis checks every command a function runs against the caller's ACL, so the key pattern of the
-- namespace's user already confines a call to that namespace's keys. The functions check their arguments
-- too, all of them before the first write (Redis does not roll a function back): a bounded number of
-- well-formed keys of one namespace, integers in range, and a bounded TTL on every key they write. A call
-- that fails a check writes nothing and answers "ERR claude-guard: ...", which the sidecar treats like an
-- unreachable backend (its failure mode applies).
--
-- The names carry the version of the calling convention (v1). A change to the arguments, the replies or
-- the keys is a new library (claudeguard_v2 with cg_v2_* functions) that the manager loads beside this
-- one, so that sidecars of both versions work during a rollout; within a version the code may be fixed,
-- and the manager replaces a library whose code differs from its own.
--
-- The bounds below are mirrored in internal/redislib (its tests read them from here).
local MAX_KEYS = 128                    -- rules and budgets of one request; the CRDs allow far fewer
local MAX_KEY_LEN = 512                 -- bytes; the key layout produces at most about 300
local MAX_COUNTER_TTL = 2764800000      -- ms: 32 days, more than a calendar month plus the grace
local MAX_REPLAY_TTL = 31622400000      -- ms: 366 days
local MAX_AMOUNT = 4611686018427387904  -- 2^62: tokens or micro-USD, well inside a Redis integer

local function fail(msg)
  error({err = 'ERR claude-guard: ' .. msg})
end

-- integer checks that s is a decimal integer within [min, max] and returns it as a Lua number (a double:
-- exact up to 2^53, which is enough to compare against the bounds). Callers pass the string itself to
-- HINCRBY, so no digit is lost.
local function integer(s, min, max, what)
  if #s > 20 or not string.find(s, '^%-?%d+$') then
    fail(what .. ' must be a decimal integer')
  end
  local n = tonumber(s)
  if n < min or n > max then
    fail(what .. ' is out of range')
  end
  return n
end

-- check_keys checks that keys holds 1 to max keys of one namespace (cg:{<namespace>}:...) whose part
-- after the hash tag matches the Lua pattern kind. Keys are never echoed: they may carry end users'
-- names.
local function check_keys(keys, max, kind, what)
  if #keys < 1 or #keys > max then
    fail('between 1 and ' .. max .. ' ' .. what .. ' keys are allowed, got ' .. #keys)
  end
  local tag
  for i = 1, #keys do
    local key = keys[i]
    if #key > MAX_KEY_LEN then
      fail(what .. ' key ' .. i .. ' is longer than ' .. MAX_KEY_LEN .. ' bytes')
    end
    local t, rest = string.match(key, '^cg:{([^{}]+)}:(.*)$')
    if t == nil or not string.find(rest, kind) then
      fail(what .. ' key ' .. i .. ' is not a claude-guard ' .. what .. ' key')
    end
    if tag == nil then
      tag = t
    elseif t ~= tag then
      fail('the keys of one call must belong to one namespace')
    end
  end
end

local function check_ttl(s, max)
  integer(s, 1, max, 'TTL (ms)')
end

-- add adds delta (a decimal string) to a counter field, never leaving it below zero.
local function add(key, field, delta)
  if delta == '0' then
    return
  end
  local v = redis.call('HINCRBY', key, field, delta)
  if v < 0 then
    redis.call('HINCRBY', key, field, string.format('%d', -v))
  end
end

-- cg_v1_reserve checks every rule of one request and takes all of the request's holds, or none.
--
-- Redis runs a function without interleaving any other command, and every key carries the namespace's
-- hash tag (one Redis Cluster slot), so no other sidecar can take capacity between the check and the
-- take. This is check() and Memory.Reserve in sidecar/limits, in Lua; keep them in step.
--
-- KEYS[i]   the counter of rule i in its current window (cg:{<ns>}:<p|t>:...): a hash with fields r
--           (requests) and a (tokens or micro-USD), reserved plus used.
-- ARGV[1]   "1" to take the holds even when a rule refuses (shadow mode), else "0".
-- ARGV[o..o+5], o = 2 + 6*(i-1): rule i's kind ("l" limit, "b" budget), request limit, amount limit
--           (0 = none), requests to hold (0 or 1), amount to hold, TTL of the key in ms (window end +
--           grace; set on a key that has none).
--
-- Returns {i, reason, r1, a1, r2, a2, ...}: the first refusing rule (0 = none) and why (1 requests,
-- 2 tokens, 3 budget), then every rule's counters after the take (as they are when nothing was taken).
local function reserve(keys, args)
  check_keys(keys, MAX_KEYS, '^[pt]:', 'counter')
  local n = #keys
  if #args ~= 1 + 6 * n then
    fail('reserve takes 1 + 6 arguments per key')
  end
  if args[1] ~= '0' and args[1] ~= '1' then
    fail('force must be 0 or 1')
  end
  local rules = {}
  for i = 1, n do
    local o = 2 + 6 * (i - 1)
    if args[o] ~= 'l' and args[o] ~= 'b' then
      fail('rule kind must be l or b')
    end
    rules[i] = {
      budget = args[o] == 'b',
      lr = integer(args[o + 1], 0, MAX_AMOUNT, 'request limit'),
      la = integer(args[o + 2], 0, MAX_AMOUNT, 'amount limit'),
      hr = integer(args[o + 3], 0, 1, 'request hold'),
      ha = integer(args[o + 4], 0, MAX_AMOUNT, 'amount hold'),
    }
    check_ttl(args[o + 5], MAX_COUNTER_TTL)
  end

  local cur = {}
  local denied, reason = 0, 0
  for i = 1, n do
    local v = redis.call('HMGET', keys[i], 'r', 'a')
    local r, a = tonumber(v[1]) or 0, tonumber(v[2]) or 0
    cur[i] = {r, a}
    local ru = rules[i]
    if denied == 0 then
      if ru.budget then
        if a >= ru.la then denied, reason = i, 3 end
      elseif ru.lr > 0 and r + ru.hr > ru.lr then
        denied, reason = i, 1
      elseif ru.la > 0 and a + ru.ha > ru.la then
        denied, reason = i, 2
      end
    end
  end

  local take = denied == 0 or args[1] == '1'
  local out = {denied, reason}
  for i = 1, n do
    local o = 2 + 6 * (i - 1)
    local r, a = cur[i][1], cur[i][2]
    if take and (rules[i].hr > 0 or rules[i].ha > 0) then
      if rules[i].hr > 0 then r = redis.call('HINCRBY', keys[i], 'r', args[o + 3]) end
      if rules[i].ha > 0 then a = redis.call('HINCRBY', keys[i], 'a', args[o + 4]) end
      -- NX: a counter gets its TTL when it is created (every later write is to the same window), and a
      -- counter that somehow has none gets one.
      redis.call('PEXPIRE', keys[i], args[o + 5], 'NX')
    end
    out[#out + 1] = r
    out[#out + 1] = a
  end
  return out
end

-- cg_v1_adjust applies a settle or a refund: it adds signed deltas to the counters of one reservation,
-- never leaving one below zero.
--
-- KEYS[i]   a counter the reservation held; the caller leaves out counters whose window has ended, so a
--           late settle never touches the next window.
-- ARGV[o..o+2], o = 1 + 3*(i-1): request delta (-1, 0 or 1), amount delta, TTL of the key in ms (set on
--           a key that has none: a budget's counter is first written here, since reserve holds nothing
--           against a budget).
--
-- Returns the number of counters adjusted.
local function adjust(keys, args)
  check_keys(keys, MAX_KEYS, '^[pt]:', 'counter')
  local n = #keys
  if #args ~= 3 * n then
    fail('adjust takes 3 arguments per key')
  end
  for i = 1, n do
    local o = 1 + 3 * (i - 1)
    integer(args[o], -1, 1, 'request delta')
    integer(args[o + 1], -MAX_AMOUNT, MAX_AMOUNT, 'amount delta')
    check_ttl(args[o + 2], MAX_COUNTER_TTL)
  end
  for i = 1, n do
    local o = 1 + 3 * (i - 1)
    add(keys[i], 'r', args[o])
    add(keys[i], 'a', args[o + 1])
    redis.call('PEXPIRE', keys[i], args[o + 2], 'NX')
  end
  return n
end

-- cg_v1_once records a replay key (cg:{<ns>}:jti:...) and reports whether this is the first time it was
-- seen within its TTL: 1 the first time, 0 after.
--
-- KEYS[1]   the replay key: an integer counting the uses (INCR: a key that an earlier release wrote with
--           SET key 1 NX PX counts as seen).
-- ARGV[1]   TTL of the key in ms, set with the first use.
local function once(keys, args)
  check_keys(keys, 1, '^jti:', 'replay')
  if #args ~= 1 then
    fail('once takes 1 argument')
  end
  check_ttl(args[1], MAX_REPLAY_TTL)
  local first = redis.call('INCR', keys[1]) == 1
  redis.call('PEXPIRE', keys[1], args[1], 'NX')
  if first then
    return 1
  end
  return 0
end

redis.register_function('cg_v1_reserve', reserve)
redis.register_function('cg_v1_adjust', adjust)
redis.register_function('cg_v1_once', once)
