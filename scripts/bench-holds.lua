-- wrk script for scripts/bench.sh (G9): cart-hold journeys. Each connection of a thread reserves
-- one unit (POST .../holds, a distinct Idempotency-Key and buyer per journey); each hold answered
-- 201 is checked out by the thread's next request (POST .../holds/<id>/checkout). A journey is
-- two requests, both 2xx when all goes well, so journeys/s = 2xx requests/s / 2.
-- Usage: wrk ... -s scripts/bench-holds.lua URL/sales/<sale_id> -- <key-prefix>

local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  prefix = (args[1] or "bench") .. "-" .. tostring(tid)
  counter = 0
  -- Holds reserved by this thread and not yet checked out: {id, buyer}.
  pending = {}
end

function request()
  counter = counter + 1
  local hold = table.remove(pending)
  if hold then
    return wrk.format("POST", wrk.path .. "/holds/" .. hold.id .. "/checkout", {
      ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = prefix .. "-c-" .. counter,
    }, '{"buyer_id":"' .. hold.buyer .. '"}')
  end
  local key = prefix .. "-" .. counter
  return wrk.format("POST", wrk.path .. "/holds", {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = key,
  }, '{"buyer_id":"b-' .. key .. '","quantity":1}')
end

function response(status, headers, body)
  -- A reservation's answer names a hold_id; a checkout's (an order) does not.
  if status == 201 then
    local id = body:match('"hold_id":"([0-9a-f%-]+)"')
    local buyer = body:match('"buyer_id":"([^"]+)"')
    if id and buyer then
      table.insert(pending, { id = id, buyer = buyer })
    end
  end
end
