-- Read several customers' state hashes in one call.
-- KEYS: state hashes. ARGV: the fields to read. Returns, per key, the fields' values.
local results = {}
for i, key in ipairs(KEYS) do
  results[i] = redis.call('HMGET', key, unpack(ARGV))
end
return results
