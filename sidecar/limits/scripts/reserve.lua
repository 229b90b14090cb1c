-- reserve.lua checks every rule of one request and takes all of the request's holds, or none.
--
-- Redis runs a script without interleaving any other command, and every key carries the namespace's hash
-- tag (one Redis Cluster slot), so no other sidecar can take capacity between the check and the take.
-- This is check() and Memory.Reserve in sidecar/limits, in Lua; keep them in step.
--
-- KEYS[i]   the counter of rule i in its current window: a hash with fields r (requests) and a (tokens
--           or micro-USD), reserved plus used.
-- ARGV[1]   "1" to take the holds even when a rule refuses (shadow mode).
-- ARGV[o..o+5], o = 2 + 6*(i-1): rule i's kind ("l" limit, "b" budget), request limit, amount limit
--           (0 = none), requests to hold, amount to hold, TTL of the key in ms (window end + grace).
--
-- Returns {i, reason, r1, a1, r2, a2, ...}: the first refusing rule (0 = none) and why (1 requests,
-- 2 tokens, 3 budget), then every rule's counters after the take (as they are when nothing was taken).
-- Amounts are passed to HINCRBY as the strings received: Lua numbers are doubles, and formatting them
-- back could lose digits.
local force = ARGV[1] == '1'
local n = #KEYS
local cur = {}
local denied, reason = 0, 0
for i = 1, n do
  local o = 2 + 6 * (i - 1)
  local v = redis.call('HMGET', KEYS[i], 'r', 'a')
  local r, a = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  cur[i] = {r, a, v[1] == false and v[2] == false}
  if denied == 0 then
    local lr, la = tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2])
    local hr, ha = tonumber(ARGV[o + 3]), tonumber(ARGV[o + 4])
    if ARGV[o] == 'b' then
      if a >= la then denied, reason = i, 3 end
    elseif lr > 0 and r + hr > lr then
      denied, reason = i, 1
    elseif la > 0 and a + ha > la then
      denied, reason = i, 2
    end
  end
end
local take = denied == 0 or force
local out = {denied, reason}
for i = 1, n do
  local o = 2 + 6 * (i - 1)
  local r, a, new = cur[i][1], cur[i][2], cur[i][3]
  if take and ARGV[o + 3] ~= '0' then r = redis.call('HINCRBY', KEYS[i], 'r', ARGV[o + 3]) end
  if take and ARGV[o + 4] ~= '0' then a = redis.call('HINCRBY', KEYS[i], 'a', ARGV[o + 4]) end
  -- A counter gets its TTL when it is created; every later write is to the same window.
  if take and new and (ARGV[o + 3] ~= '0' or ARGV[o + 4] ~= '0') then redis.call('PEXPIRE', KEYS[i], ARGV[o + 5]) end
  out[#out + 1] = r
  out[#out + 1] = a
end
return out
