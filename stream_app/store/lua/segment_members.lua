-- One page of a segment's members, from the index record_segment.lua keeps; built first
-- where missing.
-- KEYS[1]: the set of segments with a member index (its member '' marks it built).
-- ARGV[1]: the glob of the customers' state keys; ARGV[2]: the key prefix; ARGV[3]: the
-- segment; ARGV[4]: the customer id the page starts after ('' for the first page);
-- ARGV[5]: the page size.
-- The index is missing in a store written by an older release, and after a bulk write of
-- whole states (`put`, which drops it, see drop_members.lua): it is then built once from every
-- state, in this one script, so no change recorded meanwhile is lost or counted twice. That
-- blocks Redis for the build, once (its time grows with the customers); keeping the index
-- costs a ZREM and a ZADD per change.
local indexed, prefix = KEYS[1], ARGV[2]
if redis.call('EXISTS', indexed) == 0 then
  local cursor = '0'
  repeat
    local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
    cursor = page[1]
    for _, key in ipairs(page[2]) do
      local segment = redis.call('HGET', key, 'segment')
      if segment and segment ~= '' then
        redis.call('ZADD', prefix .. ':segment:' .. segment, 0, string.match(key, '{(.-)}'))
        redis.call('SADD', indexed, segment)
      end
    end
  until cursor == '0'
  redis.call('SADD', indexed, '')
end
local start = '-'
if ARGV[4] ~= '' then
  start = '(' .. ARGV[4]
end
return redis.call('ZRANGEBYLEX', prefix .. ':segment:' .. ARGV[3], start, '+',
  'LIMIT', 0, tonumber(ARGV[5]))
