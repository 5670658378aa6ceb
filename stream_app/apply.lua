-- Apply order events to customers' states, each event once and atomically.
-- For each event e (1-based), KEYS[3e-2..3e]: its customer's state hash, applied-event-id
-- set and per-stock-code items hash (one hash tag), and ARGV[6e-5..6e]: event_id, is_return
-- (0/1), occurred_at (epoch s), country, total value, items as a JSON array of
-- [sku, units, value]. Events are applied in order; the whole call is atomic.
-- Returns, per event, {applied (0/1), the state's FIELDS in order} (as in redis_store.py).
local FIELDS = {'frequency', 'spent', 'returned_matched', 'first_purchase', 'last_purchase',
  'last_order', 'country', 'segment', 'segment_since', 'model_version', 'sequence',
  'seg_r', 'seg_f', 'seg_m', 'unannounced'}

local function matched(bought, returned, value)
  if returned <= 0 then return 0 end
  return math.min(returned, bought) * (value / returned)
end

local function apply(state, orders, items, event_id, is_return, occurred_text, country,
                     total, entries_json)
  local occurred_at = tonumber(occurred_text)
  if redis.call('SADD', orders, event_id) == 0 then
    return {0, redis.call('HMGET', state, unpack(FIELDS))}
  end
  -- A return (or an event with no valid line) from an unknown customer still leaves a record.
  redis.call('HSETNX', state, 'frequency', 0)
  local entries = cjson.decode(entries_json)
  local n = #entries

  local delta = 0
  -- Most customers never return anything: their purchases need no return matching.
  local plain = (not is_return) and redis.call('HEXISTS', state, 'has_returns') == 0
  if is_return and n > 0 then
    redis.call('HSET', state, 'has_returns', 1)
  end
  for i = 1, n do
    local sku = entries[i][1]
    local units = entries[i][2]
    if plain then
      redis.call('HINCRBY', items, 'b:' .. sku, units)
    else
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
  end
  if delta ~= 0 then
    redis.call('HINCRBYFLOAT', state, 'returned_matched', string.format('%.17g', delta))
  end

  if (not is_return) and n > 0 then
    redis.call('HINCRBY', state, 'frequency', 1)
    redis.call('HINCRBYFLOAT', state, 'spent', total)
    local first = tonumber(redis.call('HGET', state, 'first_purchase'))
    if first == nil or occurred_at < first then
      redis.call('HSET', state, 'first_purchase', occurred_text)
    end
    local last = redis.call('HMGET', state, 'last_purchase', 'last_order')
    local last_at = tonumber(last[1])
    if last_at == nil or occurred_at > last_at or (occurred_at == last_at and event_id > last[2]) then
      redis.call('HSET', state, 'last_purchase', occurred_text, 'last_order', event_id, 'country', country)
    end
  end
  return {1, redis.call('HMGET', state, unpack(FIELDS))}
end

local results = {}
for e = 1, #KEYS / 3 do
  local k, a = 3 * e - 2, 6 * e - 5
  results[e] = apply(KEYS[k], KEYS[k + 1], KEYS[k + 2], ARGV[a], ARGV[a + 1] == '1',
    ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5])
end
return results
