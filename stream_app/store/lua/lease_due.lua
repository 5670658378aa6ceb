-- Lease the given customers of one due set that are still due by now (on a Redis Cluster, where
-- the caller first reads the earliest due customers of every due set, then leases its pick).
-- KEYS[1]: the due sorted set. ARGV[1]: now (epoch s), ARGV[2]: lease (s), ARGV[3..]: ids.
-- A customer another caller leased meanwhile (due later than now) is left out, so each due
-- customer is still taken by one caller only. Returns the ids leased.
local now = tonumber(ARGV[1])
local lease_end = now + tonumber(ARGV[2])
local taken = {}
for i = 3, #ARGV do
  local due = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i]))
  if due ~= nil and due <= now then
    redis.call('ZADD', KEYS[1], 'XX', lease_end, ARGV[i])
    taken[#taken + 1] = ARGV[i]
  end
end
return taken
