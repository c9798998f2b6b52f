-- Raise the counter to at least ARGV[1]; never lower it, never create it.
-- KEYS[1]: flash_sale:{<sale id>}:inventory:sold
-- Used after a slot hint turned out to be taken: Redis is behind the ledger (it restarted, rolled
-- back, or PostgreSQL sold while it was away), so hints restart above the highest slot taken.
-- Returns the counter after the call, or -2 when it is not loaded.
local current = redis.call('GET', KEYS[1])
if not current then
  return -2
end
local floor = tonumber(ARGV[1])
if tonumber(current) < floor then
  redis.call('SET', KEYS[1], floor)
  return floor
end
return tonumber(current)
