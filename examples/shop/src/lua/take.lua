-- The sold-out gate: takes `units` from the drop's units left, in one step, or says why not.
--
-- Units taken are counted in `held` until the purchase settles them (sold) or gives them back,
-- so `left + held` never falls below PostgreSQL's stock - sold, whatever order the calls land
-- in. A refusal is certain only when even `left + held` is short; otherwise units held by
-- purchases still in flight may come back, and PostgreSQL must decide.
-- KEYS[1] = {prefix}:drop:{id}:left   KEYS[2] = ...:held   KEYS[3] = ...:gen
-- ARGV[1] = units   ARGV[2] = nonce, echoed first
-- Reply: {nonce, 1, left after, gen}  taken (settle with this gen)
--        {nonce, 0, left, gen}        sold out for certain
--        {nonce, 2, left, gen}        not enough left now, but some are held: ask PostgreSQL
--        {nonce, -1, 0, ''}           `left` is missing (Redis restarted empty): reseed it
local left = redis.call('GET', KEYS[1])
if not left then
  return {ARGV[2], -1, 0, ''}
end
left = tonumber(left)
local units = tonumber(ARGV[1])
local gen = redis.call('GET', KEYS[3]) or ''
if left < units then
  local held = tonumber(redis.call('GET', KEYS[2]) or '0')
  if left + held < units then
    return {ARGV[2], 0, left, gen}
  end
  return {ARGV[2], 2, left, gen}
end
redis.call('INCRBY', KEYS[2], units)
return {ARGV[2], 1, redis.call('DECRBY', KEYS[1], units), gen}
