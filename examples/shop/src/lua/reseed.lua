-- Loads a missing `left` from PostgreSQL's stock - sold, with nothing held and a new `gen`. If
-- another request loaded it first (and buyers may already have taken from it), that stays.
-- KEYS[1] = {prefix}:drop:{id}:left   KEYS[2] = ...:held   KEYS[3] = ...:gen
-- ARGV[1] = stock - sold   ARGV[2] = new gen   ARGV[3] = nonce, echoed first
-- Reply: {nonce, 1} loaded, {nonce, 0} already there
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('SET', KEYS[2], 0)
  redis.call('SET', KEYS[3], ARGV[2])
  return {ARGV[3], 1}
end
return {ARGV[3], 0}
