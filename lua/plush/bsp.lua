--[[
  plush.bsp: view:bsp(step, init), bulk synchronous parallel supersteps on
  every engine of a DirectView (share/doc/models.md, "BSP").

  One task per engine runs the supersteps: step(ctx), then the barrier,
  which is the exchange itself -- every engine sends each other engine one
  message (the values ctx:send queued for it, and its halt vote) with
  engine.send and receives one from each with engine.recv. Nothing goes
  through the client but the start and the halt values. The run ends
  after the first superstep in which every engine voted to halt.
]]
-- luacheck: read globals engine
local spmd = require "plush.spmd"
local util = require "plush.util"

local guard, recv, call = spmd.guard, spmd.recv, spmd.call

local bsp = {}

-- The task of every engine (travels to the engines, with its upvalues).
local function supersteps(step, init, peers, tag)
  local stop <close> = guard(peers, tag) -- luacheck: ignore stop
  local me, rank, n = engine.id, {}, #peers
  for i, id in ipairs(peers) do rank[id] = i end
  local out, inbox, from = {}, {n = 0}, {n = 0}
  local voted, value
  local ctx = {step = 0, id = me, peers = peers, state = init}

  function ctx.send(_, to, v)
    local i = rank[to]
    if not i then
      error(("ctx:send: engine %s is not in this bsp's view"):format(tostring(to)), 2)
    end
    local q = out[i]
    q.n = q.n + 1
    q[q.n] = v
  end
  -- the values sent to this engine in the last superstep, in sender order
  -- (the senders' ids as a second array)
  function ctx.messages() return inbox, from end
  function ctx.halt(_, v) voted, value = true, v end

  local s = 0
  while true do
    s = s + 1
    ctx.step, voted, value = s, false, nil
    for i = 1, n do out[i] = {n = 0} end
    call(("superstep %d"):format(s), step, ctx)
    for i, id in ipairs(peers) do
      if id ~= me then engine.send(id, {halt = voted, m = out[i]}, tag) end
    end
    local all, k = voted, 0
    inbox, from = {}, {}
    for i, id in ipairs(peers) do
      local q = out[i]
      if id ~= me then
        local m = recv(id, tag)
        q, all = m.m, all and m.halt
      end
      for j = 1, q.n do
        k = k + 1
        inbox[k], from[k] = q[j], id
      end
    end
    inbox.n, from.n = k, k
    if all then return value end
  end
end

--[[
  bsp(v, step, init): the halt values in target order (an array, also for
  a one-engine view), or a Deferred of it when v does not block.
]]
function bsp.run(v, step, init)
  util.check(step, 1, "bsp", "function")
  local list = spmd.targets(v, "bsp")
  local tag = spmd.tag("bsp")
  return spmd.run(v, "bsp", list, tag, supersteps, function()
    return step, init, list, tag
  end)
end

return bsp
