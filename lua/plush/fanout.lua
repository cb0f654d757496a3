--[[
  plush.fanout: the one Deferred of a direct request to many engines
  (a view of several engines, `%px` on all), firing with the array of each
  engine's first value in target order, its error when one failed, a
  CompositeError of them in order when several did.

  It is deferred.gather over the per-engine Deferreds with the work done
  once per reply instead of through each one's chain: the client hands
  each reply to the fanout (Client:_reply) right after firing the
  engine's own Deferred, so a request to 1,000 engines makes no closure,
  chain or link per engine (share/doc/performance.md, "%px on 1,000
  engines"). What the caller sees is the same: `g.deferreds` (the
  per-engine Deferreds, fired as before), `g.id`, `g.metadata`,
  `g.targets`, `g.stdout`, `g.stderr`.

  With `alive` (a view of every engine), an engine that had left when the
  controller routed the request (EngineError with `left`) is dropped from
  the answer and from the client's list, its Deferred firing with a
  placeholder, as view.lua did through an errback per engine.
]]
local deferred = require "plush.deferred"
local errors = require "plush.errors"
local util = require "plush.util"

local fanout = {}

local LEFT = setmetatable({}, {__name = "plush.left"})
fanout.LEFT = LEFT

local F = {}
F.__index = F

--[[
  new(rc, ds, list, alive) -> the group's Deferred. ds: the Deferreds
  rc:submit returned for the engines of `list`, not fired yet.
]]
function fanout.new(rc, ds, list, alive)
  local n = #ds
  local g = deferred.new{pump = ds[1] and ds[1].pump, clock = ds[1] and ds[1].clock}
  local ids, md, pending = {}, {}, rc.pending
  local st = setmetatable({g = g, rc = rc, list = list, alive = alive, n = n, left = n,
    values = {}, failed = nil, nleft = 0}, F)
  for i = 1, n do
    local d = ds[i]
    ids[i], md[i] = d.id, d.metadata
    local rec = pending[d.id] -- d itself (plush.client's take)
    rec._fanout, rec._index = st, i
  end
  g.id, g.metadata, g.targets, g.deferreds = ids, md, list, ds
  if n == 0 then st:_done() end
  return g
end

-- Engine i answered with values (first: v), after its Deferred fired.
function F:ok(i, v)
  self.values[i] = v
  self.left = self.left - 1
  if self.left == 0 then self:_done() end
end

-- Engine i failed with e: its Deferred fails (the error handled: the
-- group's carries it), or fires with LEFT when it had left.
function F:fail(i, d, e)
  if self.alive and errors.is(e, "EngineError") and e.left then
    self.rc:_forget(self.list[i])
    d:_callback_packed({n = 1, LEFT})
    self.values[i] = LEFT
    self.nleft = self.nleft + 1
  else
    d._taken = e
    d:errback(e)
    self.failed = self.failed or {}
    self.failed[i] = e
  end
  self.left = self.left - 1
  if self.left == 0 then self:_done() end
end

function F:_done()
  local g, n, ds = self.g, self.n, self.g.deferreds
  local out = false
  for i = 1, n do
    if rawget(ds[i], "_out") then out = true break end
  end
  if out then
    local so, se = {}, {}
    for i = 1, n do so[i], se[i] = ds[i].stdout or "", ds[i].stderr or "" end
    g.stdout, g.stderr = table.concat(so), table.concat(se)
  else
    g.stdout, g.stderr = "", ""
  end
  if self.failed then
    local errs = {}
    for i = 1, n do errs[#errs + 1] = self.failed[i] end
    if #errs == 1 then return g:errback(errs[1]) end
    return g:errback(errors.CompositeError{errors = errs})
  end
  local values = self.values
  if self.nleft == 0 then return g:_callback_packed({n = 1, util.results(values, n)}) end
  if self.nleft == n then
    return g:errback(errors.EngineError{message = "every engine of the view has left"})
  end
  local out_v, tid, md, dd, list, k = {}, {}, {}, {}, {}, 0
  for i = 1, n do
    if values[i] ~= LEFT then
      k = k + 1
      out_v[k], tid[k], md[k], dd[k], list[k] = values[i], g.id[i], g.metadata[i], ds[i],
        self.list[i]
    end
  end
  g.targets, g.id, g.metadata, g.deferreds = list, tid, md, dd
  return g:_callback_packed({n = 1, util.results(out_v, k)})
end

return fanout
