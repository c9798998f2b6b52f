-- Claim ARGV[2] units of a sale capped at ARGV[1], atomically.
-- KEYS[1]: flash_sale:{<sale id>}:inventory:sold
-- ARGV[3]: a nonce, echoed back so the caller can tell this reply from any other on a connection
--          whose replies may have been lost or reordered (a timeout, a flaky link).
-- Returns {new sold count, nonce} when the claim fits, {-1, nonce} when it does not (sold out for
-- this quantity), {-2, nonce} when the counter is not loaded. A missing key is never read as
-- zero (HAZ-2): the caller seeds it from PostgreSQL with SET NX and claims again.
local cap = tonumber(ARGV[1])
local qty = tonumber(ARGV[2])
if cap == nil or qty == nil or qty < 1 or qty ~= math.floor(qty) or cap < 0 then
  return redis.error_reply('ERR flashsale claim: cap and quantity must be whole numbers, quantity >= 1')
end
local sold = redis.call('GET', KEYS[1])
if not sold then
  return {-2, ARGV[3]}
end
sold = tonumber(sold)
if sold + qty > cap then
  return {-1, ARGV[3]}
end
return {redis.call('INCRBY', KEYS[1], qty), ARGV[3]}
