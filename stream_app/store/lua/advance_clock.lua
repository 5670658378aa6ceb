-- Move the event-time clock: the lowest partition watermark, never back.
-- KEYS: clock, watermarks (hash: partition -> largest event time seen there).
-- ARGV[1]: a time every partition is deliberately moved to at least (a clock event), or ''.
-- ARGV[2..]: partition, largest event time of this batch on it (epoch s, text), ...
-- Returns the clock (text), or false while there is none.
local clock, marks = KEYS[1], KEYS[2]
for i = 2, #ARGV, 2 do
  local seen = tonumber(redis.call('HGET', marks, ARGV[i]))
  if seen == nil or tonumber(ARGV[i + 1]) > seen then
    redis.call('HSET', marks, ARGV[i], ARGV[i + 1])
  end
end
local floor = tonumber(ARGV[1])
local lowest, lowest_text = floor, ARGV[1]
local all = redis.call('HGETALL', marks)
if #all > 0 then
  lowest = nil
  for i = 1, #all, 2 do
    local value, text = tonumber(all[i + 1]), all[i + 1]
    if floor ~= nil and value < floor then
      redis.call('HSET', marks, all[i], ARGV[1])
      value, text = floor, ARGV[1]
    end
    if lowest == nil or value < lowest then
      lowest, lowest_text = value, text
    end
  end
end
local current = tonumber(redis.call('GET', clock))
if lowest ~= nil and (current == nil or lowest > current) then
  redis.call('SET', clock, lowest_text)
  return lowest_text
end
return redis.call('GET', clock)
