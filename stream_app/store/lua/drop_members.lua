-- Drop the segment member indexes (after a bulk write of whole states): the next read
-- builds them again from the states (segment_indexes.lua).
-- KEYS[1]: the set of segments with a member index. ARGV[1]: the key prefix.
for _, segment in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if segment ~= '' then
    redis.call('DEL', ARGV[1] .. ':segment:' .. segment)
  end
end
return redis.call('DEL', KEYS[1])
