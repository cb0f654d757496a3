-- plush.view: DirectView (named engines) and LoadBalancedView (any engine).
--
-- Every operation builds one request, submits it through the Client and
-- gets a Deferred back; the view's options then decide whether the caller
-- gets that Deferred (block = false) or waits for it and gets the values
-- (block = true, the default), remote errors being raised. The shape of the
-- values: a view on one engine (rc[0], rc:view(0), a balanced view) gives
-- what the task returned, all of it; a view on a list of engines gives an
-- array with one entry per engine, in target order.
-- Over 600 lines: both views share run, combine and the splitting and
-- joining helpers (split, chunk, concat, map_chunks).

local deferred = require "plush.deferred"
local fanout = require "plush.fanout"
local progress = require "plush.progress"
local errors = require "plush.errors"
local util = require "plush.util"

local view = {}
local math_type = math.type

local View = {}
local Direct = setmetatable({}, {__index = View})
local Balanced = setmetatable({}, {__index = View})
local direct_mt = {__name = "plush.DirectView", __index = Direct}
local balanced_mt = {__name = "plush.LoadBalancedView", __index = Balanced}

local options = {
  block = true, targets = true, timeout = true, retries = true, after = true,
  chunksize = true, ordered = true, output = true, detached = true,
  durable = true,
}

-------------------------------------------------------------------------------
-- Options
-------------------------------------------------------------------------------

local function check_targets(t, i, fname)
  if t == nil or t == "all" then return "all" end
  if math.type(t) == "integer" then return t end
  if type(t) == "table" then
    local n, list = #t, {}
    for k, id in pairs(t) do
      if math.type(k) ~= "integer" or k < 1 or k > n or math.type(id) ~= "integer" then
        util.argerror(i, fname, "targets must be an array of engine ids")
      end
      list[k] = id
    end
    if n == 0 then util.argerror(i, fname, "empty list of targets") end
    return list
  end
  util.argerror(i, fname, "engine id, array of ids or 'all' expected, got " .. type(t))
end

-- `after` holds Deferreds, or task ids (integers: tasks of any client,
-- e.g. from rc:history() or another shell).
local function check_after(v, i, fname)
  if v == false then return nil end
  if deferred.is(v) or math.type(v) == "integer" then return {v} end
  if type(v) == "table" then
    for k = 1, #v do
      if not deferred.is(v[k]) and math.type(v[k]) ~= "integer" then
        util.argerror(i, fname, "option 'after' must hold Deferreds or task ids")
      end
    end
    return v
  end
  util.argerror(i, fname, "option 'after' must be a Deferred, a task id or an array of them")
end

local function check_option(k, v, i, fname, kind)
  local function bad(what)
    util.argerror(i, fname, ("option '%s' must be %s"):format(k, what))
  end
  if k == "block" or k == "ordered" or k == "detached" or k == "durable" then
    if type(v) ~= "boolean" then bad("a boolean") end
  elseif k == "timeout" then
    if v == false then return nil end
    if type(v) ~= "number" or v <= 0 then bad("a positive number of seconds") end
  elseif k == "retries" then
    if math.type(v) ~= "integer" or v < 0 then bad("a non-negative integer") end
  elseif k == "chunksize" then
    if v == false then return nil end
    if math.type(v) ~= "integer" or v < 1 then bad("a positive integer") end
  elseif k == "after" then
    return check_after(v, i, fname)
  elseif k == "output" then
    if not (type(v) == "boolean" or v == "print" or v == "capture" or type(v) == "function") then
      bad("true, false, 'print', 'capture' or a function")
    end
  elseif k == "targets" then
    if kind == balanced_mt and v == "all" then return nil end
    return check_targets(v, i, fname)
  end
  return v
end

local function ns_proxy(v)
  return setmetatable({}, {
    __name = "plush.ns",
    __index = function(_, k)
      if type(k) ~= "string" then util.raise("ns: names are strings, got " .. type(k)) end
      return v:pull(k)
    end,
    -- an assignment cannot return a Deferred: it always waits
    __newindex = function(_, k, value)
      if type(k) ~= "string" then util.raise("ns: names are strings, got " .. type(k)) end
      v:with{block = true}:push{[k] = value}
    end,
  })
end

-- A balanced view that holds none of the scheduling options below holds
-- _plain = true: its apply skips their lookups (each a miss through
-- Balanced and View). Setting one later (a key it lacks: __newindex)
-- drops the mark. A direct view is marked the same way when it holds none
-- of after, detached, durable (Direct:_send's short way for one engine).
local SCHED = {after = true, detached = true, durable = true, targets = true, retries = true}
local DSCHED = {after = true, detached = true, durable = true}
function balanced_mt.__newindex(v, k, x)
  if SCHED[k] then rawset(v, "_plain", nil) end
  rawset(v, k, x)
end
function direct_mt.__newindex(v, k, x)
  if DSCHED[k] then rawset(v, "_plain", nil) end
  rawset(v, k, x)
end

-- none of `keys` is held (a key held, even false, could be changed later
-- without __newindex seeing it)
local function holds_none(v, keys)
  for k in pairs(keys) do
    if rawget(v, k) ~= nil then return false end
  end
  return true
end

local function make(mt, rc, fields)
  -- the fields set before the metatable: no __newindex call for them
  local v = fields
  v.rc = rc
  if v.block == nil then v.block = true end
  if v.ordered == nil then v.ordered = true end
  if mt == direct_mt then v.ns = ns_proxy(v) end
  if holds_none(v, mt == balanced_mt and SCHED or DSCHED) then v._plain = true end
  return setmetatable(v, mt)
end

local function apply_opts(fields, opts, i, fname, mt)
  for k, v in pairs(opts) do
    if not options[k] then
      util.argerror(i, fname, ("unknown option '%s'"):format(tostring(k)))
    end
    fields[k] = check_option(k, v, i, fname, mt)
  end
end

-- rc:view{block = false} is options; rc:view{0, 2} is targets.
local function is_options(t)
  if type(t) ~= "table" then return false end
  for k in pairs(t) do
    if type(k) == "string" then return true end
  end
  return false
end

function view.direct(rc, targets, opts)
  if is_options(targets) and opts == nil then
    targets, opts = targets.targets, targets
  end
  local fields = {targets = check_targets(targets, 1, "view")}
  if opts ~= nil then
    util.check(opts, 2, "view", "table")
    apply_opts(fields, opts, 2, "view", direct_mt)
  end
  return make(direct_mt, rc, fields)
end

function view.balanced(rc, opts)
  local fields = {}
  if opts ~= nil then
    util.check(opts, 1, "balanced", "table")
    apply_opts(fields, opts, 1, "balanced", balanced_mt)
  end
  return make(balanced_mt, rc, fields)
end

function view.is(v)
  local mt = getmetatable(v)
  return mt == direct_mt or mt == balanced_mt
end

-- The same view with some options changed.
function View:with(opts)
  util.check(opts, 1, "with", "table")
  local mt = getmetatable(self)
  local fields = {}
  for k in pairs(options) do fields[k] = rawget(self, k) end
  apply_opts(fields, opts, 1, "with", mt)
  return make(mt, self.rc, fields)
end

function View:async()
  return self:with{block = false}
end

-------------------------------------------------------------------------------
-- Submitting
-------------------------------------------------------------------------------

-- The task ids a list of dependencies names (a multi-engine Deferred
-- names several).
local function dep_ids(deps)
  local ids = {}
  for _, dep in ipairs(deps) do
    local id = deferred.is(dep) and dep.id or dep
    if type(id) == "table" then
      for _, x in ipairs(id) do ids[#ids + 1] = x end
    elseif math.type(id) == "integer" then
      ids[#ids + 1] = id
    end
  end
  return ids
end

-- `after` is the controller's business: it holds a task until its
-- dependencies succeeded, or fails it with a DependencyError naming the one
-- that failed.
local function submit_opts(v)
  local o = {timeout = v.timeout, output = v.output}
  if v.after then o.sched = {after = dep_ids(v.after)} end
  -- detached: the task runs on when this client disconnects (else the
  -- controller cancels it); its result stays in the store by id
  if v.detached then
    o.sched = o.sched or {}
    o.sched.detached = true
  end
  -- durable: the reply comes once the controller's store has committed
  -- it (else at once, the commit following: share/doc/performance.md)
  if v.durable then
    o.sched = o.sched or {}
    o.sched.durable = true
  end
  return o
end

-- Submit, then wait or hand back the
-- Deferred. `quiet` operations (push, scatter) return nothing when blocking.
-- `submit` is a function that submits, or the Deferred it returned.
-- d:wait() with no time limit, for a Deferred of the client (it has a
-- pump): what d:get() does before it looks at the outcome
local function wait(d)
  local pump = d.pump
  while not d.fired or d.paused do pump(nil, d) end
end

local function gave_up(d, e)
  -- Ctrl-C: the caller gave up on d; its "interrupted" reply, when it
  -- comes, is no news to report
  if errors.is(e, "Interrupted") then d:_observe(function() end, true) end
  error(e, 0)
end

local function run(v, submit, quiet)
  local d = submit
  if type(d) == "function" then d = d() end
  if not v.block then return d end
  if progress.auto then progress.wait(d, nil, progress.delay) end
  if not (d.pump and deferred.is(d)) then -- d:get() says why it cannot wait
    local r = table.pack(pcall(d.get, d))
    if not r[1] then gave_up(d, r[2]) end
    if quiet then return end
    return table.unpack(r, 2, r.n)
  end
  -- d:get() without its checks and without packing the values twice
  if not d.fired or d.paused then
    local ok, e = pcall(wait, d)
    if not ok then gave_up(d, e) end
  end
  local res = d.res
  if not d.ok then
    d._taken, d._unhandled = res, false
    gave_up(d, res)
  end
  if quiet then return end
  return table.unpack(res, 1, res.n)
end

-- One Deferred for a list of per-engine Deferreds, firing with their first
-- values in target order; `entry` reshapes each engine's values first.
local function combine(ds, list, entry)
  if entry then
    for _, d in ipairs(ds) do d:add_callback(entry) end
  end
  local g = deferred.gather(ds)
  local ids, md = {}, {}
  for i, d in ipairs(ds) do ids[i], md[i] = d.id, d.metadata end
  g.id, g.metadata, g.targets = ids, md, list
  return g
end

-- The engine ids this view addresses now; true when it is a one-engine view.
function Direct:_targets()
  local t = self.targets
  if t == "all" then
    local ids = self.rc:_engine_ids()
    if #ids == 0 then util.raise("no engines are registered") end
    return util.copy(ids), false
  elseif type(t) == "table" then
    return util.copy(t), false
  end
  return {t}, true
end

-- The engine ids this view addresses (for "all": those up now).
function Direct:ids()
  return (self:_targets())
end

--[[
  A view of every engine means the engines alive when the controller
  routes the request. The client sends to the engines it knows of; one
  that had left by then (the controller answers EngineError with `left`:
  the task never reached it) is dropped from the answer and from the
  client's list, as if the request had been sent after the client heard
  of its leaving. An engine that dies while running the task is still an
  EngineError.
]]
local LEFT = setmetatable({}, {__name = "plush.left"})

local function combine_alive(rc, ds, list, entry)
  for i, d in ipairs(ds) do
    if entry then d:add_callback(entry) end
    d:add_errback(function(e)
      if not (errors.is(e, "EngineError") and e.left) then return deferred.fail(e) end
      rc:_forget(list[i])
      return LEFT
    end)
  end
  local g = combine(ds, list)
  return g:add_callback(function(r)
    local out, ids, keep, n = {}, {}, {}, 0
    for i = 1, #list do
      if r[i] ~= LEFT then
        n = n + 1
        out[n], ids[n], keep[n] = r[i], list[i], i
      end
    end
    if n == #list then return r end
    if n == 0 then
      return deferred.fail(errors.EngineError{message = "every engine of the view has left"})
    end
    local tid, md, dd = {}, {}, {}
    for j, i in ipairs(keep) do tid[j], md[j], dd[j] = g.id[i], g.metadata[i], ds[i] end
    g.targets, g.id, g.metadata, g.deferreds = ids, tid, md, dd
    return util.results(out, n)
  end)
end

function Direct:_send(msg, entry)
  local t = self.targets
  -- one engine, no scheduling option: no target list, no options table
  if self._plain and math_type(t) == "integer" then
    return self.rc:_submit1(t, msg, self.timeout, nil, self.output)
  end
  local list, single = self:_targets()
  if single then return self.rc:submit(list[1], msg, submit_opts(self)) end
  local ds = self.rc:submit(list, msg, submit_opts(self))
  -- the common case: one Deferred over them with no chain per engine
  if entry == nil then return fanout.new(self.rc, ds, list, self.targets == "all") end
  if self.targets == "all" then return combine_alive(self.rc, ds, list, entry) end
  return combine(ds, list, entry)
end

--[[
  Balanced tasks go to whichever engine is free; the controller schedules
  them. `targets` restricts the engines a task may run on, `retries`
  resubmits it after its own error (a RemoteError) avoiding the engines
  where it failed, `after` holds it until its dependencies succeeded (a
  failed one fails it with a DependencyError naming it). Engine deaths are
  absorbed by the controller on top of `retries`.
]]
function Balanced:_send(msg, whole)
  -- the common case, no scheduling option: no options tables
  if not (self.after or self.detached or self.durable or self.targets)
      and (self.retries or 0) <= 0 then
    return self.rc:_submit1(nil, msg, self.timeout, nil, self.output, whole)
  end
  local opts = submit_opts(self)
  opts.whole = whole
  if self.targets or (self.retries or 0) > 0 then
    opts.sched = opts.sched or {}
    opts.sched.targets, opts.sched.retries = self.targets, self.retries
  end
  return self.rc:submit(nil, msg, opts)
end

-------------------------------------------------------------------------------
-- Operations
-------------------------------------------------------------------------------

-- execute(code [, name]): run the chunk `code` (chunk name `name`, default
-- "execute"); the result is what it returned.
function View:execute(code, name)
  if type(code) ~= "string" then util.check(code, 1, "execute", "string") end
  if name ~= nil and type(name) ~= "string" then
    util.check(name, 2, "execute", "string", "nil")
  end
  return View._exec(self, code, name, nil)
end

-- The shell's execute of an expression line (it added the `return`):
-- a value that cannot travel comes back as its tostring, its index in
-- the Deferred's metadata.tostring (engine.md).
function View:_execute_expr(code, name)
  return View._exec(self, code, name, true)
end

-- exec's request: on a balanced or one-engine view with no scheduling
-- option written from the stack (Client:_apply1 with the code: the
-- exec request, no table), else by _send.
function View:_exec(code, name, auto)
  if self._plain then
    -- nil: balanced (a plain one holds no targets); an integer: one engine
    local t = self.targets
    if t == nil or math_type(t) == "integer" then
      return run(self, self.rc:_apply1(t, self.timeout, self.output, code, name, auto))
    end
  end
  return run(self, self:_send({op = "exec", code = code, name = name, auto = auto}))
end

-- apply(f, ...): call f(...) in the engine; the result is what it returned.
function View:apply(f, ...)
  util.check(f, 1, "apply", "function")
  local msg = {op = "apply", f = f, args = table.pack(...)}
  return run(self, self:_send(msg))
end

-- A balanced view with no scheduling option (_plain, above; Balanced:_send's
-- common case): the request written by conn:apply, no tables made for it.
function Balanced:apply(f, ...)
  if not self._plain then return View.apply(self, f, ...) end
  if type(f) ~= "function" then util.check(f, 1, "apply", "function") end
  local d = self.rc:_apply1(nil, self.timeout, self.output, f, ...)
  if not self.block then return d end
  return run(self, d)
end

-- The same for a one-engine direct view with no scheduling option.
function Direct:apply(f, ...)
  local t = self.targets
  if not (self._plain and math_type(t) == "integer") then return View.apply(self, f, ...) end
  if type(f) ~= "function" then util.check(f, 1, "apply", "function") end
  local d = self.rc:_apply1(t, self.timeout, self.output, f, ...)
  if not self.block then return d end
  return run(self, d)
end

-- push{name = value, ...}: assign globals in every target's namespace.
function Direct:push(ns)
  util.check(ns, 1, "push", "table")
  for k in pairs(ns) do
    if type(k) ~= "string" then
      util.argerror(1, "push", "names must be strings, got " .. type(k))
    end
  end
  local msg = {op = "push", ns = ns}
  return run(self, self:_send(msg), true)
end

--[[
  pull(name) -> each target's value of `name` (dotted paths allowed).
  pull{n1, n2} -> for each target an array of the values; a one-engine
  view returns them as several values.
]]
function Direct:pull(names)
  local list, entry
  if type(names) == "string" then
    list = {names}
  elseif type(names) == "table" then
    list = {}
    for i = 1, #names do
      if type(names[i]) ~= "string" then
        util.argerror(1, "pull", "names must be strings, got " .. type(names[i]))
      end
      list[i] = names[i]
    end
    entry = util.results_of
  else
    util.argerror(1, "pull", "string or array of strings expected, got " .. type(names))
  end
  local msg = {op = "pull", names = list}
  return run(self, self:_send(msg, entry))
end

-- names([prefix]): the names defined in each target's namespace.
function Direct:names(prefix)
  util.check(prefix, 1, "names", "string", "nil")
  local msg = {op = "names", prefix = prefix or ""}
  return run(self, self:_send(msg))
end

--[[
  seq[i..j], to be sent as an array. core.slice copies nothing: the codec
  writes the items straight from seq when the request is encoded (at
  submit, before map or scatter returns). A sequence with a metatable is
  copied by table.move instead, which honours its __index.
]]
local core_slice, core_table, core_append
do
  local ok, core = pcall(require, "plush.core")
  if ok and type(core) == "table" then
    core_slice, core_table, core_append = core.slice, core.table, core.append
  end
end
-- plush.array (when the real plush.core is there): arrays travel as
-- arrays, their parts as views of them (no copy until the encoding).
local array
do
  local ok, a = pcall(require, "plush.array")
  array = ok and type(a) == "table" and a.is and a or nil
end
local function is_array(v) return array ~= nil and array.is(v) end

local function slice(seq, i, j)
  if is_array(seq) then return seq:view(i, j) end
  if core_slice and getmetatable(seq) == nil then return core_slice(seq, i, j) end
  return table.move(seq, i, j, 1, {})
end

-- Contiguous, nearly equal parts: the first n % k parts one item longer.
local function split(seq, k)
  local n = util.len(seq)
  local parts, sizes, pos = {}, {}, 1
  local base, extra = n // k, n % k
  for i = 1, k do
    local size = base + (i <= extra and 1 or 0)
    parts[i], sizes[i] = slice(seq, pos, pos + size - 1), size
    pos = pos + size
  end
  return parts, sizes
end

-- Parts of `size` items (the last one shorter).
local function chunk(seq, size)
  local n = util.len(seq)
  local parts, sizes = {}, {}
  for start = 1, n, size do
    local m = math.min(size, n - start + 1)
    parts[#parts + 1], sizes[#sizes + 1] = slice(seq, start, start + m - 1), m
  end
  return parts, sizes
end

-- Parts that are all plush.arrays join as one (of their type, f64 when
-- they differ); else nil, and each array's elements go into a table.
local function join_arrays(parts, k)
  if not array or k == 0 then return nil end
  for i = 1, k do
    if not array.is(parts[i]) then return nil end
  end
  return array.concat(parts)
end

-- Concatenate arrays (result arrays know their length even with holes);
-- a value that is not a table counts as one item; plush.arrays of
-- gathered parts join as one array (join_arrays).
local function concat(parts, k)
  local joined = join_arrays(parts, k)
  if joined then return joined end
  local out, n = {}, 0
  for i = 1, k do
    local p = parts[i]
    if is_array(p) then p = p:totable() end
    if type(p) == "table" then
      local m = util.len(p)
      table.move(p, 1, m, n + 1, out)
      n = n + m
    elseif p ~= nil then
      n = n + 1
      out[n] = p
    end
  end
  return util.results(out, n)
end

-- scatter(name, seq): part i of seq becomes `name` on target i.
-- A sequence: a table or a plush.array.
local function check_seq(seq, i, fname)
  if not is_array(seq) then util.check(seq, i, fname, "table") end
end

function Direct:scatter(name, seq)
  util.check(name, 1, "scatter", "string")
  check_seq(seq, 2, "scatter")
  return run(self, function()
    local list, single = self:_targets()
    local parts = split(seq, #list)
    local ds = {}
    for i, id in ipairs(list) do
      ds[i] = self.rc:submit(id, {op = "push", ns = {[name] = parts[i]}}, submit_opts(self))
    end
    if single then return ds[1] end
    return combine(ds, list)
  end, true)
end

-- gather(name): the targets' arrays `name`, concatenated in target order.
function Direct:gather(name)
  util.check(name, 1, "gather", "string")
  return run(self, function()
    local list = self:_targets()
    local ds = self.rc:submit(list, {op = "pull", names = {name}}, submit_opts(self))
    return combine(ds, list):add_callback(function(parts)
      return concat(parts, #list)
    end)
  end)
end

--[[
  Submit one "map" request per non-empty chunk and concatenate the
  results: in chunk order, or in completion order when ordered = false.
  Each chunk's results are appended as soon as the chunks before it are
  in, the first one taken as the result table itself: the copying overlaps
  the engines' work on the other chunks, and after the last reply only its
  own items are left to append.
]]
local function map_chunks(v, f, chunks, sizes, submit, seq)
  local ds, ready, out, n, nextk = {}, {}, {}, 0, 1
  -- over a plush.array the chunks' results (arrays when all numbers)
  -- are kept and joined at the end
  local parts = is_array(seq) and {} or nil
  -- with plush.core the result table is made whole at once and each
  -- chunk copied in by core.append (numbers in one memcpy)
  if not parts and core_table then
    local total = 0
    for _, m in ipairs(sizes) do total = total + m end
    if total <= 1 << 28 then out = core_table(total) end -- core.table's bound
  end
  -- in chunk order, each chunk's reply of numbers is decoded straight
  -- into out at its offset (conn:sink): nothing left to append
  local conn = v.ordered and not parts and core_table and type(v.rc) == "table" and
    rawget(v.rc, "conn")
  local sink = type(conn) == "userdata" and conn.sink or nil
  local function append(r, m)
    if rawequal(r, out) and sink then
      n = n + m
      nextk = nextk + 1
      return
    end
    if parts then
      parts[nextk] = r
      nextk = nextk + 1
      return
    end
    if core_append then
      n = core_append(out, n, r, m)
    elseif nextk == 1 then
      out, n = r, m
      out.n = nil
    else
      table.move(r, 1, m, n + 1, out)
      n = n + m
    end
    nextk = nextk + 1
  end
  local off = 0
  for j, items in ipairs(chunks) do
    if sizes[j] > 0 then
      local d = submit(j, {op = "map", f = f, items = items, n = sizes[j]})
      local k, m = #ds + 1, sizes[j]
      if sink and math.type(d.id) == "integer" then sink(conn, d.id, out, off, m) end
      off = off + m
      -- a chunk's results come whole (a packed table), never as a vararg:
      -- half a million values do not fit on the stack
      d:add_callback(function(r)
        if not v.ordered then
          append(r, m)
          return
        end
        ready[k] = {r, m}
        while ready[nextk] do
          local c = ready[nextk]
          ready[nextk] = nil
          append(c[1], c[2])
        end
      end)
      ds[k] = d
    end
  end
  local g = combine(ds, nil)
  g.targets = nil
  return g:add_callback(function()
    if parts then
      if #parts == 0 then return array.new(0, seq:type()) end
      return concat(parts, #parts)
    end
    return util.results(out, n)
  end)
end

--[[
  How many chunks each target gets when no chunksize is set: one for a
  short sequence; for a long one up to 4, of at least 2^16 items, so that
  the client encodes the next chunks and appends the results of the first
  ones while the engines compute (with one chunk each, the engines wait
  for the whole encoding, and the client for the whole compute).
]]
local function per_target(n, targets)
  return math.max(1, math.min(4, n // (targets * 65536)))
end

-- map(f, seq): f applied to every item, spread over the targets in chunks
-- dealt round-robin (per_target, or chunks of `chunksize`); results in order.
function Direct:map(f, seq)
  util.check(f, 1, "map", "function")
  check_seq(seq, 2, "map")
  return run(self, function()
    local list = self:_targets()
    local chunks, sizes
    if self.chunksize then
      chunks, sizes = chunk(seq, self.chunksize)
    else
      chunks, sizes = split(seq, #list * per_target(util.len(seq), #list))
    end
    local opts = submit_opts(self)
    opts.whole = true
    return map_chunks(self, f, chunks, sizes, function(j, msg)
      return self.rc:submit(list[(j - 1) % #list + 1], msg, opts)
    end, seq)
  end)
end

-- map(f, seq) on a balanced view: chunks of `chunksize` items (default
-- #seq / (4 * engines), at least 1), each a balanced task.
function Balanced:map(f, seq)
  util.check(f, 1, "map", "function")
  check_seq(seq, 2, "map")
  return run(self, function()
    local size = self.chunksize
    if not size then
      local engines = math.max(1, #self.rc:_engine_ids())
      size = math.max(1, util.len(seq) // (4 * engines))
    end
    local chunks, sizes = chunk(seq, size)
    return map_chunks(self, f, chunks, sizes, function(_, msg)
      return self:_send(msg, true)
    end, seq)
  end)
end

-- The models over engine-to-engine messages (plush.bsp, plush.mapreduce;
-- share/doc/models.md), loaded when first used.
function View:bsp(step, init) return require("plush.bsp").run(self, step, init) end
function View:mapreduce(spec) return require("plush.mapreduce").run(self, spec) end

function direct_mt.__tostring(v)
  local t = v.targets
  if type(t) == "table" then
    local s = {}
    for i, id in ipairs(t) do s[i] = tostring(id) end
    t = "{" .. table.concat(s, ", ") .. "}"
  end
  return ("<DirectView %s%s>"):format(tostring(t), v.block and "" or " async")
end

function balanced_mt.__tostring(v)
  return ("<LoadBalancedView%s>"):format(v.block and "" or " async")
end

return view
