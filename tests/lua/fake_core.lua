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
local fake = {}
local core = {}
fake.core = core

local state

local function copy_ctx(env) return {seen = {}, env = env} end

--[[
  Copy a value "across the wire": tables deep (cycles and sharing kept,
  metatables dropped), Lua functions re-loaded from their bytecode with the
  destination's _ENV and their other upvalues copied by value, C functions
  as they are; threads and userdata are refused, naming where they sit.
]]
local function transfer(v, ctx, path)
  local t = type(v)
  if t == "table" then
    if ctx.seen[v] then return ctx.seen[v] end
    local c = {}
    ctx.seen[v] = c
    for k, x in next, v do
      c[transfer(k, ctx, path .. "<key>")] = transfer(x, ctx, path .. "[" .. tostring(k) .. "]")
    end
    return c
  elseif t == "function" then
    if ctx.seen[v] then return ctx.seen[v] end
    if debug.getinfo(v, "S").what == "C" then return v end
    local g = load(string.dump(v), nil, "b", ctx.env)
    ctx.seen[v] = g
    local i = 1
    while true do
      local name, x = debug.getupvalue(v, i)
      if not name then break end
      if name == "_ENV" then
        debug.setupvalue(g, i, ctx.env)
      else
        debug.setupvalue(g, i, transfer(x, ctx, path .. "<upvalue " .. name .. ">"))
      end
      i = i + 1
    end
    return g
  elseif t == "thread" or t == "userdata" then
    error(("cannot serialise %s: %s"):format(path, t), 0)
  end
  return v
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
  local builtin = {}
  env.engine = {id = id, pid = 10000 + id, host = "fakehost"}
  env.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    e.emit(1, table.concat(parts, "\t") .. "\n")
  end
  env.io = setmetatable({
    write = function(...)
      for i = 1, select("#", ...) do e.emit(1, tostring((select(i, ...)))) end
    end,
    stderr = {write = function(_, ...)
      for i = 1, select("#", ...) do e.emit(2, tostring((select(i, ...)))) end
    end},
  }, {__index = io})
  -- virtual time spent by the task
  env.sleep = function(s) e.spend(s) end
  for k in pairs(env) do builtin[k] = true end
  e.env = setmetatable(env, {__index = _G})
  e.builtin = builtin
  return e
end

local function get_path(env, path)
  local v = env
  for part in path:gmatch("[^%.]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  return v
end

local Timeout = {}

-- Run one request on engine e. Returns status, payload, output list.
local function execute(e, msg, start, timeout)
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
  local function body()
    local op = msg.op
    if op == "exec" then
      local f, err = load(msg.code, "=" .. (msg.name or "execute"), "t", env)
      if not f then error(err, 0) end
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
      local r = {n = msg.n}
      for i = 1, msg.n do r[i] = msg.f(msg.items[i]) end
      return r
    elseif op == "names" then
      local names = {}
      for k in pairs(env) do
        if type(k) == "string" and not e.builtin[k] and k:sub(1, #msg.prefix) == msg.prefix then
          names[#names + 1] = k
        end
      end
      table.sort(names)
      return {n = 1, names}
    end
    error("unknown op " .. tostring(op), 0)
  end
  local tb
  local ok, r = xpcall(body, function(err)
    if err ~= Timeout then tb = debug.traceback(nil, 2) end
    return err
  end)
  e.emit, e.spend = nil, nil
  local done = start + spent
  if ok then
    return "ok", {r = r, started = 1.7e9 + start, completed = 1.7e9 + done}, outputs, done
  elseif r == Timeout then
    return "timeout", {kind = "TimeoutError", engine = e.id,
      message = ("task timed out after %g s"):format(timeout)}, outputs, done
  end
  local message = type(r) == "string" and r or ("(error object is a %s value)"):format(type(r))
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
      schedule(self, state.clock, {kind = "reply", id = id, engine = target, status = "engine",
        value = {kind = "EngineError", engine = target, left = true,
                 message = "engine " .. tostring(target) .. " is not connected"}})
      return id
    elseif not e then
      schedule(self, state.clock, {kind = "reply", id = id, engine = target, status = "badreq",
        value = {kind = "BadRequest", message = "unknown engine " .. tostring(target)}})
      return id
    end
  end
  local m = transfer(msg, copy_ctx(e.env), "msg")
  state.submitted[#state.submitted + 1] = {id = id, engine = e.id, target = target,
    msg = m, timeout = timeout}
  local start = math.max(state.clock, e.busy_until)
  local status, payload, outputs, done = execute(e, m, start, timeout)
  e.busy_until = done + 1e-6
  for _, o in ipairs(outputs) do
    schedule(self, o[1], {kind = "output", id = id, engine = e.id, stream = o[2], text = o[3]})
  end
  payload = transfer(payload, copy_ctx(_G), "reply")
  state.store[id] = {status = status, value = payload}
  state.tasks[id] = {conn = self, engine = e.id}
  schedule(self, done + 1e-6, {kind = "reply", id = id, engine = e.id, status = status,
    value = payload})
  return id
end

-- Scheduling options (retries, after, targets) are the real controller's
-- business: the fake records them for the specs to check, and runs the
-- task at once (tests/lua/e2e_farm_spec.lua checks the behaviour).
function Conn:submit(target, msg, timeout, sched)
  if not self.open then error("connection closed", 2) end
  -- encode once, refuse before sending anything
  transfer(msg, copy_ctx(_G), "msg")
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

function ctrl_ops.result(msg)
  local r = state.store[msg.id]
  if not r then
    return "badreq", {kind = "BadRequest", message = "unknown task " .. tostring(msg.id)}
  end
  return r.status, transfer(r.value, copy_ctx(_G), "result")
end

function ctrl_ops.interrupt(msg)
  state.interrupts[#state.interrupts + 1] = {targets = msg.targets}
  return "ok", {interrupted = msg.targets or fake.ids()}
end

function ctrl_ops.queue_status()
  local engines = {}
  for _, id in ipairs(fake.ids()) do engines[id] = {queue = 0} end
  return "ok", {unassigned = 0, engines = engines}
end

function ctrl_ops.history()
  local ids = {}
  for id in pairs(state.store) do ids[#ids + 1] = id end
  table.sort(ids)
  return "ok", ids
end

function ctrl_ops.status()
  local stored = 0
  for _ in pairs(state.store) do stored = stored + 1 end
  return "ok", {engines = #fake.ids(), clients = #state.conns, pending = 0,
    stored = stored, pid = 4242, uptime = state.clock}
end

function ctrl_ops.shutdown()
  state.shutdown = true
  return "ok", {ok = true}
end

function Conn:ctrl(msg)
  if not self.open then error("connection closed", 2) end
  state.ctrl_seq = state.ctrl_seq + 1
  local rid = state.ctrl_seq
  state.ctrls[#state.ctrls + 1] = msg
  local f = ctrl_ops[msg.op]
  local status, value
  if f then
    status, value = f(msg)
  else
    status, value = "badreq", {kind = "BadRequest", message = "unknown op " .. tostring(msg.op)}
  end
  schedule(self, state.clock, {kind = "ctrl", id = rid, status = status, value = value})
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
    error(("cannot connect to %s:%s: connection refused"):format(host, port), 2)
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
function core.encode(v) return transfer(v, copy_ctx(_G), "v") end
function core.decode(v) return v end

-- Test controls ---------------------------------------------------------------

function fake.reset(opts)
  opts = opts or {}
  state = {
    clock = 0, seq = 0, task_seq = 0, ctrl_seq = 0, conn_seq = 0, polls = 0,
    engines = {}, conns = {}, store = {}, tasks = {}, submitted = {}, ctrls = {},
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

-- An engine dies: its unfinished tasks fail with "engine", clients hear
-- engine_down (not yet with {unheard = true}: the event is still on its
-- way when the client next sends).
function fake.kill(id, opts)
  local e = state.engines[id]
  e.alive = false
  for _, conn in ipairs(state.conns) do
    local keep = {}
    for _, ev in ipairs(conn.queue) do
      if ev.engine == id and ev.t > state.clock then
        if ev.kind == "reply" then
          ev.t, ev.status = state.clock, "engine"
          ev.value = {kind = "EngineError", engine = id, message = "engine " .. id .. " died"}
          keep[#keep + 1] = ev
        end
      else
        keep[#keep + 1] = ev
      end
    end
    conn.queue = keep
    if not (opts and opts.unheard) then
      schedule(conn, state.clock, {kind = "event", value = {event = "engine_down", id = id}})
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
