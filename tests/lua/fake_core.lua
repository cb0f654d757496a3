-- fake_core: an in-memory stand-in for the plush.core C module, so that the
-- client library can be tested without a controller or engines.
--
-- Engines are namespaces (tables) in this Lua state; a request runs when it
-- is submitted, but its output and reply become visible only through
-- conn:poll, at the virtual time the task would have finished. Time is
-- virtual: it moves only when poll waits (for the next event or for its
-- timeout), and engine code can spend it with sleep(s). So "wait 5 s" in a
-- test takes no real time, and task order is deterministic.
--
--   local fake = require "fake_core"
--   fake.install()          -- package.loaded["plush.core"] = fake.core
--   fake.reset{n = 4}       -- 4 engines, ids 0..3, clock at 0
--   local rc = fake.client()
--
-- What it must not do is drift from the real wire: values cross it through
-- the real codec (the C module's encode/decode), and the statuses, error
-- kinds and messages it produces are the real controller's and engines'
-- (tests/lua/e2e_parity_spec.lua runs the same requests on both and fails
-- on any difference).
local fake = {}
local core = {_fake = true}
fake.core = core

-- The real plush.core (build/lua/plush/core.so on package.cpath), for its
-- codec, even when this fake stands in for it already.
local real = package.loaded["plush.core"]
if type(real) ~= "table" or real._fake then
  local saved = package.loaded["plush.core"]
  package.loaded["plush.core"] = nil
  local ok, m = pcall(require, "plush.core")
  package.loaded["plush.core"] = saved
  if not ok then
    error("fake_core needs the real plush.core on package.cpath for its codec: " .. tostring(m))
  end
  real = m
end
fake.real = real

local state

-- Decoded functions see the receiver's globals: here an engine's
-- namespace (a table of this state), so their _ENV is set to it.
local function rebind(v, env, seen)
  local t = type(v)
  if (t ~= "table" and t ~= "function") or seen[v] then return end
  seen[v] = true
  if t == "table" then
    for k, x in next, v do
      rebind(k, env, seen)
      rebind(x, env, seen)
    end
  elseif debug.getinfo(v, "S").what == "Lua" then
    for i = 1, math.huge do
      local name, x = debug.getupvalue(v, i)
      if not name then break end
      if name == "_ENV" then debug.setupvalue(v, i, env) else rebind(x, env, seen) end
    end
  end
end

--[[
  Copy a value "across the wire": encoded and decoded by the real codec
  (root names the value in a refusal, as the real core does: "request",
  "result"), its functions bound to env's globals (nil: this state's).
]]
local function transfer(v, root, env)
  local ok, s = pcall(real.encode, v, root)
  if not ok then error(s, 0) end
  local c = real.decode(s)
  if env and env ~= _G then rebind(c, env, {}) end
  return c
end

local function schedule(conn, t, ev)
  state.seq = state.seq + 1
  ev.t, ev.seq = t, state.seq
  conn.queue[#conn.queue + 1] = ev
end

-- Namespaces -----------------------------------------------------------------

local function new_engine(id)
  local e = {id = id, alive = true, busy_until = 0}
  local env = {}
  env.engine = {id = id, pid = 10000 + id, host = "fakehost"}
  env.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    e.emit(1, table.concat(parts, "\t") .. "\n")
  end
  -- one write, one output event, as the engine's capture sends it
  local function text(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    return table.concat(parts)
  end
  env.io = setmetatable({
    write = function(...) e.emit(1, text(...)) end,
    stderr = {write = function(_, ...) e.emit(2, text(...)) end},
  }, {__index = io})
  local has_cjson, cjson = pcall(require, "cjson")
  env.cjson = has_cjson and cjson or nil
  -- virtual time spent by the task
  env.sleep = function(s) e.spend(s) end
  e.env = setmetatable(env, {__index = _G})
  return e
end
fake.new_engine = new_engine

local function get_path(env, path)
  local v = env
  for part in path:gmatch("[^%.]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  return v
end

local Timeout = {}

-- The globals of a stock engine state (besides print and io, its own).
local STANDARD = {}
for w in ([[_G _VERSION assert cjson collectgarbage coroutine debug dofile
  error getmetatable ipairs load loadfile math next os package pairs pcall
  rawequal rawget rawlen rawset require select setmetatable string table
  tonumber tostring type utf8 warn xpcall]]):gmatch("%S+") do
  STANDARD[w] = true
end

-- The engine's "names" op: the identifiers under a dotted prefix, from a
-- value's own keys and along its __index chain, full names, sorted.
local function names(e, pre)
  local path, part = pre:match("^(.*)%.([^.]*)$")
  local v
  if path then v = get_path(e.env, path) else part, v = pre, nil end
  local found = {}
  local function take(k)
    if type(k) == "string" and k:sub(1, #part) == part and k:match("^[%a_][%w_]*$") then
      found[k] = true
    end
  end
  if path then
    for _ = 1, 8 do
      if type(v) == "table" then for k in next, v do take(k) end end
      local mt = getmetatable(v)
      if not mt then break end
      v = rawget(mt, "__index")
    end
  else
    for k in next, e.env do if k ~= "sleep" then take(k) end end
    for k in pairs(STANDARD) do take(k) end
  end
  local r = {}
  for k in pairs(found) do r[#r + 1] = path and path .. "." .. k or k end
  table.sort(r)
  return r
end

-- Run request id on engine e. Returns status, payload, output list.
local function execute(e, id, msg, start, timeout)
  local outputs, spent = {}, 0
  e.emit = function(stream, text) outputs[#outputs + 1] = {start + spent, stream, text} end
  e.spend = function(s)
    if timeout and spent + s > timeout then
      spent = timeout
      error(Timeout)
    end
    spent = spent + s
  end
  local env = e.env
  local tb
  local function body()
    local op = msg.op
    if op == "exec" then
      local f, err = load(msg.code, "=" .. (msg.name or "execute"), "t", env)
      if not f then
        tb = "" -- no traceback for a chunk that did not compile
        error(err, 0)
      end
      return table.pack(f())
    elseif op == "apply" then
      return table.pack(msg.f(table.unpack(msg.args, 1, msg.args.n)))
    elseif op == "push" then
      for k, v in pairs(msg.ns) do env[k] = v end
      return {n = 0}
    elseif op == "pull" then
      local r = {n = #msg.names}
      for i, name in ipairs(msg.names) do r[i] = get_path(env, name) end
      return r
    elseif op == "map" then
      -- a plush.array chunk: the engine's array map (core/array.c)
      if type(msg.items) == "userdata" then return msg.items:map(msg.f) end
      local r = {n = msg.n}
      for i = 1, msg.n do r[i] = msg.f(msg.items[i]) end
      return r
    elseif op == "names" then
      return names(e, msg.prefix)
    end
  end
  local times = {started = 1.7e9 + start}
  if not ({exec = 1, apply = 1, push = 1, pull = 1, map = 1, names = 1})[msg.op] then
    e.emit, e.spend = nil, nil
    times.completed = times.started
    return "badreq", {kind = "BadRequest", engine = e.id,
      message = ("unknown op '%s'"):format(tostring(msg.op)),
      started = times.started, completed = times.completed}, outputs, start
  end
  local ok, r = xpcall(body, function(err)
    if err ~= Timeout and tb == nil then tb = debug.traceback(nil, 2) end
    return err
  end)
  e.emit, e.spend = nil, nil
  local done = start + spent
  if ok then
    -- the result is encoded on the engine: what cannot travel fails there
    local sent, why = pcall(real.encode, r, "result")
    if sent then
      return "ok", {r = r, started = 1.7e9 + start, completed = 1.7e9 + done}, outputs, done
    end
    return "error", {kind = "RemoteError", engine = e.id, message = why, traceback = "",
      started = 1.7e9 + start, completed = 1.7e9 + done}, outputs, done
  elseif r == Timeout then
    return "timeout", {kind = "TimeoutError", engine = e.id,
      message = ("task %d timed out; its engine was interrupted"):format(id)}, outputs, done
  end
  local message = (type(r) == "string" or type(r) == "number") and tostring(r)
    or ("(error object is a %s value)"):format(type(r))
  local chunk, line = message:match("^([^:\n]+):(%d+):")
  return "error", {kind = "RemoteError", engine = e.id, message = message,
    traceback = tb, chunk = chunk, line = math.tointeger(tonumber(line)),
    value = type(r) ~= "string" and r or nil,
    started = 1.7e9 + start, completed = 1.7e9 + done}, outputs, done
end

-- The engine a balanced task goes to: the first one free, lowest id first.
local function pick(n)
  local best
  for _, id in ipairs(fake.ids()) do
    local e = state.engines[id]
    if not best or e.busy_until < best.busy_until then best = e end
  end
  return best, n
end

-- Connections ----------------------------------------------------------------

local Conn = {}
Conn.__index = Conn
Conn.__name = "fake.conn"

function Conn:cid() return self.id end

function Conn:_one(target, msg, timeout)
  state.task_seq = state.task_seq + 1
  local id = (self.id << 32) | state.task_seq
  local e
  if target == nil then
    e = pick()
    if not e then
      schedule(self, state.clock, {kind = "reply", id = id, engine = -1, status = "badreq",
        value = {kind = "BadRequest", message = "no engines"}})
      return id
    end
  else
    e = state.engines[target]
    if e and not e.alive then -- as the controller: an engine that left
      local value = {kind = "EngineError", engine = target, left = true,
        message = ("engine %s is not connected"):format(tostring(target))}
      state.store[id] = {status = "engine", value = value, engine = target}
      state.order[#state.order + 1] = id
      schedule(self, state.clock, {kind = "reply", id = id, engine = target, status = "engine",
        value = transfer(value, "reply")})
      return id
    elseif not e then
      schedule(self, state.clock, {kind = "reply", id = id, engine = target, status = "badreq",
        value = {kind = "BadRequest", engine = target,
                 message = "unknown engine " .. tostring(target)}})
      return id
    end
  end
  local m = transfer(msg, "request", e.env)
  state.submitted[#state.submitted + 1] = {id = id, engine = e.id, target = target,
    msg = m, timeout = timeout}
  local start = math.max(state.clock, e.busy_until)
  local status, payload, outputs, done = execute(e, id, m, start, timeout)
  e.busy_until = done + 1e-6
  for _, o in ipairs(outputs) do
    schedule(self, o[1], {kind = "output", id = id, engine = e.id, stream = o[2], text = o[3]})
  end
  payload = transfer(payload, "reply")
  state.store[id] = {status = status, value = payload, engine = e.id}
  state.order[#state.order + 1] = id
  state.tasks[id] = {conn = self, engine = e.id}
  -- attempts: how many times the task started (the real controller's
  -- count, in the reply's header)
  schedule(self, done + 1e-6, {kind = "reply", id = id, engine = e.id, status = status,
    value = payload, attempts = status ~= "timeout" and 1 or nil})
  return id
end

-- Scheduling options (retries, after, targets) are the real controller's
-- business: the fake records them for the specs to check, and runs the
-- task at once (tests/lua/e2e_farm_spec.lua checks the behaviour).
-- Operational failures come back as the real core's do: nil, "ENAME:
-- message", "ENAME".
function Conn:submit(target, msg, timeout, sched)
  if not self.open then return nil, "ECLOSED: not connected: closed", "ECLOSED" end
  -- encode once, refuse before sending anything
  transfer(msg, "request")
  local n0 = #state.submitted
  local ids
  if type(target) == "table" then
    ids = {}
    for i, t in ipairs(target) do ids[i] = self:_one(t, msg, timeout) end
  else
    ids = self:_one(target, msg, timeout)
  end
  for i = n0 + 1, #state.submitted do state.submitted[i].sched = sched end
  return ids
end

-- conn:apply(target, f, timeout, sched, ...): the request
-- {op = "apply", f = f, args = table.pack(...)} (lua_send.c writes it
-- without those tables)
function Conn:apply(target, f, timeout, sched, ...)
  if type(f) == "string" then return self:exec(target, f, timeout, sched, ...) end
  if type(f) ~= "function" then
    error("bad argument #2 to 'apply' (function expected, got " .. type(f) .. ")", 2)
  end
  return self:submit(target, {op = "apply", f = f, args = table.pack(...)}, timeout, sched)
end

-- conn:exec(target, code, timeout, sched [, name [, auto]]): the request
-- {op = "exec", code = code, name = name, auto = auto or nil} (lua_send.c
-- writes it without the table)
function Conn:exec(target, code, timeout, sched, name, auto)
  if type(code) ~= "string" then
    error("bad argument #2 to 'exec' (string expected, got " .. type(code) .. ")", 2)
  end
  return self:submit(target, {op = "exec", code = code, name = name, auto = auto or nil},
    timeout, sched)
end

local ctrl_ops = {}

function ctrl_ops.ids() return "ok", fake.ids() end

function ctrl_ops.engines()
  local list = {}
  for _, id in ipairs(fake.ids()) do
    local e = state.engines[id]
    list[#list + 1] = {id = id, pid = 10000 + id, host = "fakehost",
      state = e.busy_until > state.clock and "busy" or "idle", queue = 0}
  end
  return "ok", list
end

local function badreq(message) return "badreq", {kind = "BadRequest", message = message} end

function ctrl_ops.result(msg)
  local id = math.tointeger(msg.id) or 0
  local r = state.store[id]
  if not r then return badreq(("no result for task %d"):format(id)) end
  return r.status, transfer(r.value, "result")
end

-- The ids of msg.targets that are live engines (all of them without).
local function live_targets(msg)
  if type(msg.targets) ~= "table" then return fake.ids() end
  local ids = {}
  for _, id in ipairs(msg.targets) do
    local e = math.type(id) == "integer" and state.engines[id]
    if e and e.alive then ids[#ids + 1] = id end
  end
  return ids
end

function ctrl_ops.interrupt(msg)
  state.interrupts[#state.interrupts + 1] = {targets = msg.targets}
  return "ok", {interrupted = live_targets(msg)}
end

-- A fresh namespace on each target.
function ctrl_ops.restart(msg)
  local ids = live_targets(msg)
  for _, id in ipairs(ids) do state.engines[id] = fake.new_engine(id) end
  return "ok", {restarted = ids}
end

-- A fresh namespace on each target (all when none); the ids restarted.
function ctrl_ops.restart(msg)
  local ids = msg.targets or fake.ids()
  local done = {}
  for _, id in ipairs(ids) do
    if state.engines[id] and state.engines[id].alive then
      state.engines[id] = new_engine(id)
      done[#done + 1] = id
    end
  end
  return "ok", {restarted = done}
end

function ctrl_ops.queue_status()
  local engines = {}
  for _, id in ipairs(fake.ids()) do engines[id] = {queue = 0} end
  return "ok", {unassigned = 0, engines = engines}
end

-- Stored ids in the order their replies were stored; limit: the newest.
function ctrl_ops.history(msg)
  local ids, limit = {}, math.tointeger(msg.limit) or 0
  local from = limit > 0 and math.max(1, #state.order - limit + 1) or 1
  for i = from, #state.order do ids[#ids + 1] = state.order[i] end
  return "ok", ids
end

local CODES = {ok = 0, error = 1, engine = 2, timeout = 3, badreq = 4}

function ctrl_ops.records()
  local list = {}
  for _, id in ipairs(state.order) do
    local r = state.store[id]
    list[#list + 1] = {id = id, client = id >> 32, engine = r.engine,
      status = CODES[r.status], reply = real.encode(r.value)}
  end
  return "ok", list
end

function ctrl_ops.status()
  return "ok", {engines = #fake.ids(), clients = #state.conns, pending = 0, queued = 0,
    stored = #state.order, stored_bytes = 0, relayed = 0, relay_void = 0, teed = 0, stolen = 0,
    parked = 0, spilled = 0, stalled = 0, checkpoints = 0, checkpoints_busy = 0,
    pid = 4242, uptime = state.clock}
end

function ctrl_ops.shutdown(msg)
  if type(msg.targets) == "table" then
    local ids = live_targets(msg)
    for _, id in ipairs(ids) do fake.kill(id, "shut down") end
    return "ok", {stopped = ids}
  end
  state.shutdown = true
  return "ok", {ok = true}
end

function ctrl_ops.add(msg)
  local n = math.tointeger(msg.n)
  if not n or n < 1 or n > 4096 then
    return badreq("add: n must be a count of engines from 1 to 4096")
  end
  local next_id = 0
  for id in pairs(state.engines) do next_id = math.max(next_id, id + 1) end
  for i = 0, n - 1 do fake.add(next_id + i) end
  return "ok", {launched = n}
end

-- Checked for shape as the controller does, then answered.
function Conn:ctrl(msg)
  if not self.open then return nil, "ECLOSED: not connected: closed", "ECLOSED" end
  msg = transfer(msg, "request")
  state.task_seq = state.task_seq + 1
  local rid = (self.id << 32) | state.task_seq
  state.ctrls[#state.ctrls + 1] = msg
  local op = type(msg) == "table" and msg.op or nil
  local status, value
  if type(op) ~= "string" then
    status, value = badreq(type(msg) == "table" and "control request without a string op"
      or "control request is not a table")
  elseif not ctrl_ops[op] then
    status, value = badreq(("unknown control op '%s'"):format(op:sub(1, 60)))
  else
    status, value = ctrl_ops[op](msg)
  end
  schedule(self, state.clock, {kind = "ctrl", id = rid, status = status,
    value = transfer(value, "reply")})
  return rid
end

local function due(conn)
  local out, rest = {}, {}
  for _, ev in ipairs(conn.queue) do
    if ev.t <= state.clock + 1e-12 then out[#out + 1] = ev else rest[#rest + 1] = ev end
  end
  table.sort(out, function(a, b)
    if a.t ~= b.t then return a.t < b.t end
    return a.seq < b.seq
  end)
  conn.queue = rest
  for _, ev in ipairs(out) do ev.t, ev.seq = nil, nil end
  return out
end

function Conn:poll(timeout)
  state.polls = state.polls + 1
  if state.sigint and state.catching then
    state.sigint = false
    return {{kind = "sigint"}}
  end
  local evs = due(self)
  if #evs > 0 or timeout == 0 then return evs end
  local next_t
  for _, ev in ipairs(self.queue) do
    if not next_t or ev.t < next_t then next_t = ev.t end
  end
  if not next_t and timeout == nil then
    error("fake poll would block forever (nothing pending)", 2)
  end
  if next_t and (timeout == nil or next_t <= state.clock + timeout) then
    state.clock = math.max(state.clock, next_t)
  else
    state.clock = state.clock + timeout
  end
  return due(self)
end

function Conn:close()
  self.open = false
end

function Conn:connected() return self.open end

Conn.__gc = Conn.close
Conn.__close = Conn.close

-- The module ------------------------------------------------------------------

function core.connect(host, port, key, timeout)
  if state.refuse then
    return nil, ("ECONNREFUSED: cannot connect to %s:%s: connection refused"):format(host, port),
      "ECONNREFUSED"
  end
  state.conn_seq = state.conn_seq + 1
  local c = setmetatable({id = state.conn_seq, queue = {}, open = true,
    host = host, port = port, key = key, timeout = timeout}, Conn)
  state.conns[#state.conns + 1] = c
  return c
end

function core.now() return state.clock end
function core.time() return 1.7e9 + state.clock end
function core.sleep(s) state.clock = state.clock + s end
function core.getpid() return 4242 end
function core.hostname() return "fakehost" end
function core.ncpu() return 4 end
function core.filemode() return 384 end -- 0600: the specs' files are private
function core.isatty() return false end
function core.bindirs() return {} end
function core.alive(pid) return pid == 4242 or state.alive_pids[pid] == true end
function core.kill(pid) state.alive_pids[pid] = nil return true end
function core.wait() return 0 end
function core.spawn() error("fake core cannot spawn", 2) end
function core.catch_sigint(on) state.catching = on and true or false end
function core.sigint()
  local s = state.sigint
  state.sigint = false
  return s
end
core.encode, core.decode, core.slice = real.encode, real.decode, real.slice
core.array_open = real.array_open
core.table, core.append = real.table, real.append

-- Test controls ---------------------------------------------------------------

function fake.reset(opts)
  opts = opts or {}
  state = {
    clock = 0, seq = 0, task_seq = 0, conn_seq = 0, polls = 0,
    engines = {}, conns = {}, store = {}, order = {}, tasks = {}, submitted = {}, ctrls = {},
    interrupts = {}, alive_pids = {}, catching = false, sigint = false,
  }
  for id = 0, (opts.n or 4) - 1 do state.engines[id] = new_engine(id) end
  fake.state = state
  return fake
end

function fake.install()
  package.loaded["plush.core"] = core
  return fake
end

function fake.ids()
  local ids = {}
  for id, e in pairs(state.engines) do
    if e.alive then ids[#ids + 1] = id end
  end
  table.sort(ids)
  return ids
end

-- A Client on a fresh fake connection.
function fake.client(opts)
  local client = require "plush.client"
  return client.new(core.connect("127.0.0.1", 5555, "00"), opts)
end

-- The namespace of engine `id` (to look at or to set up).
function fake.env(id) return state.engines[id].env end

-- An engine dies (opts.why: the controller's reason, "connection closed
-- by peer" by default): its unfinished tasks fail with "engine", clients
-- hear engine_down (not yet with opts.unheard: the event is still on its
-- way when the client next sends). A string opts is the reason.
function fake.kill(id, opts)
  if type(opts) == "string" then opts = {why = opts} end
  local why = opts and opts.why or "connection closed by peer"
  local e = state.engines[id]
  e.alive = false
  for _, conn in ipairs(state.conns) do
    local keep = {}
    for _, ev in ipairs(conn.queue) do
      if ev.engine == id and ev.t > state.clock then
        if ev.kind == "reply" then
          ev.t, ev.status = state.clock, "engine"
          ev.value = {kind = "EngineError", engine = id,
            message = ("engine %d died (pid %d): %s"):format(id, 10000 + id, why)}
          state.store[ev.id] = {status = "engine", value = ev.value, engine = id}
          keep[#keep + 1] = ev
        end
      else
        keep[#keep + 1] = ev
      end
    end
    conn.queue = keep
    if not (opts and opts.unheard) then
      schedule(conn, state.clock, {kind = "event",
        value = {event = "engine_down", id = id, reason = why}})
    end
  end
end

-- A new engine registers.
function fake.add(id)
  state.engines[id] = new_engine(id)
  for _, conn in ipairs(state.conns) do
    schedule(conn, state.clock, {kind = "event", value = {event = "engine_up", id = id}})
  end
end

-- The controller goes away.
function fake.drop(message)
  for _, conn in ipairs(state.conns) do
    conn.queue = {}
    schedule(conn, state.clock, {kind = "closed", message = message or "connection reset"})
    conn.open = false
  end
end

-- Ctrl-C: the next poll with catch_sigint on returns a sigint event.
function fake.sigint() state.sigint = true end

function fake.clock() return state.clock end

fake.reset()
return fake
