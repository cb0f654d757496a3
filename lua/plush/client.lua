-- plush.client: the Client that plush.connect returns.
--
-- It owns one plush.core connection and everything in flight on it: a
-- record per submitted task (its Deferred, its engine, where its output
-- goes) and a waiter per control request. Events come only from
-- conn:poll, which runs only inside rc:pump; so callbacks, output handlers
-- and cache updates all run there, one at a time, never concurrently with
-- other Lua code of the client.
--
-- Over 600 lines: the task records and the control waiters live and die
-- with one connection and its pump; the output assembly
-- (plush.client_output), the views (plush.view), Deferreds and errors are
-- modules of their own.
local core = require "plush.core"
local deferred = require "plush.deferred"
local errors = require "plush.errors"
local util = require "plush.util"

local client = {}

local math_type = math.type
local core_time, core_now = core.time, core.now
local deferred_meta = deferred._meta

local Client = {}
local mt = {__name = "plush.Client"}

local view -- plush.view, loaded on first use (it requires nothing of ours)

local function views()
  view = view or require "plush.view"
  return view
end

-- rc[i] is a one-engine DirectView; everything else is a method.
-- (methods first: Client has no integer keys, and a method lookup is
-- what the hot paths do)
mt.__index = function(rc, k)
  local m = Client[k]
  if m ~= nil then return m end
  if math_type(k) == "integer" then return views().direct(rc, k) end
  return nil
end
-- what the shell's Tab lists after `rc:` (__index, a function, cannot say)
mt.__complete = Client

--[[
  new(conn [, {timeout = s, owned = {...}, output = ..., catch_sigint = b}])
  `timeout` bounds each control request (the controller answers those at
  once; a silent controller is a dead one). `owned` is set by plush.connect
  for an embedded cluster, which close() then stops.
]]
function client.new(conn, opts)
  opts = opts or {}
  local self = setmetatable({
    conn = conn,
    pending = {},
    waiting = {},
    timeout = opts.timeout or 30,
    owned = opts.owned,
    output = opts.output,
    catch_sigint = opts.catch_sigint ~= false,
    closed = false,
  }, mt)
  -- Deferreds' wait (rc:pump: an own one, as the kernel's) and the views' submit, no mt.__index
  self._pump = function(t) return (rawget(self, "pump") or Client.pump)(self, t) end
  self._submit1, self._apply1 = Client._submit1, Client._apply1
  return self
end

function client.is(v)
  return getmetatable(v) == mt
end

-- Output: lines of a task's output, muted tasks (plush.client_output)
local flush = require("plush.client_output").install(Client, client)

-------------------------------------------------------------------------------
-- Events
-------------------------------------------------------------------------------

local EMPTY = setmetatable({}, {__newindex = function() error("EMPTY written", 2) end})
-- The packed values of a task that returned none: shared, never written
-- (a Deferred only reads its values).
local NONE = setmetatable({n = 0}, {__newindex = function() error("NONE written", 2) end})

-- Task id's Deferred, out of pending, its output flushed and its
-- metadata filled from the reply. A pending task is its Deferred, which
-- carries what the client needs until the reply (set only when not nil,
-- so that most tasks' Deferreds hold none of them): _engine (the engine it
-- was sent to; nil when balanced), _output (the view's output option),
-- _whole, _partial (unfinished lines of output), _muted, _fanout and
-- _index (a request to many engines), _note and _note_engine (the engine's
-- note about it). No record beside it: a client with 20,000 tasks in
-- flight has a table fewer each for the collector to walk (client CPU a
-- balanced no-op task, share/doc/performance.md).
local function take(self, id, engine, attempts, started, completed, tostr)
  local pending = self.pending
  local d = pending[id]
  if not d then return end
  pending[id] = nil
  if d._partial then flush(d, engine, id) end
  if d._muted then self:_unmute(d, engine, id) end
  local md = d.metadata
  md.engine, md.started, md.completed = engine, started, completed
  md.tostring, md.received = tostr, core_time()
  -- how many times the controller saw the task start on an engine (1, or
  -- more after retries or an engine's death); nil for replies the
  -- controller made itself (the task never ran)
  d.attempts = attempts
  return d
end

-- An OK reply: task id's Deferred fires with r (its packed values).
-- From _reply, or straight from pump when poll gave it as plain values.
function Client:_reply_ok(id, engine, attempts, r, started, completed, tostr)
  local d = take(self, id, engine, attempts, started, completed, tostr)
  if not d then return end
  -- `whole` requests (map chunks) fire with the packed table itself
  if d._whole then return d:callback(r or {n = 0}) end
  -- r is ours alone (just decoded): the Deferred keeps it as its packed
  -- values instead of a copy; no values are the shared NONE, so that a
  -- batch of tasks run for their effect keeps no table each alive
  if r ~= nil and math_type(r.n) ~= "integer" then r.n = #r end
  if r == nil or r.n == 0 then r = NONE end
  d:_callback_packed(r)
  local fan = d._fanout -- a request to many engines (plush.fanout)
  if fan then fan:ok(d._index, r[1]) end
end

function Client:_reply(ev)
  local value, id, engine = ev.value, ev.id, ev.engine
  if type(value) ~= "table" then value = EMPTY end
  if ev.status == "ok" then
    return Client._reply_ok(self, id, engine, ev.attempts, value.r,
      value.started, value.completed, value.tostring)
  end
  local d = take(self, id, engine, ev.attempts, value.started,
    value.completed, value.tostring)
  if not d then return end
  local e = errors.from_reply(ev.status, ev.value, engine)
  e.id = id
  if d._fanout then d._fanout:fail(d._index, d, e) else d:errback(e) end
end

local function insert_sorted(list, id)
  for i, v in ipairs(list) do
    if v == id then return end
    if v > id then table.insert(list, i, id) return end
  end
  list[#list + 1] = id
end

function Client:_event(value)
  if type(value) ~= "table" then return end
  -- another client's work, followed (plush.follow)
  if value.event == "follow" then
    if self._on_follow then
      local ok, err = errors.call(self._on_follow, value)
      if not ok then deferred.on_unhandled(err, nil, "rc:follow") end
    end
    return
  end
  local ids = self._ids
  if ids and value.id ~= nil then
    if value.event == "engine_up" then
      insert_sorted(ids, value.id)
    elseif value.event == "engine_down" then
      for i, v in ipairs(ids) do
        if v == value.id then table.remove(ids, i) break end
      end
    end
  end
  if self.on_event then
    local ok, err = errors.call(self.on_event, value)
    if not ok then deferred.on_unhandled(err, nil, "rc.on_event") end
  end
end

-- Fail everything in flight: nothing will answer it any more. With
-- `quiet`, a failure nobody has a callback for is not reported one by one
-- when its Deferred is collected (get still raises it): the number of
-- them is returned, for one line.
function Client:_fail_all(make, quiet)
  local ids, unseen = {}, 0
  for id in pairs(self.pending) do ids[#ids + 1] = id end
  table.sort(ids)
  for _, id in ipairs(ids) do
    local d = self.pending[id]
    self.pending[id] = nil
    flush(d, d._engine, id)
    self:_unmute(d, d._engine, id)
    local e = make(d)
    e.id = id
    if d._fanout then
      d._fanout:fail(d._index, d, e)
    else
      d:errback(e)
      if quiet and rawget(d, "_unhandled") then
        d._unhandled = false
        unseen = unseen + 1
      end
    end
  end
  return unseen
end

function Client:_lost(message)
  self.lost = tostring(message or "connection closed")
  for rid, w in pairs(self.waiting) do
    self.waiting[rid] = nil
    w.done, w.status, w.value = true, "closed", self.lost
    if w.d then
      w.d:errback(errors.EngineError{message = "controller connection lost: " .. self.lost})
    end
  end
  self:_fail_all(function(d)
    return errors.EngineError{engine = d._engine,
      message = "controller connection lost: " .. self.lost}
  end)
end

function Client:_dispatch(ev)
  local kind = ev.kind
  if kind == "reply" then
    Client._reply(self, ev)
  elseif kind == "output" then
    Client._output(self, ev)
  elseif kind == "ctrl" then
    local w = self.waiting[ev.id]
    if w then
      self.waiting[ev.id] = nil
      w.done, w.status, w.value = true, ev.status, ev.value
      if w.d then w.settle(w.d, ev.status, ev.value, w.cancelled) end
    end
  elseif kind == "event" then
    self:_event(ev.value)
  elseif kind == "closed" then
    self:_lost(ev.message)
  end
end

-- Ctrl-C while waiting: stop what we asked the engines to run. Balanced
-- tasks may be anywhere, so any of them means every engine. Their output
-- from now on is dropped (what was already on its way too: a task that
-- printed in a loop has megabytes in flight), counted, and said in one
-- line when the task ends.
-- The engines running this client's tasks, sorted, and whether a balanced
-- one (which may be anywhere) is among them.
function Client:_pending_engines()
  local targets, seen, all = {}, {}, false
  for _, d in pairs(self.pending) do
    local e = d._engine
    if e == nil then
      all = true
    elseif not seen[e] then
      seen[e] = true
      targets[#targets + 1] = e
    end
  end
  table.sort(targets)
  return targets, all
end

-- A blocked take or read waiting at the controller (rid, its waiting
-- entry w) is cancelled: the answer comes to its Deferred ("cancelled",
-- or a tuple already on its way, which its settle puts back).
local function cancel(self, rid, w)
  if w.cancellable and not w.cancelled then
    w.cancelled = true
    pcall(self.conn.ctrl, self.conn, {op = "ts_cancel", rid = rid})
  end
end

-- The request whose Deferred is d, cancelled if it can be: a task on an
-- engine interrupted while it waited on d (plush.nested).
function Client:_cancel(d)
  for rid, w in pairs(self.waiting) do
    if w.d == d then return cancel(self, rid, w) end
  end
end

function Client:_interrupt_pending()
  -- every blocked take and read this client waits for
  for rid, w in pairs(self.waiting) do cancel(self, rid, w) end
  -- muted in one call: 10^5 tasks in flight are 10^5 ids
  local ids = {}
  for id, d in pairs(self.pending) do
    if not d._muted then
      flush(d, d._engine, id)
      d._muted = {lines = 0, bytes = 0}
      ids[#ids + 1] = id
    end
  end
  if #ids > 0 then pcall(self.conn.mute, self.conn, ids) end
  local targets, all = self:_pending_engines()
  if not all and #targets == 0 then return end
  local ok, rid = pcall(self.conn.ctrl, self.conn,
    {op = "interrupt", targets = not all and targets or nil})
  -- close() waits for its answer: a client that leaves at once (plush -e
  -- on Ctrl-C) closes a socket full of unread output, which resets the
  -- connection, and the controller may never read the interrupt
  if ok then
    local w = {}
    self.waiting[rid] = w
    self._interrupt_wait = w
  end
end

-- pump's events, in order (a Ctrl-C among them interrupts what is
-- pending, once): whether one came.
local function dispatch_all(self, evs, catch, sigint)
  local i, n = 1, #evs
  while i <= n do
    local ev = evs[i]
    if math_type(ev) == "integer" then -- an OK reply, flat (false: absent)
      Client._reply_ok(self, ev, evs[i + 1] or nil, evs[i + 2] or nil, evs[i + 3] or nil,
        evs[i + 4] or nil, evs[i + 5] or nil, evs[i + 6] or nil)
      i = i + 7
    else
      if ev.kind ~= "sigint" then Client._dispatch(self, ev) end
      i = i + 1
    end
    if not sigint and (client._sigint or (catch and core.sigint())) then
      sigint = true
      self:_interrupt_pending()
    end
  end
  return sigint
end

--[[
  Run the loop once: wait up to `timeout` seconds (0: just look; nil:
  until something happens) and dispatch what came. Returns the number of
  events; raises when the client is closed or its connection lost. SIGINT
  is caught only while we block in poll, so that Ctrl-C
  elsewhere keeps its usual meaning; when it arrives the engines running
  our tasks are interrupted and an Interrupted error is raised here.
]]
function Client:pump(timeout)
  -- nothing will ever come: waiting would spin or hang
  if self.closed or rawget(self, "lost") then Client._check_open(self) end
  local catch, was = self.catch_sigint, nil
  -- caught while the events are handled too: a Ctrl-C while a flood of
  -- output is written must interrupt the engines, not kill the client
  -- and leave them running (a second one, before the first was seen,
  -- has its usual meaning: sigint.c)
  if catch then was = core.catch_sigint(true) end
  -- flat: OK replies come as plain values, no event table (dispatch_all);
  -- a plain task's OK reply fires its Deferred in poll itself, as
  -- _reply_ok would (shell/lua_settle.c)
  local ok, evs, count = pcall(self.conn.poll, self.conn, timeout, nil, true, self.pending,
    NONE, deferred_meta)
  if not ok then
    if catch then core.catch_sigint(was) end
    error(evs, 0)
  end
  -- Ctrl-C first (a sigint event is the list's last): the output that
  -- came with it is already too much
  local last = evs[#evs]
  local sigint = type(last) == "table" and last.kind == "sigint"

  if sigint then self:_interrupt_pending() end
  client._sigint = false
  local dok, err = pcall(dispatch_all, self, evs, catch, sigint)
  if dok then sigint = err end
  if catch then
    if core.sigint() and not sigint then
      sigint = true
      self:_interrupt_pending()
    end
    core.catch_sigint(was)
  end
  if not dok then error(err, 0) end
  if sigint then error(errors.Interrupted{}, 0) end
  return count or #evs
end

-------------------------------------------------------------------------------
-- Requests
-------------------------------------------------------------------------------

--[[
  A lost controller connection is dialled again on the next request when
  the client knows how (rc._redial, set by plush.connect: it re-reads the
  connection file, which a restarted controller rewrites). What was pending
  when the connection went has already failed with EngineError; finished
  results wait in the controller's store (rc:result(id)).
]]
function Client:_check_open()
  if self.closed then util.raise("the client is closed") end
  if self.lost and self._redial then
    local ok, conn = pcall(self._redial)
    if ok and conn then
      pcall(self.conn.close, self.conn)
      self.conn, self.lost, self._ids = conn, nil, nil
      return
    end
  end
  if self.lost then
    error(errors.EngineError{message = "controller connection lost: " .. self.lost}, 0)
  end
end

-- Argument errors and values that cannot travel are raised by the C side
-- (the fake core's carry a position of its own): the user wants theirs.
local function reraise(e)
  if type(e) == "string" then util.raise(util.strip_where(e)) end
  error(e, 0)
end

local deferred_new = deferred._new

local function track(self, id, engine, out, whole)
  local d = deferred_new(self._pump, core_now, id,
    -- room for what the reply adds (_reply)
    {engine = engine, submitted = core_time(), started = nil,
      completed = nil, received = nil, tostring = nil})
  -- rawget: an absent field of a Client costs a call of its __index (no
  -- method is named output or lost)
  if out == nil then out = rawget(self, "output") end
  -- the fields that are nil (a balanced task's engine, the default
  -- output) are not set: room in d's table is kept for what firing adds
  if engine ~= nil then d._engine = engine end
  if out ~= nil then d._output = out end
  if whole then d._whole = whole end
  self.pending[id] = d
  return d
end

function Client:_track(id, engine, opts)
  return track(self, id, engine, opts.output, opts.whole)
end

--[[
  Internal: submit to one engine (target an id) or balanced (nil), the
  options as arguments (no table): what submit does for such a target.
  Balanced views with no scheduling option come here (view.lua).
]]
function Client:_submit1(target, msg, timeout, sched, output, whole)
  if self.closed or rawget(self, "lost") then Client._check_open(self) end
  local conn = self.conn
  local ok, id, err, name = pcall(conn.submit, conn, target, msg, timeout, sched)
  if not ok then reraise(id) end
  if id == nil then util.ok(id, err, name) end
  return track(self, id, target, output, whole)
end

-- Internal: _submit1 of {op = "apply", f = f, args = table.pack(...)} (a string f: of {op =
-- "exec", code = f, name = ..., auto = ...}) written by conn:apply without tables (view.lua).
function Client:_apply1(target, timeout, output, f, ...)
  if self.closed or rawget(self, "lost") then Client._check_open(self) end
  local ok, id, err, name = pcall(self.conn.apply, self.conn, target, f, timeout, nil, ...)
  if not ok then reraise(id) elseif id == nil then util.ok(id, err, name) end
  return track(self, id, target, output)
end

--[[
  submit(target, msg [, {timeout = s, output = ..., whole = bool}]): the low-level
  request. `target`: an engine id (returns a Deferred), an array of ids
  (returns an array of Deferreds, same order) or nil (balanced; returns a
  Deferred). Each Deferred fires with the values of the reply's `r`.
]]
function Client:submit(target, msg, opts)
  util.check(target, 1, "submit", "integer", "table", "nil")
  util.check(msg, 2, "submit", "table")
  opts = opts or {}
  if self.closed or self.lost then Client._check_open(self) end
  local ok, ids, err, name = pcall(self.conn.submit, self.conn, target, msg, opts.timeout,
    opts.sched)
  if not ok then reraise(ids) end
  util.ok(ids, err, name)
  if type(target) ~= "table" then return Client._track(self, ids, target, opts) end
  local ds = {}
  for i, id in ipairs(ids) do ds[i] = Client._track(self, id, target[i], opts) end
  return ds
end

-- Send a control request and pump until its answer: status, value.
function Client:_ctrl(msg, timeout)
  self:_check_open()
  local ok, rid, err, name = pcall(self.conn.ctrl, self.conn, msg)
  if not ok then reraise(rid) end
  util.ok(rid, err, name)
  local w = {}
  self.waiting[rid] = w
  local limit = timeout or self.timeout
  local deadline = core.now() + limit
  while not w.done do
    local left = deadline - core.now()
    if left <= 0 then
      self.waiting[rid] = nil
      error(errors.TimeoutError{message = ("controller did not answer '%s' within %g s")
        :format(tostring(msg.op), limit)}, 0)
    end
    self:pump(left)
  end
  if w.status == "closed" then
    error(errors.EngineError{message = "controller connection lost: " .. tostring(w.value)}, 0)
  end
  return w.status, w.value
end

--[[
  A control request answered whenever the controller can (a blocked take
  of the tuple space): returns a Deferred, fired by settle(d, status,
  value, cancelled) when the answer comes, or failed with EngineError when
  the connection is lost first. A cancellable one is given up with
  ts_cancel by a Ctrl-C while the client waits (Client:_interrupt_pending)
  or by Client:_cancel, and its settle is told (cancelled = true).
]]
function Client:_ctrl_deferred(msg, settle, cancellable)
  self:_check_open()
  local ok, rid, err, name = pcall(self.conn.ctrl, self.conn, msg)
  if not ok then reraise(rid) end
  util.ok(rid, err, name)
  local d = deferred.new{pump = self._pump, clock = core.now, id = rid,
    metadata = {op = msg.op, submitted = core.time()}}
  self.waiting[rid] = {d = d, settle = settle, cancellable = cancellable or nil}
  return d
end

-- A control request whose answer must be "ok": its value, or raises.
function Client:_ask(msg, timeout)
  local status, value = self:_ctrl(msg, timeout)
  if status ~= "ok" then error(errors.from_reply(status, value), 0) end
  return value
end

-------------------------------------------------------------------------------
-- Public methods
-------------------------------------------------------------------------------

-- The live engine ids, sorted (asks the controller; refreshes the cache
-- that views on "all" engines use).
function Client:ids()
  local ids = self:_ask{op = "ids"}
  local list = {}
  for i, id in ipairs(ids) do list[i] = id end
  table.sort(list)
  self._ids = list
  return util.copy(list)
end

-- The cached ids, kept current by engine_up/engine_down events.
function Client:_engine_ids()
  if not self._ids then self:ids() end
  return self._ids
end

-- Drops engine id from the cached ids (a view of every engine learnt that
-- it had left before its event came).
function Client:_forget(id)
  local ids = self._ids
  if not ids then return end
  for i, v in ipairs(ids) do
    if v == id then table.remove(ids, i) return end
  end
end

function Client:view(targets, opts)
  return views().direct(self, targets, opts)
end

function Client:balanced(opts)
  return views().balanced(self, opts)
end

--[[
  The stored result of task `id` (from any client of the cluster): its
  values, or raises its error. The controller answers with the stored
  reply's status and payload; a wrapped {status =, payload =} is accepted
  too.
]]
function Client:result(id)
  util.check(id, 1, "result", "integer")
  local status, value = self:_ctrl{op = "result", id = id}
  if type(value) == "table" and value.r == nil and type(value.status) == "string" then
    status, value = value.status, value.payload or value.value
  end
  if status == "ok" then
    if type(value) == "table" and value.pending then
      error(errors.TimeoutError{message = ("task %d has not finished"):format(id), id = id}, 0)
    end
    local r = type(value) == "table" and value.r or {n = 0}
    return table.unpack(r, 1, r.n or #r)
  end
  local e = errors.from_reply(status, value)
  e.id = id
  error(e, 0)
end

function Client:engines() return self:_ask{op = "engines"} end
-- collaboration (plush.follow): the clients; another client's work, live
function Client:clients() return require("plush.follow").clients(self) end
function Client:follow(who, fn) return require("plush.follow").follow(self, who, fn) end
-- history([limit]): stored task ids, oldest first (the newest `limit`).
function Client:history(limit)
  util.check(limit, 1, "history", "integer", "nil")
  if limit and limit < 0 then util.argerror(1, "history", "a count from 0 expected") end
  return self:_ask{op = "history", limit = limit}
end
function Client:queue_status() return self:_ask{op = "queue_status"} end
function Client:status() return self:_ask{op = "status"} end

-- interrupt([targets]): an engine id, an array of them, or nil for all.
-- Returns the ids that were interrupted.
function Client:interrupt(targets)
  util.check(targets, 1, "interrupt", "integer", "table", "nil")
  if math.type(targets) == "integer" then targets = {targets} end
  local v = self:_ask{op = "interrupt", targets = targets}
  return type(v) == "table" and v.interrupted or v
end

local function target_list(targets, fname)
  util.check(targets, 1, fname, "integer", "table", "nil")
  if math.type(targets) == "integer" then return {targets} end
  return targets
end

-- shutdown(): stop the whole cluster, controller and engines (the
-- controller may close the connection before its answer arrives; that is
-- success too). shutdown(targets): stop those engines only; their work
-- fails with EngineError. Returns the ids stopped (or true).
function Client:shutdown(targets)
  self:_check_open()
  if targets ~= nil then
    return self:_ask{op = "shutdown", targets = target_list(targets, "shutdown")}.stopped
  end
  local ok, err = pcall(self._ctrl, self, {op = "shutdown"})
  if not ok and not errors.is(err, "EngineError") then error(err, 0) end
  return true
end

-- restart([targets]): give those engines (all when nil) a fresh namespace;
-- what they were running is interrupted. Returns the ids restarted.
function Client:restart(targets)
  return self:_ask{op = "restart", targets = target_list(targets, "restart")}.restarted
end

-- add(n [, timeout]): the controller launches n more local engines; waits
-- until they registered and returns the new ids.
function Client:add(n, timeout)
  util.check(n, 1, "add", "integer")
  local before = {}
  for _, id in ipairs(self:ids()) do before[id] = true end
  self:_ask{op = "add", n = n}
  local deadline = core.now() + (timeout or 60)
  while true do
    local new = {}
    for _, id in ipairs(self:ids()) do
      if not before[id] then new[#new + 1] = id end
    end
    if #new >= n then return new end
    if core.now() > deadline then
      error(errors.TimeoutError{message = ("only %d of %d engines registered within %g s")
        :format(#new, n, timeout or 60)}, 0)
    end
    self:pump(0.05)
  end
end

-- Pump until every task we submitted has answered; false on timeout.
function Client:wait(timeout)
  util.check(timeout, 1, "wait", "number", "nil")
  local deadline = timeout and core.now() + timeout
  local looked = false
  while next(self.pending) ~= nil and not self.closed and not self.lost do
    local left = deadline and deadline - core.now()
    if left and left <= 0 then
      if looked then return false end
      left = 0
    end
    self:pump(left)
    looked = true
  end
  return next(self.pending) == nil
end

-- Close the connection (stopping the cluster when plush.connect started it
-- for us). Tasks still in flight fail with EngineError.
function Client:close()
  if self.closed then return end
  local w = self._interrupt_wait
  if w and not w.done and not self.lost then
    local deadline = core.now() + 2
    while not w.done and not self.lost and core.now() < deadline do
      -- another Ctrl-C meanwhile (raised here as Interrupted) changes nothing
      local ok, e = pcall(self.pump, self, deadline - core.now())
      if not ok and not errors.is(e, "Interrupted") then break end
    end
  end
  if self.owned then
    pcall(function() require("plush.cluster").stop_owned(self) end)
  end
  -- 10^5 tasks in flight (a farm left after Ctrl-C) are one line, not
  -- 10^5 reports as their Deferreds are collected
  local unseen = self:_fail_all(function(d)
    return errors.EngineError{engine = d._engine, message = "the client was closed"}
  end, true)
  if unseen > 0 then
    pcall(deferred.on_unhandled, ("%d task%s in flight failed (EngineError: the client was closed)")
      :format(unseen, unseen == 1 and "" or "s"), nil, "rc:close()")
  end
  for rid, waiter in pairs(self.waiting) do
    self.waiting[rid] = nil
    if waiter.d then waiter.d:errback(errors.EngineError{message = "the client was closed"}) end
  end
  self.closed = true
  pcall(self.conn.close, self.conn)
end

function Client:__tostring()
  local info = self.info
  if info then
    return ("<plush.Client %s:%s %s>"):format(tostring(info.host),
      tostring(info.port), tostring(info.profile or ""))
  end
  return "<plush.Client>"
end

mt.__tostring = Client.__tostring
mt.__close = function(self) self:close() end
mt.__gc = function(self)
  if not self.closed then pcall(self.close, self) end
end

return client
