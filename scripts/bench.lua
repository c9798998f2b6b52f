-- wrk script for scripts/bench.sh: POST a buy of one unit with a distinct Idempotency-Key per
-- request (a counter per wrk thread, prefixed by the run and the thread), so the server decides
-- every request afresh instead of replaying an order.
-- Usage: wrk ... -s scripts/bench.lua URL/sales/<sale_id>/orders -- <key-prefix>

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  prefix = (args[1] or "bench") .. "-" .. tostring(tid)
  counter = 0
end

function request()
  counter = counter + 1
  local key = prefix .. "-" .. counter
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = key,
  }, '{"buyer_id":"b-' .. key .. '","quantity":1}')
end
