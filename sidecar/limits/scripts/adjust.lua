-- adjust.lua applies a settle or a refund: it adds signed deltas to the counters of one reservation,
-- never leaving one below zero, in one round trip.
--
-- KEYS[i]   a counter the reservation held (see reserve.lua); the caller leaves out counters whose window
--           has ended, so a late settle never touches the next window.
-- ARGV[o..o+2], o = 1 + 3*(i-1): request delta, amount delta, TTL of the key in ms. The TTL is set again
--           because a budget's counter is first written here (reserve holds nothing against a budget).
--
-- Returns the number of counters adjusted.
for i = 1, #KEYS do
  local o = 1 + 3 * (i - 1)
  if ARGV[o] ~= '0' and redis.call('HINCRBY', KEYS[i], 'r', ARGV[o]) < 0 then
    redis.call('HSET', KEYS[i], 'r', 0)
  end
  if ARGV[o + 1] ~= '0' and redis.call('HINCRBY', KEYS[i], 'a', ARGV[o + 1]) < 0 then
    redis.call('HSET', KEYS[i], 'a', 0)
  end
  redis.call('PEXPIRE', KEYS[i], ARGV[o + 2])
end
return #KEYS
