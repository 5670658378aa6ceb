-- Build the segment indexes record_segment.lua keeps, from every state, where they are missing:
-- the customers per segment (KEYS[1], a hash; its field '' marks it built) and the member
-- index of each segment (ARGV[2] .. ':segment:<name>', sorted sets; KEYS[2], the set of the
-- segments with one, its member '' marks them built), then read one of them. ARGV[1]: the
-- glob of the customers' state keys; ARGV[2]: the key prefix; ARGV[3]: what to read: 'counts'
-- (the hash), 'page' (ARGV[4]: the segment, ARGV[5]: the customer id the page starts after,
-- '' for the first page, ARGV[6]: the page size) or 'nothing'.
-- They are missing in a store written by an older release, and after a bulk write of whole
-- states (`put`, e.g. by `rfm bootstrap`), which deletes the counts and drops the member
-- indexes (drop_members.lua). What is missing is then built in one scan of the states, in
-- this one script, so no change recorded meanwhile is lost or counted twice. That blocks
-- Redis for the scan, once (its time grows with the customers); keeping them costs two
-- HINCRBY, a ZREM and a ZADD per change.
-- Returns what ARGV[3] asks for (the hash as a flat list, the page's ids, or nothing).
local counts, indexed, prefix = KEYS[1], KEYS[2], ARGV[2]
local build_counts = redis.call('EXISTS', counts) == 0
local build_members = redis.call('EXISTS', indexed) == 0
if build_counts or build_members then
  local cursor = '0'
  repeat
    local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
    cursor = page[1]
    for _, key in ipairs(page[2]) do
      local segment = redis.call('HGET', key, 'segment')
      if segment and segment ~= '' then
        if build_counts then
          redis.call('HINCRBY', counts, segment, 1)
        end
        if build_members then
          redis.call('ZADD', prefix .. ':segment:' .. segment, 0, string.match(key, '{(.-)}'))
          redis.call('SADD', indexed, segment)
        end
      end
    end
  until cursor == '0'
  if build_counts then
    redis.call('HSET', counts, '', 1)
  end
  if build_members then
    redis.call('SADD', indexed, '')
  end
end
if ARGV[3] == 'counts' then
  return redis.call('HGETALL', counts)
elseif ARGV[3] == 'page' then
  local start = '-'
  if ARGV[5] ~= '' then
    start = '(' .. ARGV[5]
  end
  return redis.call('ZRANGEBYLEX', prefix .. ':segment:' .. ARGV[4], start, '+',
    'LIMIT', 0, tonumber(ARGV[6]))
end
return nil
