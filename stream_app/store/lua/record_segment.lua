-- Store customers' new segments, each unless it changed meanwhile (compare-and-set on the
-- previous segment and the sequence number), and keep the indexes the Profile API reads.
-- KEYS[1]: the hash of customers per segment (kept only where it exists: a store written by
-- an older release has none until it is rebuilt, see segment_indexes.lua). KEYS[2]: the set of
-- segments with a member index (kept only where it exists, see segment_indexes.lua).
-- KEYS[3]: the sorted set of the days with flows.
-- For each update u (1-based), KEYS[2u+2..2u+3]: the customer's state hash and history list
-- (one hash tag). ARGV[1]: the history length to keep; ARGV[2]: a JSON array with, per
-- update, [segment, previous segment ('' for none), since (epoch s, text), model version,
-- sequence, history entry (JSON text), recency, frequency, monetary (text; '' if unknown),
-- reason, day of the change (stream clock, YYYY-MM-DD)]; ARGV[3]: what the member index keys
-- begin with (the key prefix; on a Redis Cluster the prefix of the customers' hash slot);
-- ARGV[4]: '1' to keep the flows and sizes per day here, '0' to leave them to the caller.
-- The member index keys and the per-day keys are named here, not passed in KEYS: on one
-- Redis that is allowed; on a Redis Cluster the member index keys are those of the customers'
-- slot (KEYS[1] and KEYS[2] too) and the per-day keys are not touched (ARGV[4] = '0').
-- Returns, per update, 1 if stored now, 2 if stored by this same update before (a resend)
-- and 0 if not.
local keep = tonumber(ARGV[1])
local updates = cjson.decode(ARGV[2])
local prefix = ARGV[3]
local per_day = ARGV[4] ~= '0'
local counts, indexed, days = KEYS[1], KEYS[2], KEYS[3]
local counted = redis.call('EXISTS', counts) == 1
local listed = redis.call('EXISTS', indexed) == 1
local results = {}
-- Per day, the flows and the sizes of this call, written once per day at the end.
local flows, sizes, seen = {}, {}, {}
for u = 1, #updates do
  local state, history, update = KEYS[2 * u + 2], KEYS[2 * u + 3], updates[u]
  local current = redis.call('HGET', state, 'segment') or ''
  local stored = tonumber(redis.call('HGET', state, 'sequence')) or 0
  if update[5] == stored and current == update[1]
      and redis.call('LINDEX', history, 0) == update[6] then
    -- Recorded already by this very update (a resend after its reply was lost): stored.
    results[u] = 2
  elseif current ~= update[2] or update[5] <= stored then
    results[u] = 0
  else
    -- Marked unannounced until the change is published (then cleared): a crash in between
    -- leaves the mark, and whoever scores the customer next publishes the change again.
    redis.call('HSET', state, 'segment', update[1], 'segment_since', update[3],
      'model_version', update[4], 'sequence', update[5], 'unannounced', 1)
    if update[7] ~= '' then
      redis.call('HSET', state, 'seg_r', update[7], 'seg_f', update[8], 'seg_m', update[9])
    end
    local day = update[11]
    if not seen[day] then
      seen[day] = true
      flows[day], sizes[day] = {}, {}
    end
    if counted then
      if current ~= '' then
        sizes[day][current] = redis.call('HINCRBY', counts, current, -1)
      end
      sizes[day][update[1]] = redis.call('HINCRBY', counts, update[1], 1)
    end
    if listed then
      local customer = string.match(state, '{(.-)}')
      if current ~= '' then
        redis.call('ZREM', prefix .. ':segment:' .. current, customer)
      end
      redis.call('ZADD', prefix .. ':segment:' .. update[1], 0, customer)
      redis.call('SADD', indexed, update[1])
    end
    local flow = current .. '|' .. update[1] .. '|' .. update[10]
    flows[day][flow] = (flows[day][flow] or 0) + 1
    redis.call('LPUSH', history, update[6])
    redis.call('LTRIM', history, 0, keep - 1)
    results[u] = 1
  end
end
if not per_day then
  return results
end
for day, _ in pairs(seen) do
  redis.call('ZADD', days, 0, day)
  for flow, count in pairs(flows[day]) do
    redis.call('HINCRBY', prefix .. ':flows:' .. day, flow, count)
  end
  local fields = {}
  for segment, size in pairs(sizes[day]) do
    fields[#fields + 1] = segment
    fields[#fields + 1] = size
  end
  if #fields > 0 then
    redis.call('HSET', prefix .. ':sizes:' .. day, unpack(fields))
  end
end
return results
