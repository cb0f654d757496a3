-- plush.deferred: Twisted-style Deferreds on the client's event loop.
--
-- A Deferred holds a chain of (callback, errback) pairs and, once fired, a
-- result: either values (any number of them, passed on as multiple values)
-- or one error object. Firing runs the chain: the result goes to the next
-- callback (or errback when it is an error); what that function returns is
-- the new result. Raising, or returning `deferred.fail(e)`, turns it into an
-- error; an errback that returns normally recovers. Pairs added after firing
-- run at once. A callback may return another Deferred: the chain then waits
-- for it and carries on with its result.
local errors = require "plush.errors"
local util = require "plush.util"

local deferred = {}

local D = {__name = "plush.Deferred"}

--[[
  d.stdout / d.stderr: the output captured so far. A task may print
  megabytes in many small pieces; appending to one string would copy it
  each time, so pieces are kept in a list and joined when read. Most
  Deferreds never see output: they look their methods up in D, a table
  (no function call per method), and read "" for both streams; the first
  output moves a Deferred to DO, the same methods behind an __index
  function that joins the pieces.
]]
D.__index = D
D.stdout, D.stderr = "", ""

local DO = {}
-- the metatables a Deferred has (deferred.is, check_list)
local KINDS = {[D] = true, [DO] = true}
function DO.__index(d, k)
  if k == "stdout" or k == "stderr" then
    local out = rawget(d, "_out")
    local parts = out[k]
    local s = table.concat(parts)
    if #parts > 1 then out[k] = {s} end
    return s
  end
  return D[k]
end

-- How much of each stream a Deferred keeps (bytes): a task printing
-- gigabytes must not exhaust the client; what is past it is counted.
deferred.max_capture = 16 << 20

-- Internal: captured output of `stream` ("stdout" or "stderr").
function D:_append(stream, text)
  local out = rawget(self, "_out")
  if not out then
    out = {stdout = {}, stderr = {}}
    self._out = out
    setmetatable(self, DO)
  end
  local kept = (out[stream .. "_bytes"] or 0)
  local room = deferred.max_capture - kept
  if room <= 0 then
    out[stream .. "_dropped"] = (out[stream .. "_dropped"] or 0) + #text
    return
  end
  if #text > room then
    out[stream .. "_dropped"] = (out[stream .. "_dropped"] or 0) + #text - room
    text = text:sub(1, room)
  end
  local parts = out[stream]
  parts[#parts + 1] = text
  out[stream .. "_bytes"] = kept + #text
end

local Failure = {__name = "plush.Failure"}

local default_clock
do
  local ok, core = pcall(require, "plush.core")
  default_clock = ok and type(core) == "table" and core.now or os.time
end

-- A value for a callback or errback to return to make the chain fail with
-- `e` without raising (and so without a local traceback).
function deferred.fail(e)
  return setmetatable({err = e}, Failure)
end

function deferred.is(v)
  return KINDS[getmetatable(v)] == true
end

--[[
  An error nobody looked at is reported when the Deferred is collected,
  like Twisted's "Unhandled error in Deferred": failures are never silent.
  Replace this function to route the report elsewhere (or silence it).
]]
function deferred.on_unhandled(e, d, where)
  io.stderr:write("plush: unhandled error in ", deferred.where(d, where), ": ",
    tostring(e), "\n")
end

-- "Deferred (task 7)", or `where` ("output handler", "on_event") for a
-- callback that belongs to no Deferred.
function deferred.where(d, where)
  if where then return where end
  local id = ""
  if type(d) ~= "table" then
    return "Deferred"
  elseif type(d.id) == "table" then
    local ids = {}
    for i, x in ipairs(d.id) do ids[i] = tostring(x) end
    id = " (tasks " .. table.concat(ids, ",") .. ")"
  elseif d.id ~= nil then
    id = " (task " .. tostring(d.id) .. ")"
  end
  return "Deferred" .. id
end

--[[
  Only a Deferred that failed is watched for collection: a __gc costs the
  collector a Lua call and an extra cycle, for every task of a batch. The
  first failure gives it a watcher, a new table whose __gc reports the
  error if nobody looked at it by then (the two are collected together).
  Not a __gc on the Deferred itself: marking an object for finalization
  walks the collector's list of objects back to where it was made (Lua's
  lgc.c, luaC_checkfinalizer), and a client closed with 10^5 tasks in
  flight failed Deferreds made long before, one walk each: minutes. A
  watcher is made when it is marked, at the head of that list.
]]
local W = {__gc = function(w)
  local d = w.d
  if d._unhandled then pcall(deferred.on_unhandled, d.res, d) end
end}

local function may_be_unhandled(self)
  if rawget(self, "_watch") == nil then self._watch = setmetatable({d = self}, W) end
end

-- The chain of a Deferred nobody added to yet (most of the many a batch of
-- tasks makes): shared, never written (links go to a chain of its own).
local NO_LINKS = setmetatable({}, {__newindex = function() error("NO_LINKS written", 2) end})

-- new{pump = fn(timeout), clock = fn() -> seconds, id = ..., metadata = {}}
function deferred.new(opts)
  opts = opts or {}
  return deferred._new(opts.pump, opts.clock, opts.id, opts.metadata)
end

--[[
  What most Deferreds hold until they fire is D's: no chain (NO_LINKS), at
  its start, not fired, the client's clock. A Deferred holds its own only
  once they differ, so a task's fits in a table of 8 slots (id, metadata,
  pump; fired, ok, res and attempts when it fires; one to spare: the
  engine of a task sent to one, plush.client) where naming all of them
  took 16: half the bytes for the collector with 20,000 tasks in flight.
]]
D.chain, D.pos, D.fired, D.clock = NO_LINKS, 1, false, default_clock

-- Internal: new without the options table (the client makes one per task).
function deferred._new(pump, clock, id, metadata)
  -- the fields set later are named too (nil): the table is made with room
  -- for them, not grown while it fires
  local d = setmetatable({
    id = id,
    metadata = metadata or {},
    pump = pump,
    fired = nil, ok = nil, res = nil, attempts = nil, spare = nil,
  }, D)
  if clock ~= nil and clock ~= default_clock then d.clock = clock end
  return d
end


local function settle(self, r)
  if not r[1] then
    self.ok, self.res = false, r[2]
  elseif r.n >= 2 and getmetatable(r[2]) == Failure then
    self.ok, self.res = false, r[2].err
  else
    self.ok, self.res = true, table.pack(table.unpack(r, 2, r.n))
  end
end

function D:_run()
  if self.running then return end
  self.running = true
  while not self.paused and self.pos <= #self.chain do
    local link = self.chain[self.pos]
    self.chain[self.pos] = false -- the callback is not ours to keep alive
    self.pos = self.pos + 1
    if link.observe then
      if not self.ok and link.take then self._taken = self.res end
      local ok, err = errors.call(link.observe, self.ok, self.res)
      if not ok then pcall(deferred.on_unhandled, err, self) end
    else
      local fn = link[self.ok and 1 or 2]
      if fn then
        local r
        if self.ok then
          r = table.pack(errors.call(fn, table.unpack(self.res, 1, self.res.n)))
        else
          r = table.pack(errors.call(fn, self.res))
        end
        if r[1] and r.n == 2 and deferred.is(r[2]) and r[2] ~= self then
          self.paused = true
          r[2]:_observe(function(ok, res)
            self.paused = false
            self.ok, self.res = ok, res
            self:_run()
          end, true)
        else
          settle(self, r)
        end
      end
    end
  end
  self.running = false
  self._unhandled = not self.ok and not self.paused and self._taken ~= self.res
  if self._unhandled then may_be_unhandled(self) end
end

local function fire(self, ok, res)
  if self.fired then util.raise("Deferred already fired") end
  self.fired, self.ok, self.res = true, ok, res
  self:_run()
  return self
end

-- Fire with values.
function D:callback(...)
  return fire(self, true, table.pack(...))
end

-- Internal: fire with values already packed ({n = k, ...}), a table
-- nobody else holds.
function D:_callback_packed(r)
  -- nothing chained yet (a task's Deferred, most often): what fire and
  -- _run would leave, without the walk
  if self.chain == NO_LINKS and not self.fired and not self.running then
    self.fired, self.ok, self.res = true, true, r
    return self
  end
  return fire(self, true, r)
end

-- Fire with an error.
function D:errback(e)
  if e == nil then e = errors.CallbackError{message = "errback called without an error"} end
  return fire(self, false, e)
end

function D:add_callbacks(cb, eb)
  util.check(cb, 1, "add_callbacks", "function", "nil")
  util.check(eb, 2, "add_callbacks", "function", "nil")
  if self.chain == NO_LINKS then self.chain = {} end
  self.chain[#self.chain + 1] = {cb, eb}
  if self.fired then self:_run() end
  return self
end

function D:add_callback(f)
  util.check(f, 1, "add_callback", "function")
  return self:add_callbacks(f, nil)
end

function D:add_errback(f)
  util.check(f, 1, "add_errback", "function")
  return self:add_callbacks(nil, f)
end

function D:add_both(f)
  util.check(f, 1, "add_both", "function")
  return self:add_callbacks(f, f)
end

--[[
  Internal: call fn(ok, res) when the result is there, without changing it.
  `take` says the observer passes an error on (gather_results, after): the
  error is then handled as far as the unhandled-error report goes.
]]
function D:_observe(fn, take)
  if self.chain == NO_LINKS then self.chain = {} end
  self.chain[#self.chain + 1] = {observe = fn, take = take}
  if self.fired then self:_run() end
  return self
end

function D:ready()
  return self.fired and not self.paused
end

-- "pending", "ok" or "error"
function D:state()
  if not self:ready() then return "pending" end
  return self.ok and "ok" or "error"
end

-- Pump the client loop until the Deferred fired (true) or `timeout`
-- seconds passed (false). nil waits without limit.
function D:wait(timeout)
  util.check(timeout, 1, "wait", "number", "nil")
  if self:ready() then return true end
  if not self.pump then return false end
  local deadline = timeout and self.clock() + timeout
  local looked = false
  while not self:ready() do
    local left
    if deadline then
      left = deadline - self.clock()
      if left <= 0 then
        if looked then return false end
        left = 0
      end
    end
    self.pump(left, self) -- which Deferred waits: an engine parks on it
    looked = true
  end
  return true
end

-- Like wait, with a progress bar on a terminal (done/total, rate, ETA,
-- failures) that is erased when the wait ends.
function D:wait_interactive(timeout)
  util.check(timeout, 1, "wait_interactive", "number", "nil")
  return require("plush.progress").wait(self, timeout)
end

-- The result's values, or raises its error; TimeoutError when not done
-- within `timeout` seconds.
function D:get(timeout)
  util.check(timeout, 1, "get", "number", "nil")
  if not self:wait(timeout) then
    local msg = timeout and ("result not ready after %g s"):format(timeout)
      or "result not ready and no event loop to wait on"
    error(errors.TimeoutError{engine = self.metadata.engine, message = msg,
      id = self.id}, 0)
  end
  if self.ok then return table.unpack(self.res, 1, self.res.n) end
  self._taken, self._unhandled = self.res, false
  error(self.res, 0)
end

-- The error when the Deferred failed, else nil (does not raise).
function D:error()
  if self:ready() and not self.ok then
    self._taken, self._unhandled = self.res, false
    return self.res
  end
  return nil
end

function D:__tostring()
  return ("<Deferred %s %s>"):format(tostring(self.id or "-"), self:state())
end

local function pump_of(ds)
  for _, d in ipairs(ds) do
    if d.pump then return d.pump, d.clock end
  end
end

local function check_list(ds, fname)
  util.check(ds, 1, fname, "table")
  for i = 1, util.len(ds) do
    if not KINDS[getmetatable(ds[i])] then -- deferred.is, inline: a call less an item
      util.argerror(1, fname, ("Deferred expected at index %d, got %s"):format(i, type(ds[i])))
    end
  end
end

--[[
  gather_results{d1, d2, ...}: a Deferred firing with the array of the
  first value of each, in order, once all fired; when one failed, with its
  error; when several failed, with a CompositeError of them in order.
]]
function deferred.gather(ds)
  check_list(ds, "gather_results")
  local n = util.len(ds)
  local pump, clock = pump_of(ds)
  local out = deferred.new{pump = pump, clock = clock}
  out.deferreds = ds
  local values, failed, left = {}, {}, n
  local function done()
    local so, se = {}, {}
    for i = 1, n do so[i], se[i] = ds[i].stdout or "", ds[i].stderr or "" end
    out.stdout, out.stderr = table.concat(so), table.concat(se)
    local errs = {}
    for i = 1, n do errs[#errs + 1] = failed[i] end
    if #errs == 0 then
      out:callback(util.results(values, n))
    elseif #errs == 1 then
      out:errback(errs[1])
    else
      out:errback(errors.CompositeError{errors = errs})
    end
  end
  if n == 0 then done() end
  for i = 1, n do
    ds[i]:_observe(function(ok, res)
      if ok then values[i] = res[1] else failed[i] = res end
      left = left - 1
      if left == 0 then done() end
    end, true)
  end
  return out
end

-- wait_all(ds [, timeout]) -> true when every Deferred fired in time.
function deferred.wait_all(ds, timeout)
  check_list(ds, "wait_all")
  util.check(timeout, 2, "wait_all", "number", "nil")
  local pump, clock = pump_of(ds)
  local deadline = timeout and clock and clock() + timeout
  for i = 1, util.len(ds) do
    local d = ds[i]
    if not (d.fired and not d.paused) then -- d:ready(), inline
      if not pump then return false end
      local left = deadline and math.max(deadline - clock(), 0)
      -- wait through d's own loop, or the first one that has a loop
      d.pump = d.pump or pump
      if not d:wait(left) then return false end
    end
  end
  return true
end

--[[
  as_completed(ds [, timeout]): iterator over the Deferreds in the order
  they fire (those already fired first, in list order). Raises TimeoutError
  when the next one does not fire within `timeout` seconds.
]]
function deferred.as_completed(ds, timeout)
  check_list(ds, "as_completed")
  util.check(timeout, 2, "as_completed", "number", "nil")
  local n = util.len(ds)
  local pump, clock = pump_of(ds)
  local order = {}
  for i = 1, n do
    local d = ds[i]
    d:_observe(function() order[#order + 1] = d end)
  end
  local k = 0
  return function()
    k = k + 1
    if k > n then return nil end
    local deadline = timeout and clock and clock() + timeout
    while not order[k] do
      local left = deadline and deadline - clock()
      if not pump or (left and left <= 0) then
        error(errors.TimeoutError{message = ("%d of %d results not ready"):format(n - k + 1, n)}, 0)
      end
      pump(left)
    end
    return order[k]
  end
end

-- DO's metamethods are D's
for k, v in pairs(D) do
  if k:sub(1, 2) == "__" and k ~= "__index" then DO[k] = v end
end

-- The metatable of Deferreds: conn:poll fires a plain task's Deferred
-- itself when it is one of ours (shell/lua_settle.c, client.lua's pump).
deferred._meta = D

return deferred
