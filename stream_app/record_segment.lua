-- Store a customer's new segment unless it changed meanwhile (compare-and-set).
-- KEYS: state hash, history list (one hash tag).
-- ARGV: segment, previous segment ('' for none), since (epoch s), model version, sequence,
--       history entry (JSON), history length.
local current = redis.call('HGET', KEYS[1], 'segment') or ''
if current ~= ARGV[2] then
  return 0
end
local sequence = tonumber(redis.call('HGET', KEYS[1], 'sequence')) or 0
if tonumber(ARGV[5]) > sequence then
  sequence = tonumber(ARGV[5])
end
redis.call('HSET', KEYS[1], 'segment', ARGV[1], 'segment_since', ARGV[3],
  'model_version', ARGV[4], 'sequence', sequence)
redis.call('LPUSH', KEYS[2], ARGV[6])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[7]) - 1)
return 1
