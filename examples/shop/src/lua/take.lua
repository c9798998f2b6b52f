-- The sold-out gate: takes `units` from the drop's count of units left, in one step, or says
-- why not. A missing key is not zero (Redis restarted empty): the caller reseeds it from
-- PostgreSQL.
-- KEYS[1] = {prefix}:drop:{id}:left   ARGV[1] = units   ARGV[2] = nonce, echoed first
-- Reply: {nonce, 1, left after}  taken
--        {nonce, 0, left}        fewer than `units` left, nothing taken
--        {nonce, -1, 0}          the key is missing
local left = redis.call('GET', KEYS[1])
if not left then
  return {ARGV[2], -1, 0}
end
left = tonumber(left)
local units = tonumber(ARGV[1])
if left < units then
  return {ARGV[2], 0, left}
end
return {ARGV[2], 1, redis.call('DECRBY', KEYS[1], units)}
