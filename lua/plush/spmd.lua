--[[
  plush.spmd: one task on every engine of a DirectView, the tasks talking
  to each other with engine.send/recv -- what plush.bsp and
  plush.mapreduce are made of (share/doc/models.md).

  Client side, spmd.run submits one `apply` per engine, gathers their
  results once every task has ended, and turns a failure into one error:
  the engine that died (EngineError naming it) before the error a task
  raised (RemoteError with its remote traceback) before the aborts that
  error caused on the other engines.

  Engine side (functions that travel to the engines as upvalues of the
  task): every message of one run has the run's own tag; a task that fails
  tells every peer with an abort message (a to-be-closed guard), so no
  peer waits for it forever; a peer that died makes engine.recv raise.
]]
-- luacheck: read globals engine
local deferred = require "plush.deferred"
local errors = require "plush.errors"
local util = require "plush.util"

local spmd = {}

-------------------------------------------------------------------------------
-- Engine side
-------------------------------------------------------------------------------

-- The guard of a task: when the task fails, every other peer gets an
-- abort message (sends that fail, to a dead peer, are ignored).
local function guard(peers, tag)
  return setmetatable({}, {__close = function(_, err)
    if err == nil then return end
    for _, id in ipairs(peers) do
      if id ~= engine.id then
        pcall(engine.send, id, {["plush.abort"] = engine.id}, tag)
      end
    end
  end})
end

-- The next message of this run from `from` (nil after `timeout` seconds
-- when one is given); raises when it is an abort.
local function recv(from, tag, timeout)
  local m = engine.recv(from, tag, timeout)
  if type(m) == "table" and m["plush.abort"] then
    error({["plush.spmd"] = "abort", from = m["plush.abort"],
      message = ("engine %d failed"):format(m["plush.abort"])}, 0)
  end
  return m
end

-- A message handler for the user's functions: the error with its
-- traceback where it was raised, and `what` (the superstep, the input
-- item...) for the client to show; `what` may be a function giving it
-- and the item, called only when an error comes.
local function catch(what)
  return function(e)
    local item
    if type(what) == "function" then what, item = what() end
    -- the user's frames: what is below the xpcall is plush's
    local tb = debug.traceback(nil, 2)
    local cut = tb:find("\n\t%[C%]: in function 'xpcall'")
    local r = {["plush.spmd"] = "error", what = what, item = item,
      traceback = cut and tb:sub(1, cut - 1) or tb}
    if type(e) == "string" then
      r.message = e
    elseif type(e) == "table" and type(e.message) == "string" and e.kind then
      r.message, r.value = e.kind .. ": " .. e.message, e
    else
      r.message = ("(error object is a %s value)"):format(type(e))
      local t = type(e)
      if t == "number" or t == "boolean" or t == "table" then r.value = e end
    end
    return r
  end
end

-- Calls f(...) under spmd.catch(what); raises its error table.
local function call(what, f, ...)
  local r = table.pack(xpcall(f, catch(what), ...))
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

-- (locals, not fields: a task's upvalues travel with it, by value)
spmd.guard, spmd.recv, spmd.catch, spmd.call = guard, recv, catch, call

-------------------------------------------------------------------------------
-- Client side
-------------------------------------------------------------------------------

local runs = 0
local salt = tostring({}):match("0x(%x+)") or "0"

-- A tag no other run uses: kind, this client, a count, the clock.
function spmd.tag(kind)
  runs = runs + 1
  local ok, core = pcall(require, "plush.core")
  local t = ok and type(core) == "table" and core.time and core.time() or os.time()
  return ("plush.%s:%s:%d:%.6f"):format(kind, salt, runs, t)
end

-- The engine ids of a DirectView, each once; raises for a balanced view.
function spmd.targets(v, fname)
  if type(v) ~= "table" or type(v._targets) ~= "function" or v.ns == nil then
    util.raise(fname .. ": needs a DirectView (rc:view(ids)), not a balanced view")
  end
  local list = v:_targets()
  local seen = {}
  for _, id in ipairs(list) do
    if seen[id] then util.raise(("%s: engine %d is twice in the view"):format(fname, id)) end
    seen[id] = true
  end
  return list
end

-- The one error a failed run raises (see the top of the file).
local function pick(fname, errs, list)
  local died, raised, first
  for i = 1, #list do
    local e = errs[i]
    if e ~= nil then
      first = first or e
      local val = type(e) == "table" and e.value
      local gone
      if errors.is(e, "EngineError") then
        gone = e.engine or list[i]
      elseif type(val) == "table" and val.kind == "EngineError" then
        gone = val.engine
      end
      if gone ~= nil and not died then
        died = errors.EngineError{engine = gone,
          message = ("%s: engine %s died or left during the run"):format(fname, tostring(gone))}
      elseif type(val) == "table" and val["plush.spmd"] == "error" and not raised then
        local what = val.what
        local msg = tostring(val.message)
        if what ~= nil then msg = msg .. " (" .. fname .. " " .. tostring(what) .. ")" end
        raised = errors.RemoteError{engine = e.engine, message = msg,
          traceback = val.traceback, value = val.value, what = what, item = val.item,
          started = e.started, completed = e.completed}
      elseif not (type(val) == "table" and val["plush.spmd"] == "abort") and not raised then
        raised = e
      end
    end
  end
  return died or raised or first
end

-- Empties the run's messages left in the mailboxes of a failed run
-- (aborts that came after their receiver had stopped listening).
local function drain(rc, list, tag)
  for _, id in ipairs(list) do
    local ok, d = pcall(rc.submit, rc, id, {op = "apply", args = {n = 1, tag},
      f = function(t) while engine.recv(nil, t, 0) ~= nil do end end})
    if ok then d:_observe(function() end, true) end
  end
end

--[[
  run(v, fname, f, args(i, id)) submits f(args(i, id)) to each engine
  of the DirectView v; returns a Deferred firing with the array of their
  first results, in target order (or the view's blocking answer).
]]
function spmd.run(v, fname, list, tag, f, args)
  local rc = v.rc
  local ds, n = {}, #list
  local opts = {timeout = v.timeout, output = v.output}
  for i, id in ipairs(list) do
    local ok, d = pcall(rc.submit, rc, id, {op = "apply", f = f,
      args = table.pack(args(i, id))}, opts)
    if not ok then
      -- (a part that cannot travel) the engines started already wait for
      -- this one: it tells them the run is off; once they stopped, the
      -- mailboxes are emptied, before the caller can send anything else
      for j = 1, i - 1 do ds[j]:_observe(function() end, true) end
      if i > 1 then
        local ok2, a = pcall(rc.submit, rc, id, {op = "apply", args = {n = 2, list, tag},
          f = function(peers, t)
            for _, p in ipairs(peers) do
              if p ~= engine.id then pcall(engine.send, p, {["plush.abort"] = engine.id}, t) end
            end
          end})
        if ok2 then a:_observe(function() end, true) end
        pcall(deferred.wait_all, ds, 60)
        drain(rc, list, tag)
      end
      error(d, 0)
    end
    ds[i] = d
  end
  local g = deferred.new{pump = ds[1].pump, clock = ds[1].clock}
  local ids = {}
  for i, d in ipairs(ds) do ids[i] = d.id end
  g.id, g.targets, g.deferreds = ids, list, ds
  local values, errs, left = {}, {}, n
  for i, d in ipairs(ds) do
    d:_observe(function(ok, res)
      if ok then values[i] = res[1] else errs[i] = res end
      left = left - 1
      if left > 0 then return end
      if next(errs) == nil then return g:callback(util.results(values, n)) end
      drain(rc, list, tag)
      g:errback(pick(fname, errs, list))
    end, true)
  end
  if not v.block then return g end
  return spmd.wait(g)
end

-- The values of Deferred g; on Ctrl-C the engines were interrupted and
-- g's own error, when it comes, is no news.
function spmd.wait(g)
  local r = table.pack(pcall(g.get, g))
  if not r[1] then
    if errors.is(r[2], "Interrupted") then g:_observe(function() end, true) end
    error(r[2], 0)
  end
  return table.unpack(r, 2, r.n)
end

return spmd
