-- Parity: tests/lua/fake_core.lua, the stand-in for plush.core that the unit
-- specs run against, must answer every request as the real wire does. Each
-- case below sends the same requests through the real core to a real
-- cluster and through the fake, and compares what comes back event by
-- event: kinds, statuses, error kinds and messages, values (math.type
-- included). Only what cannot be the same is set aside: task ids (named by
-- their order), times, process ids and host names (their types compared),
-- traceback text (empty or not). A difference fails here, so the fake
-- cannot drift from the behaviour the unit specs rely on.
--
-- Runs with the e2e specs (tests/e2e/lua_specs.sh: a fresh cluster of three
-- engines, PLUSH_TEST_FILE).
local plush, file = require("real_cluster")("e2e parity")
if not plush then return end
local core = require "plush.core"
local fake = require "fake_core"
local cjson = require "cjson"

-- A canonical rendering: keys sorted, numbers with their subtype, task ids
-- as "<task k>", volatile fields as their type.
local VOLATILE = {started = true, completed = true, pid = true, host = true, uptime = true}

local function render(v, ids, key)
  local t = type(v)
  if key and VOLATILE[key] then return "<" .. t .. ">" end
  if key == "traceback" then return v == "" and '""' or "<traceback>" end
  if t == "number" then
    if ids[v] then return ids[v] end
    return math.type(v) .. ":" .. (math.type(v) == "float" and ("%.17g"):format(v) or tostring(v))
  elseif t == "string" then
    return ("%q"):format((v:gsub("%d%d%d%d%d%d%d%d%d+", function(d)
      return ids[math.tointeger(tonumber(d))] or d
    end)))
  elseif t == "table" then
    local keys, out = {}, {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      if type(a) ~= type(b) then return type(a) < type(b) end
      return a < b
    end)
    for _, k in ipairs(keys) do
      out[#out + 1] = "[" .. render(k, ids) .. "]=" .. render(v[k], ids, k)
    end
    return "{" .. table.concat(out, ", ") .. "}"
  end
  return "<" .. t .. ">"
end

-- One side of a comparison: its connection, the task ids it has seen (named
-- in order), and every event for them, rendered.
local function side(conn)
  local s = {conn = conn, names = {}, n = 0, got = {}}
  local function name(id)
    if not s.names[id] then
      s.n = s.n + 1
      s.names[id] = "<task " .. s.n .. ">"
    end
  end
  -- Polls until each of ids has its reply (or ctrl answer).
  function s.wait(ids, limit)
    local left, want = 0, {}
    for _, id in ipairs(ids) do
      name(id)
      want[id] = true
      left = left + 1
    end
    local deadline = core.now() + (limit or 20)
    while left > 0 do
      assert(core.now() < deadline, "no answer in time")
      for _, ev in ipairs(conn:poll(1)) do
        if want[ev.id] then
          local id = ev.id
          ev.id = nil
          s.got[#s.got + 1] = s.names[id] .. " " .. render(ev, s.names)
          if ev.kind ~= "output" then left = left - 1 end
        end
      end
    end
  end
  return s
end

local real_conn, engines

local function connect_real()
  local f = assert(io.open(file))
  local cf = cjson.decode(f:read("a"))
  f:close()
  return core.connect(cf.host, cf.port, cf.key, 20)
end

-- Runs case(side, "real" or "fake") on both: what each side saw. The fake
-- side gets a fresh fake cluster of as many engines.
local function both(case)
  local r = side(real_conn)
  case(r, "real")
  fake.reset{n = #engines}
  local fconn = fake.core.connect("127.0.0.1", 1, "00", 1)
  local f = side(fconn)
  case(f, "fake")
  fconn:close()
  return table.concat(r.got, "\n"), table.concat(f.got, "\n")
end

local function same(case)
  local r, f = both(case)
  assert.equal(r, f)
  return r
end

local function submit(target, msg, timeout)
  return function(s) s.wait{s.conn:submit(target, msg, timeout)} end
end

local function ctrl(msg)
  return function(s) s.wait{s.conn:ctrl(msg)} end
end

describe("the fake core answers as the real one", function()
  setup(function()
    real_conn = connect_real()
    local s = side(real_conn)
    s.wait{real_conn:ctrl{op = "ids"}}
    engines = {}
    for id in s.got[1]:gmatch("%]=integer:(%d+)") do engines[#engines + 1] = tonumber(id) end
    assert.same({0, 1, 2}, engines, "a fresh cluster of three engines")
  end)
  teardown(function() real_conn:close() end)

  it("uses the real codec", function()
    assert.equal(core.encode, fake.core.encode)
    assert.equal(core.decode, fake.core.decode)
    assert.equal(core.slice, fake.core.slice)
  end)

  describe("requests", function()
    it("exec: values of every type and subtype", function()
      same(submit(1, {op = "exec", code = "return 1, 2.5, 'x', nil, true, "
        .. "{1, 2, k = {3}, [1.5] = 'f'}, 2^53, math.maxinteger, 1e300, -0.0, ''"}))
    end)

    it("exec: output in order, each stream", function()
      same(submit(0, {op = "exec", code = "print('a', 1, nil) io.write('b', 2) "
        .. "io.stderr:write('c') print() return 'done'"}))
    end)

    it("exec: a runtime error names its chunk and line", function()
      same(submit(0, {op = "exec", code = "local a = 1\nerror('boom')", name = "cell"}))
    end)

    it("exec: a syntax error", function()
      same(submit(2, {op = "exec", code = "return +"}))
    end)

    it("exec: error values that are not strings", function()
      same(submit(0, {op = "exec", code = "error({code = 1, list = {2}})"}))
      same(submit(0, {op = "exec", code = "error(42)"}))
      same(submit(0, {op = "exec", code = "error()"}))
    end)

    it("exec: a result that cannot travel fails on the engine", function()
      same(submit(1, {op = "exec", code = "return 1, coroutine.create(print)"}))
    end)

    it("the engine's globals", function()
      same(submit(0, {op = "exec", code = "return engine.id, math.type(engine.pid), "
        .. "type(engine.host), type(print), type(io.write), type(cjson), _VERSION"}))
    end)

    it("apply: upvalues by value, nil arguments kept", function()
      local k = {10}
      same(submit(2, {op = "apply", f = function(a, b, c) return a, b, c, k[1] + engine.id end,
        args = table.pack(1, nil, 3)}))
    end)

    it("push, then pull dotted and missing names", function()
      same(function(s)
        s.wait{s.conn:submit(0, {op = "push", ns = {parity_t = {a = {b = 5}}, parity_n = 1.0}})}
        s.wait{s.conn:submit(0, {op = "pull", names = {"parity_t.a.b", "parity_missing",
          "parity_n", "parity_t.a"}})}
      end)
    end)

    it("names: under a prefix, dotted, along __index", function()
      same(function(s)
        s.wait{s.conn:submit(1, {op = "push", ns = {parity_x = 1, parity_y = {z = 1}}})}
        for _, p in ipairs{"parity_", "parity_y.", "string.fo", "parity_nothing.here"} do
          s.wait{s.conn:submit(1, {op = "names", prefix = p})}
        end
      end)
    end)

    it("map", function()
      same(submit(0, {op = "map", f = function(x) return x * 2 end, items = {1, 2.5, 3}, n = 3}))
    end)

    it("an unknown op", function()
      same(submit(0, {op = "nope"}))
    end)

    it("an engine that is not connected", function()
      same(submit(9, {op = "exec", code = "return 1"}))
    end)

    it("a timeout", function()
      -- the fake spends virtual time with sleep(); the real engine spins
      same(function(s, which)
        local code = which == "real" and "while true do end" or "sleep(5)"
        s.wait{s.conn:submit(1, {op = "exec", code = code}, 0.2)}
      end)
      same(submit(1, {op = "exec", code = "return 'after'"}))
    end)

    it("a request that cannot travel is refused before it is sent", function()
      local co = coroutine.create(print)
      local ok1, real_err = pcall(real_conn.submit, real_conn, 0, {op = "apply",
        f = function() return co end, args = {n = 0}})
      fake.reset{n = 3}
      local fconn = fake.core.connect("127.0.0.1", 1, "00", 1)
      local ok2, fake_err = pcall(fconn.submit, fconn, 0, {op = "apply",
        f = function() return co end, args = {n = 0}})
      assert.is_false(ok1)
      assert.is_false(ok2)
      assert.equal(real_err, fake_err)
      assert.equal("cannot serialise request.f<upvalue co>: thread", real_err)
    end)
  end)

  describe("control requests", function()
    it("ids", function() same(ctrl{op = "ids"}) end)

    it("engines, idle", function() same(ctrl{op = "engines"}) end)

    it("queue_status, idle", function() same(ctrl{op = "queue_status"}) end)

    it("status has the same fields", function()
      local r, f = both(ctrl{op = "status"})
      local function fields(s) return (s:gsub("=[^,}]+", "")) end
      assert.equal(fields(r), fields(f))
    end)

    it("result of a finished task, and of none", function()
      same(function(s)
        local id = s.conn:submit(0, {op = "exec", code = "return 'kept', 7"})
        s.wait{id}
        local e = s.conn:submit(0, {op = "exec", code = "error('kept error')"})
        s.wait{e}
        s.wait{s.conn:ctrl{op = "result", id = id}}
        s.wait{s.conn:ctrl{op = "result", id = e}}
        s.wait{s.conn:ctrl{op = "result", id = 5}}
      end)
    end)

    it("history with a limit", function()
      same(function(s)
        s.wait{s.conn:submit(2, {op = "exec", code = "return 1"})}
        s.wait{s.conn:ctrl{op = "history", limit = 1}}
      end)
    end)

    it("interrupt and restart reach the live targets named", function()
      same(ctrl{op = "interrupt", targets = {1, 99, "x"}})
      same(function(s)
        s.wait{s.conn:submit(2, {op = "push", ns = {parity_gone = 1}})}
        s.wait{s.conn:ctrl{op = "restart", targets = {2}}}
        s.wait{s.conn:submit(2, {op = "pull", names = {"parity_gone"}})}
      end)
    end)

    it("bad control requests are refused alike", function()
      same(ctrl{op = "nope"})
      same(ctrl{})
      same(ctrl{op = 7})
      same(ctrl{op = string.rep("y", 100)})
      same(ctrl{op = "add", n = 0})
    end)
  end)
end)
