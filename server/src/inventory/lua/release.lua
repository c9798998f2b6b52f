-- Give back ARGV[1] units whose order could not be written (HAZ-5).
-- KEYS[1]: flash_sale:{<sale id>}:inventory:sold
-- Never goes below zero and never creates the key: a missing counter stays "not loaded".
-- Returns the new count, or -2 when the counter is not loaded.
local qty = tonumber(ARGV[1])
if qty == nil or qty < 1 or qty ~= math.floor(qty) then
  return redis.error_reply('ERR flashsale release: quantity must be a whole number >= 1')
end
local sold = redis.call('GET', KEYS[1])
if not sold then
  return -2
end
local left = tonumber(sold) - qty
if left < 0 then
  left = 0
end
redis.call('SET', KEYS[1], left)
return left
