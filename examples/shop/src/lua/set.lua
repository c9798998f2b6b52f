-- The reconcile task's write, made while no purchase of the drop is in flight: `left` becomes
-- PostgreSQL's stock - sold, nothing is held, and a new `gen` makes any settlement still on
-- its way a no-op (PostgreSQL's figure already counts its sale).
-- KEYS[1] = {prefix}:drop:{id}:left   KEYS[2] = ...:held   KEYS[3] = ...:gen
-- ARGV[1] = stock - sold   ARGV[2] = new gen   ARGV[3] = nonce, echoed first
-- Reply: {nonce, 1}
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], 0)
redis.call('SET', KEYS[3], ARGV[2])
return {ARGV[3], 1}
