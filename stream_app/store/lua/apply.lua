-- Apply order events to customers' states, each event once and atomically.
-- KEYS[1]: the store epoch. For each event e (1-based), KEYS[4e-2..4e+1]: its customer's state
-- hash, applied-event-id set (written by earlier releases; only read), per-stock-code items
-- hash and applied event id -> content digest hash (one hash tag). The digests hash holds every
-- applied event id, with '' where the event had no digest: it is the idempotency record, and an
-- id in the set counts as applied too (stores written before the set was dropped).
-- ARGV[1]: the epoch the caller works in ('' for no check): when the store's differs (a wiped
-- or rebuilt store) nothing is written and the call fails with RFMLOST.
-- ARGV[2]: a JSON array with, per event, [event_id, is_return (0/1), occurred_at (epoch s,
-- text), country, total value (text), stock codes, units per stock code, for returns their
-- values (else an empty array), content digest ("" for none)].
-- ARGV[3..]: the state fields to read back.
-- Events are applied in order; the whole call is atomic. Each event's values are checked
-- before its first write: Redis keeps a script's writes made before an error, so an error
-- half-way would leave an order half-applied.
-- Returns {results, states}: per event, 1 if it was applied, 0 if it had been applied before
-- with the same content (or before digests were kept), 'conflict:<digest>' if it had been
-- applied with other content (the stored digest), 'invalid:<why>' if a value cannot be
-- applied (nothing written); then, per customer in the order they first appear, the state
-- fields after the call (what scoring needs, so that no second call reads them back).

local MAX_UNITS = 2 ^ 53  -- doubles count units exactly up to here

local function finite(x)
  return x ~= nil and x == x and x ~= math.huge and x ~= -math.huge
end

-- Why an event's values cannot be applied, or nil.
local function problem(occurred_text, total, skus, units, values, is_return)
  if not finite(tonumber(occurred_text)) then return 'occurred_at' end
  if not finite(tonumber(total)) then return 'total' end
  if #units ~= #skus or (is_return and #values ~= #skus) then return 'items' end
  for i = 1, #units do
    local u = units[i]
    if type(u) ~= 'number' or u <= 0 or u > MAX_UNITS or u ~= math.floor(u) then
      return 'quantity'
    end
    if is_return and (type(values[i]) ~= 'number' or not finite(values[i])) then
      return 'value'
    end
  end
  return nil
end

local function matched(bought, returned, value)
  if returned <= 0 then return 0 end
  return math.min(returned, bought) * (value / returned)
end

-- The change in matched return value when `units` of a stock code are bought.
local function buy(items, sku, units, returned)
  local bought = redis.call('HINCRBY', items, 'b:' .. sku, units)
  if returned <= 0 then return 0 end
  local value = tonumber(redis.call('HGET', items, 'v:' .. sku)) or 0
  return matched(bought, returned, value) - matched(bought - units, returned, value)
end

-- The change in matched return value when `units` worth `worth` of a stock code come back.
local function give_back(items, sku, units, worth)
  local current = redis.call('HMGET', items, 'b:' .. sku, 'r:' .. sku, 'v:' .. sku)
  local bought = tonumber(current[1]) or 0
  local before = matched(bought, tonumber(current[2]) or 0, tonumber(current[3]) or 0)
  local returned = redis.call('HINCRBY', items, 'r:' .. sku, units)
  local value = tonumber(redis.call('HINCRBYFLOAT', items, 'v:' .. sku,
    string.format('%.17g', worth)))
  return matched(bought, returned, value) - before
end

local function apply(state, orders, items, digests, event_id, is_return, occurred_text,
                     country, total, skus, units, values, digest)
  local why = problem(occurred_text, total, skus, units, values, is_return)
  if why then
    return 'invalid:' .. why
  end
  local known_digest = redis.call('HGET', digests, event_id)
  if known_digest or redis.call('SISMEMBER', orders, event_id) == 1 then
    if known_digest and known_digest ~= '' and digest ~= '' and known_digest ~= digest then
      return 'conflict:' .. known_digest
    end
    return 0
  end
  -- Reads before the first write: a key of the wrong type fails here, with nothing written.
  local known = redis.call('HMGET', state, 'has_returns', 'first_purchase', 'last_purchase',
    'last_order')
  local n = #skus
  if n > 0 then
    redis.call('HEXISTS', items, 'b:' .. skus[1])
  end
  redis.call('HSET', digests, event_id, digest)
  -- A return (or an event with no valid line) from an unknown customer still leaves a record.
  redis.call('HSETNX', state, 'frequency', 0)
  if n == 0 then
    return 1
  end

  local delta = 0
  if is_return then
    redis.call('HSET', state, 'has_returns', 1)
    for i = 1, n do
      delta = delta + give_back(items, skus[i], units[i], values[i])
    end
  elseif not known[1] then
    -- Most customers never return anything: their purchases need no return matching.
    for i = 1, n do
      redis.call('HINCRBY', items, 'b:' .. skus[i], units[i])
    end
  else
    -- Only the stock codes returned before need matching: look them up a block at a time.
    for first = 1, n, 1000 do
      local last = math.min(first + 999, n)
      local fields = {}
      for i = first, last do
        fields[#fields + 1] = 'r:' .. skus[i]
      end
      local returned = redis.call('HMGET', items, unpack(fields))
      for i = first, last do
        local units_returned = tonumber(returned[i - first + 1]) or 0
        delta = delta + buy(items, skus[i], units[i], units_returned)
      end
    end
  end
  if delta ~= 0 then
    redis.call('HINCRBYFLOAT', state, 'returned_matched', string.format('%.17g', delta))
  end

  if not is_return then
    local occurred_at = tonumber(occurred_text)
    redis.call('HINCRBY', state, 'frequency', 1)
    redis.call('HINCRBYFLOAT', state, 'spent', total)
    local first = tonumber(known[2])
    if first == nil or occurred_at < first then
      redis.call('HSET', state, 'first_purchase', occurred_text)
    end
    local last_at = tonumber(known[3])
    if last_at == nil or occurred_at > last_at or (occurred_at == last_at and event_id > known[4]) then
      redis.call('HSET', state, 'last_purchase', occurred_text, 'last_order', event_id, 'country', country)
    end
  end
  return 1
end

if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('RFMLOST the store epoch is not ' .. ARGV[1])
end
local events = cjson.decode(ARGV[2])
local results = {}
for e = 1, #events do
  local k, event = 4 * e - 2, events[e]
  results[e] = apply(KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], event[1], event[2] == 1,
    event[3], event[4], event[5], event[6], event[7], event[8], event[9] or '')
end
local fields, states, seen = {unpack(ARGV, 3)}, {}, {}
for e = 1, #events do
  local state = KEYS[4 * e - 2]
  if not seen[state] then
    seen[state] = true
    states[#states + 1] = redis.call('HMGET', state, unpack(fields))
  end
end
return {results, states}
