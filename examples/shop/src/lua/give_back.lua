-- Returns units taken for a purchase that did not happen: from `held` back to `left`. This
-- never changes `left + held`, so it is right even when the take it undoes lands later, or
-- never (a call that timed out). A missing `left` stays missing: the reseed reads PostgreSQL,
-- which never counted these units as sold.
-- KEYS[1] = {prefix}:drop:{id}:left   KEYS[2] = ...:held
-- ARGV[1] = units   ARGV[2] = nonce, echoed first
-- Reply: {nonce, 1} given back, {nonce, 0} `left` was missing
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {ARGV[2], 0}
end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('DECRBY', KEYS[2], ARGV[1])
return {ARGV[2], 1}
