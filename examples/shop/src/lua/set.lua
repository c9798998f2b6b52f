-- The reconcile task's write: the key becomes PostgreSQL's stock - sold, whatever it held.
-- KEYS[1] = {prefix}:drop:{id}:left   ARGV[1] = stock - sold   ARGV[2] = nonce, echoed first
-- Reply: {nonce, 1}
redis.call('SET', KEYS[1], ARGV[1])
return {ARGV[2], 1}
