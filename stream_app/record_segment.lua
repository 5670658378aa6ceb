-- Store a customer's new segment unless it changed meanwhile (compare-and-set on the
-- previous segment and the sequence number).
-- KEYS: state hash, history list (one hash tag).
-- ARGV: segment, previous segment ('' for none), since (epoch s), model version, sequence,
--       history entry (JSON), history length, recency, frequency, monetary ('' if unknown).
local current = redis.call('HGET', KEYS[1], 'segment') or ''
if current ~= ARGV[2] then
  return 0
end
local stored = tonumber(redis.call('HGET', KEYS[1], 'sequence')) or 0
if tonumber(ARGV[5]) <= stored then
  return 0
end
-- Marked unannounced until the change is published (then cleared): a crash in between
-- leaves the mark, and whoever scores the customer next publishes the change again.
redis.call('HSET', KEYS[1], 'segment', ARGV[1], 'segment_since', ARGV[3],
  'model_version', ARGV[4], 'sequence', ARGV[5], 'unannounced', 1)
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[1], 'seg_r', ARGV[8], 'seg_f', ARGV[9], 'seg_m', ARGV[10])
end
redis.call('LPUSH', KEYS[2], ARGV[6])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[7]) - 1)
return 1
