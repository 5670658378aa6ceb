#!lua flags=allow-cross-slot-keys
-- On a Redis Cluster: the store epoch of each hash slot of this node, checked or written in
-- one call. ARGV[1]: 'check:<epoch>' (count the slots whose epoch is another or missing) or
-- 'set:<epoch>' (write it in every slot); ARGV[2..]: the epoch key of each slot (all served
-- by this node). Returns that count, or the slots written.
local mode, value = string.match(ARGV[1], '^(%a+):(.*)$')
local count = 0
for i = 2, #ARGV do
  if mode == 'check' then
    if redis.call('GET', ARGV[i]) ~= value then
      count = count + 1
    end
  else
    redis.call('SET', ARGV[i], value)
    count = count + 1
  end
end
return count
