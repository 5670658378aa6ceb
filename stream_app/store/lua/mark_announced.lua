-- Clear the unannounced mark of customers whose last change is now published.
-- KEYS: their state hashes. One call for many customers: one command to pack, not one each.
for i = 1, #KEYS do
  redis.call('HDEL', KEYS[i], 'unannounced')
end
return #KEYS
