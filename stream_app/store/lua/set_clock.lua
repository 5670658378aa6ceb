-- Set the event-time clock to a time, earlier or later (`rfm clock set`, for operators).
-- KEYS: clock, watermarks. ARGV[1]: the time (epoch s, text).
-- Watermarks beyond it come back to it, so that the next batch cannot move the clock again
-- to where a bad event had put it.
local target = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) > target then
    redis.call('HSET', KEYS[2], all[i], ARGV[1])
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
