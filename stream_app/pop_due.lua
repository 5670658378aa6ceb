-- Take the customers whose segment is due to change by now (atomically: each is taken once).
-- KEYS: due sorted set. ARGV: now (epoch s), most to take.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
  redis.call('ZREM', KEYS[1], unpack(ids))
end
return ids
