-- Set the counter to ARGV[2] only if it still holds ARGV[1] (compare-and-set), so a reconcile
-- never overwrites claims made since the values were read.
-- KEYS[1]: flash_sale:{<sale id>}:inventory:sold
-- Returns 1 when set, 0 when the counter moved (or is missing) in the meantime.
local current = redis.call('GET', KEYS[1])
if current == false or tonumber(current) ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
