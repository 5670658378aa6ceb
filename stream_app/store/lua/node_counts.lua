#!lua flags=allow-cross-slot-keys
-- On a Redis Cluster: the customers per segment in many hash slots of this node, summed, in
-- one call (a call per slot would cost more to send than to run), building a slot's indexes
-- first where they are missing, as segment_indexes.lua does on one Redis.
-- ARGV[1]: the key prefix; then per slot (all served by this node): its number, its counts
-- hash key (field '' marks it built), its set of indexed segments (member '' marks them
-- built), and what its member index keys begin with.
-- A slot holding no customer of this prefix gets no index at all (an empty slot costs no
-- memory); record_segment.lua keeps only the indexes that exist, so a customer arriving there
-- later is counted when the next call builds that slot's.
-- Returns the summed counts as a flat list.
local pattern = '^' .. string.gsub(ARGV[1], '%p', '%%%0') .. ':{.-}:state$'
local totals, order = {}, {}

local function build(slot, counts, indexed, members)
  local build_counts = redis.call('EXISTS', counts) == 0
  local build_members = redis.call('EXISTS', indexed) == 0
  if not (build_counts or build_members) then
    return
  end
  local count = redis.call('CLUSTER', 'COUNTKEYSINSLOT', slot)
  if count == 0 then
    return
  end
  local found = false
  for _, key in ipairs(redis.call('CLUSTER', 'GETKEYSINSLOT', slot, count)) do
    if string.match(key, pattern) then
      found = true
      local segment = redis.call('HGET', key, 'segment')
      if segment and segment ~= '' then
        if build_counts then
          redis.call('HINCRBY', counts, segment, 1)
        end
        if build_members then
          redis.call('ZADD', members .. ':segment:' .. segment, 0, string.match(key, '{(.-)}'))
          redis.call('SADD', indexed, segment)
        end
      end
    end
  end
  if found and build_counts then
    redis.call('HSET', counts, '', 1)
  end
  if found and build_members then
    redis.call('SADD', indexed, '')
  end
end

for i = 2, #ARGV, 4 do
  build(tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
  local fields = redis.call('HGETALL', ARGV[i + 1])
  for f = 1, #fields, 2 do
    local segment = fields[f]
    if segment ~= '' then
      if totals[segment] == nil then
        order[#order + 1] = segment
        totals[segment] = 0
      end
      totals[segment] = totals[segment] + tonumber(fields[f + 1])
    end
  end
end
local flat = {}
for _, segment in ipairs(order) do
  flat[#flat + 1] = segment
  flat[#flat + 1] = totals[segment]
end
return flat
