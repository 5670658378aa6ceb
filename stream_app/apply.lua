-- Apply one order event to one customer's state, once and atomically.
-- KEYS: state hash, applied-event-id set, per-stock-code items hash (one hash tag).
-- ARGV: event_id, is_return (0/1), occurred_at (epoch s), country, total value,
--       items as a JSON array of [sku, units, value].
-- Returns {applied (0/1), the state's FIELDS in order} (FIELDS as in redis_store.py).
local state, orders, items = KEYS[1], KEYS[2], KEYS[3]
local event_id = ARGV[1]
local is_return = ARGV[2] == '1'
local occurred_at = tonumber(ARGV[3])
local FIELDS = {'frequency', 'spent', 'returned_matched', 'first_purchase', 'last_purchase',
  'last_order', 'country', 'segment', 'segment_since', 'model_version', 'sequence',
  'seg_r', 'seg_f', 'seg_m'}

if redis.call('SADD', orders, event_id) == 0 then
  return {0, redis.call('HMGET', state, unpack(FIELDS))}
end
local entries = cjson.decode(ARGV[6])
local n = #entries

local function matched(bought, returned, value)
  if returned <= 0 then return 0 end
  return math.min(returned, bought) * (value / returned)
end

local delta = 0
for i = 1, n do
  local sku = entries[i][1]
  local units = entries[i][2]
  local current = redis.call('HMGET', items, 'b:' .. sku, 'r:' .. sku, 'v:' .. sku)
  local bought = tonumber(current[1]) or 0
  local returned = tonumber(current[2]) or 0
  local value = tonumber(current[3]) or 0
  local before = matched(bought, returned, value)
  if is_return then
    returned = redis.call('HINCRBY', items, 'r:' .. sku, units)
    value = tonumber(redis.call('HINCRBYFLOAT', items, 'v:' .. sku,
      string.format('%.17g', entries[i][3])))
  else
    bought = redis.call('HINCRBY', items, 'b:' .. sku, units)
  end
  delta = delta + matched(bought, returned, value) - before
end
if delta ~= 0 then
  redis.call('HINCRBYFLOAT', state, 'returned_matched', string.format('%.17g', delta))
end

if (not is_return) and n > 0 then
  redis.call('HINCRBY', state, 'frequency', 1)
  redis.call('HINCRBYFLOAT', state, 'spent', ARGV[5])
  local first = tonumber(redis.call('HGET', state, 'first_purchase'))
  if first == nil or occurred_at < first then
    redis.call('HSET', state, 'first_purchase', ARGV[3])
  end
  local last = redis.call('HMGET', state, 'last_purchase', 'last_order')
  local last_at = tonumber(last[1])
  if last_at == nil or occurred_at > last_at or (occurred_at == last_at and event_id > last[2]) then
    redis.call('HSET', state, 'last_purchase', ARGV[3], 'last_order', event_id, 'country', ARGV[4])
  end
elseif redis.call('EXISTS', state) == 0 then
  -- A return (or an event with no valid line) from an unknown customer still leaves a record.
  redis.call('HSET', state, 'frequency', 0)
end
return {1, redis.call('HMGET', state, unpack(FIELDS))}
