-- Store customers' new segments, each unless it changed meanwhile (compare-and-set on the
-- previous segment and the sequence number).
-- KEYS[1]: the hash of customers per segment (kept only where it exists: a store written by
-- an older release has none until it is rebuilt, see segment_counts.lua).
-- For each update u (1-based), KEYS[2u..2u+1]: the customer's state hash and history list
-- (one hash tag). ARGV[1]: the history length to keep; ARGV[2]: a JSON array with, per
-- update, [segment, previous segment ('' for none), since (epoch s, text), model version,
-- sequence, history entry (JSON text), recency, frequency, monetary (text; '' if unknown)].
-- Returns, per update, 1 if stored (now, or by this same update before) and 0 if not.
local keep = tonumber(ARGV[1])
local updates = cjson.decode(ARGV[2])
local counts = KEYS[1]
local counted = redis.call('EXISTS', counts) == 1
local results = {}
for u = 1, #updates do
  local state, history, update = KEYS[2 * u], KEYS[2 * u + 1], updates[u]
  local current = redis.call('HGET', state, 'segment') or ''
  local stored = tonumber(redis.call('HGET', state, 'sequence')) or 0
  if update[5] == stored and current == update[1]
      and redis.call('LINDEX', history, 0) == update[6] then
    -- Recorded already by this very update (a resend after its reply was lost): stored.
    results[u] = 1
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
    if counted then
      if current ~= '' then
        redis.call('HINCRBY', counts, current, -1)
      end
      redis.call('HINCRBY', counts, update[1], 1)
    end
    redis.call('LPUSH', history, update[6])
    redis.call('LTRIM', history, 0, keep - 1)
    results[u] = 1
  end
end
return results
