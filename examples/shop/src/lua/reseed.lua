-- Loads a missing key from PostgreSQL's figure. If another request loaded it first (and buyers
-- may already have taken from it), that value stays.
-- KEYS[1] = {prefix}:drop:{id}:left   ARGV[1] = stock - sold   ARGV[2] = nonce, echoed first
-- Reply: {nonce, 1} set, {nonce, 0} already there
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  return {ARGV[2], 1}
end
return {ARGV[2], 0}
