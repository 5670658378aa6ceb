-- Customers per segment, from the hash record_segment.lua keeps; built first where missing.
-- KEYS[1]: the hash (segment -> customers; the field '' marks it built). ARGV[1]: the glob of
-- the customers' state keys.
-- The hash is missing in a store written by an older release, and after a bulk write of
-- whole states (`put`, e.g. by `rfm bootstrap`), which deletes it: it is then counted once
-- from every state, in this one script, so no change recorded meanwhile is lost or counted
-- twice. That blocks Redis for the count, once (its time grows with the customers); keeping
-- the hash costs two HINCRBY per change.
local counts = KEYS[1]
if redis.call('EXISTS', counts) == 0 then
  local cursor = '0'
  repeat
    local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
    cursor = page[1]
    for _, key in ipairs(page[2]) do
      local segment = redis.call('HGET', key, 'segment')
      if segment and segment ~= '' then
        redis.call('HINCRBY', counts, segment, 1)
      end
    end
  until cursor == '0'
  redis.call('HSET', counts, '', 1)
end
return redis.call('HGETALL', counts)
