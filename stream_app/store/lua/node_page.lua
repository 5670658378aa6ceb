#!lua flags=allow-cross-slot-keys,no-writes
-- On a Redis Cluster: a page of one segment's members over many hash slots of this node, in
-- slot order, each slot in id order. ARGV[1]: the customer id the page starts after ('' for
-- none: it is then in the first slot given); ARGV[2]: the page size; ARGV[3..]: the member
-- index key of the segment in each slot, in slot order. Returns the ids.
local limit, page = tonumber(ARGV[2]), {}
for i = 3, #ARGV do
  local start = '-'
  if i == 3 and ARGV[1] ~= '' then
    start = '(' .. ARGV[1]
  end
  local ids = redis.call('ZRANGEBYLEX', ARGV[i], start, '+', 'LIMIT', 0, limit - #page)
  for _, id in ipairs(ids) do
    page[#page + 1] = id
  end
  if #page >= limit then
    return page
  end
end
return page
