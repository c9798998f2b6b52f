-- Returns units the gate took for a purchase that did not happen. A missing key stays missing:
-- creating it at `units` would claim that only those are left; the next buyer reseeds it from
-- PostgreSQL instead.
-- KEYS[1] = {prefix}:drop:{id}:left   ARGV[1] = units   ARGV[2] = nonce, echoed first
-- Reply: {nonce, 1} given back, {nonce, 0} the key was missing
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {ARGV[2], 0}
end
redis.call('INCRBY', KEYS[1], ARGV[1])
return {ARGV[2], 1}
