-- A purchase that took units sold them: they leave `held`. Only if the count is still the one
-- they were taken from (same `gen`): a count reseeded or reconciled since was written from
-- PostgreSQL, which may already have counted this sale, and must not lose the units twice.
-- KEYS[1] = {prefix}:drop:{id}:left   KEYS[2] = ...:held   KEYS[3] = ...:gen
-- ARGV[1] = units   ARGV[2] = the gen the take replied   ARGV[3] = nonce, echoed first
-- Reply: {nonce, 1} settled, {nonce, 0} the count was rewritten meanwhile
if redis.call('EXISTS', KEYS[1]) == 0 or (redis.call('GET', KEYS[3]) or '') ~= ARGV[2] then
  return {ARGV[3], 0}
end
redis.call('DECRBY', KEYS[2], ARGV[1])
return {ARGV[3], 1}
