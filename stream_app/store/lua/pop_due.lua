-- Take the customers whose segment is due to change by now, each by one caller only.
-- KEYS: due sorted set. ARGV: now (epoch s), most to take, lease (s).
-- Taken customers are not removed but leased: moved to now + lease. The caller schedules
-- their real next due time when done; if it dies first, they come due again after the lease.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local lease_end = tonumber(ARGV[1]) + tonumber(ARGV[3])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], 'XX', lease_end, id)
end
return ids
