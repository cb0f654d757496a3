-- End to end: the models of share/doc/models.md on a real cluster
-- (PLUSH_TEST_FILE; at least 3 engines): messages between engines and the
-- tuple space.
local plush, file = require("real_cluster")("e2e models")
if not plush then return end

describe("e2e models", function()
  local rc, ids

  -- waits (bounded) until engine `id` runs the task of Deferred d
  local function running(id, d)
    local deadline = plush.now() + 20
    while plush.now() < deadline do
      for _, e in ipairs(rc:engines()) do
        if e.id == id and e.running == d.id then return end
      end
      rc:pump(0.01)
    end
    error("engine " .. id .. " never ran task " .. tostring(d.id))
  end

  setup(function()
    rc = plush.connect{file = file, timeout = 20}
    ids = rc:ids()
    assert(#ids >= 3, "the model specs need at least 3 engines")
  end)
  teardown(function() rc:close() end)

  describe("engine.send / engine.recv", function()
    it("passes a table around a ring of every engine 1,000 times", function()
      local r = rc:view(ids):apply(function(ring, rounds)
        local n, me = #ring, 0
        for i, id in ipairs(ring) do if id == engine.id then me = i end end
        local nxt, prev = ring[me % n + 1], ring[(me - 2) % n + 1]
        if me == 1 then engine.send(nxt, {hops = 0, seen = {}}) end
        local t, from, tag
        for round = 1, rounds do
          t, from, tag = engine.recv(prev)
          assert(from == prev and tag == nil)
          t.hops = t.hops + 1
          t.seen[engine.id] = (t.seen[engine.id] or 0) + 1
          if me ~= 1 or round < rounds then engine.send(nxt, t) end
        end
        return me == 1 and t or false
      end, ids, 1000)
      assert.equal(1000 * #ids, r[1].hops)
      for _, id in ipairs(ids) do assert.equal(1000, r[1].seen[id]) end
    end)

    it("carries exact values and tags; filters keep the rest in order", function()
      local a, b = ids[1], ids[2]
      rc[a]:execute(([[
        local shared = {1}
        engine.send(%d, {shared, shared, (1 << 53) + 1, 0.1, -0.0}, "x")
        engine.send(%d, "first", 1)
        engine.send(%d, "second", 2)
        engine.send(%d, "third", 1.0)
        engine.send(%d, 0/0, true)
      ]]):format(b, b, b, b, b))
      local r = rc[b]:execute(([[
        local out = {}
        local v, from, tag = engine.recv(%d, 2)
        out[1] = {v, from, tag}
        v, from, tag = engine.recv(nil, "x")
        out[2] = {v[1] == v[2], math.type(v[3]), v[3] == (1 << 53) + 1, v[4] == 0.1,
                  1 / v[5], tag}
        v, from, tag = engine.recv(nil, 1)
        out[3] = {v, math.type(tag)}
        v, from, tag = engine.recv(%d)
        out[4] = {v, tag}
        v, from, tag = engine.recv()
        out[5] = {v ~= v, tag}
        return out
      ]]):format(a, a))
      assert.same({"second", a, 2}, r[1])
      assert.same({true, "integer", true, true, -math.huge, "x"}, r[2])
      assert.same({"first", "integer"}, r[3])
      assert.same({"third", 1}, r[4])
      assert.same({true, true}, r[5])
    end)

    it("recv with a timeout returns nil, 'timeout'", function()
      assert.same({nil, "timeout"},
        {rc[ids[1]]:execute("return engine.recv(nil, 'nothing', 0.05)")})
      assert.same({nil, "timeout"},
        {rc[ids[1]]:execute("return engine.recv(nil, nil, 0)")})
    end)

    it("send to an engine that is not running raises EngineError", function()
      local r = {rc[ids[1]]:execute([[
        local ok, e = pcall(engine.send, 4000000, {})
        return ok, e.kind, e.engine, tostring(e)
      ]])}
      assert.same({false, "EngineError", 4000000}, {r[1], r[2], r[3]})
      assert.matches("EngineError: .*engine.send: engine 4000000 is not running", r[4])
    end)

    it("refuses a value that cannot travel, at the sender", function()
      local ok, e = pcall(rc[ids[1]].execute, rc[ids[1]],
        ("engine.send(%d, {co = coroutine.create(print)})"):format(ids[2]))
      assert.is_false(ok)
      assert.matches("engine.send: cannot serialise value.co: thread", e.message, 1, true)
      ok, e = pcall(rc[ids[1]].execute, rc[ids[1]], ("engine.send(%d, 1, {})"):format(ids[2]))
      assert.is_false(ok)
      assert.matches("a tag is a string, a number or a boolean, not a table", e.message, 1, true)
    end)

    it("an interrupt stops a blocked recv; the engine serves on", function()
      local d = rc[ids[3]]:async():execute("return engine.recv(nil, 'never')")
      running(ids[3], d)
      rc:interrupt(ids[3])
      local ok, e = pcall(d.get, d, 10)
      assert.is_false(ok)
      assert.matches("interrupted", e.message)
      assert.equal(ids[3], rc[ids[3]]:execute("return engine.id"))
    end)

    it("recv from an engine that died raises EngineError", function()
      local new = rc:add(1, 30)[1]
      local d = rc[ids[1]]:async():execute(([[
        local v = engine.recv(%d)           -- its last words first
        local ok, e = pcall(engine.recv, %d)
        return v, ok, e.kind, e.message
      ]]):format(new, new))
      rc[new]:execute(("engine.send(%d, 'bye')"):format(ids[1]))
      rc:shutdown{new}
      local v, ok, kind, msg = d:get(20)
      assert.same({"bye", false, "EngineError"}, {v, ok, kind})
      assert.matches("engine " .. new .. " died", msg)
    end)
  end)

  describe("tuple space", function()
    local ts
    before_each(function()
      ts = plush.tuplespace(rc, "spec-" .. tostring(math.random(1 << 30)))
    end)

    -- the controller's loop stays awake a little after a tuple-space or
    -- message frame (core/ctl_spin.c), and only a little: asleep again, an
    -- idle controller spends next to no CPU
    it("leaves the controller asleep once a run of requests is over", function()
      local core = require "plush.core"
      local f = assert(io.open(file, "rb"))
      local pid = math.tointeger(tonumber(f:read("a"):match('"pid":%s*(%d+)')))
      f:close()
      assert.is_not_nil(pid, "no controller pid in the connection file")
      local p = io.popen("getconf CLK_TCK")
      local tick = tonumber(p:read("l")) or 100
      p:close()
      local function cpu() -- user + system seconds
        local st = assert(io.open("/proc/" .. pid .. "/stat")):read("a")
        local fields = {}
        for x in st:match("%) (.*)"):gmatch("%S+") do fields[#fields + 1] = x end
        return (tonumber(fields[12]) + tonumber(fields[13])) / tick
      end
      for i = 1, 300 do ts:out{"spin", i} end
      for _ = 1, 300 do assert.is_table(ts:try_take{"spin", plush.ANY}) end
      local before = cpu()
      core.sleep(1) -- a window to measure, not a wait for an event
      local used = cpu() - before -- about 1 s spinning all of it
      assert.is_true(used <= 0.25, ("the controller used %.2f s of CPU in 1 s idle")
        :format(used))
    end)

    it("matches values, plush.ANY and types; takes the oldest", function()
      ts:out{"job", 1, {a = {1, 2}}}
      ts:out{"job", 2, {a = {1, 3}}}
      ts:out{"job", 3.5, "s"}
      assert.equal(3, ts:count())
      assert.is_nil(ts:try_take{"job"})                       -- arity
      assert.same({"job", 2, {a = {1, 3}}}, ts:try_read{"job", plush.ANY, {a = {1, 3}}})
      assert.same({"job", 3.5, "s"}, ts:try_take{"job", plush.type "float", plush.ANY})
      assert.same({"job", 1, {a = {1, 2}}}, ts:try_take{"job", plush.type "integer", plush.ANY})
      assert.equal(1, ts:count{"job", 2, plush.type "table"})
      assert.same({"job", 2, {a = {1, 3}}}, ts:take{"job", plush.ANY, plush.ANY}:get(5))
      assert.equal(0, ts:count())
    end)

    it("a pattern whose first field is a value finds the oldest equal tuple", function()
      -- the controller's index by arity and first field: 2 and 2.0 are
      -- equal, tuples of other first fields or arities are not looked at,
      -- and patterns starting with ANY or a type still see every tuple
      ts:out{2.0, "float"}
      ts:out{"other", 1}
      ts:out{2, "integer"}
      ts:out{true, "b"}
      ts:out{2, "three", "fields"}
      assert.same({2.0, "float"}, ts:try_take{2, plush.ANY})
      assert.same({2, "integer"}, ts:try_take{2.0, plush.ANY})
      assert.is_nil(ts:try_take{2, plush.ANY})
      assert.same({true, "b"}, ts:try_read{true, "b"})
      assert.is_nil(ts:try_read{false, "b"})
      assert.same({"other", 1}, ts:try_take{plush.type "string", 1})
      assert.same({true, "b"}, ts:try_take{plush.ANY, "b"})
      assert.same({2, "three", "fields"}, ts:try_take{2, plush.ANY, plush.ANY})
      assert.equal(0, ts:count())
    end)

    it("an engine's pipelined outs are all acknowledged and kept, in order", function()
      -- more than the window of 1,024 in flight, acknowledged by the
      -- controller in counts (one answer per commit): the task ends only
      -- once every tuple is stored, and none is missing or reordered
      local n = rc[ids[1]]:apply(function(space)
        local s = engine.tuplespace(space)
        for i = 1, 3000 do s:out{"many", i} end
        return s:count()
      end, ts.name)
      assert.equal(3000, n)
      assert.equal(3000, ts:count{"many", plush.type "integer"})
      assert.same({3000, 0}, {rc[ids[2]]:apply(function(space)
        local s, inorder = engine.tuplespace(space), 0
        for i = 1, 3000 do
          if s:take{"many", s.ANY}[2] == i then inorder = inorder + 1 end
        end
        return inorder, s:count()
      end, ts.name)})
    end)

    it("a blocked take on an engine gets the tuple a client puts out", function()
      local name = ts.name
      local d = rc[ids[1]]:async():apply(function(space)
        local s = engine.tuplespace(space)
        local t = s:take{"answer", s.type "number"}
        return t[2], s:try_take{"answer", s.ANY}
      end, name)
      assert.is_false(d:wait(0.2))
      ts:out{"answer", 42}
      assert.same({42}, {d:get(10)})
    end)

    it("take and read in clients are Deferreds; a timeout gives nil, 'timeout'", function()
      local d = ts:read{"late", plush.ANY}
      local t = ts:take({"never"}, 0.05)
      assert.same({nil, "timeout"}, {t:get(10)})
      rc[ids[2]]:execute(("engine.tuplespace(%q):out{'late', true}"):format(ts.name))
      assert.same({"late", true}, d:get(10))
      assert.equal(1, ts:count())
      local code = ("return engine.tuplespace(%q):take({'never'}, 0.05)"):format(ts.name)
      assert.same({nil, "timeout"}, {rc[ids[2]]:execute(code)})
    end)

    it("an interrupted take on an engine loses no tuple", function()
      local d = rc[ids[3]]:async():execute(
        ("return engine.tuplespace(%q):take{'precious'}"):format(ts.name))
      running(ids[3], d)
      rc:interrupt(ids[3])
      assert.is_false((pcall(d.get, d, 10)))
      ts:out{"precious"}
      assert.same({"precious"}, ts:take({"precious"}, 10):get(10))
    end)

    -- Ctrl-C while this client waits: a real SIGINT, which the output
    -- handler of a task on engine `id` sends to this process (the client
    -- catches it while it handles events); that task runs `code` after
    -- its output line
    local function ctrl_c(id, code)
      local core = require "plush.core"
      local v = rc[id]:with{output = function() core.kill(core.getpid(), "INT") end}
      local ok, e = pcall(v.execute, v, "print('^C') io.stdout:flush() " .. code)
      assert.is_false(ok)
      assert.is_true(plush.is_error(e, "Interrupted"), tostring(e))
    end

    it("a client's take or read that Ctrl-C stopped is cancelled: it takes nothing", function()
      local take, read = ts:take{"kept", plush.ANY}, ts:read{"kept", plush.ANY}
      ctrl_c(ids[1], "")
      for _, d in ipairs{take, read} do
        local ok, e = pcall(d.get, d, 10)
        assert.is_false(ok)
        assert.is_true(plush.is_error(e, "Interrupted"), tostring(e))
      end
      for what, d in pairs{take = take, read = read} do
        assert.equal(("interrupted: the %s was cancelled"):format(what),
          select(2, pcall(d.get, d)).message)
      end
      ts:out{"kept", 1}
      assert.equal(1, ts:count{"kept", plush.ANY})
      assert.same({"kept", 1}, ts:try_take{"kept", plush.ANY})
    end)

    it("a take that Ctrl-C cancelled and nobody looked at is not reported unhandled", function()
      local deferred = require "plush.deferred"
      local saved, reports = deferred.on_unhandled, {}
      deferred.on_unhandled = function(e) reports[#reports + 1] = tostring(e) end
      ts:take{"unseen"} -- its Deferred dropped at once
      ctrl_c(ids[1], "")
      ts:count() -- answered after the cancelled take: that answer has come
      collectgarbage()
      collectgarbage()
      deferred.on_unhandled = saved
      assert.same({}, reports)
    end)

    it("a tuple on its way to a take that Ctrl-C stopped is put back, not lost", function()
      -- the engine puts out the tuple right after the output line that
      -- interrupts: the take's answer comes before or after its cancel
      for round = 1, 20 do
        local d = ts:take{"race", plush.ANY}
        ctrl_c(ids[2], ("engine.tuplespace(%q):out{'race', %d}"):format(ts.name, round))
        local ok, t = pcall(d.get, d, 10)
        if ok then -- the tuple came before the Ctrl-C: the take has it
          assert.same({"race", round}, t)
        else
          assert.is_true(plush.is_error(t, "Interrupted"), tostring(t))
          assert.same({"race", round}, ts:take({"race", plush.ANY}, 10):get(10))
        end
        assert.equal(0, ts:count{"race", plush.ANY})
      end
    end)

    it("bad tuples and patterns are refused at the caller", function()
      local ok, e = pcall(ts.out, ts, {coroutine.create(print)})
      assert.is_false(ok)
      assert.matches("cannot serialise request.tuple[1]: thread", e, 1, true)
      ok, e = pcall(ts.take, ts, {print})
      assert.is_false(ok)
      assert.matches("take: pattern[1] is a function", e, 1, true)
      ok, e = pcall(plush.type, "colour")
      assert.is_false(ok)
      assert.matches("no type named colour", e, 1, true)
      ok, e = pcall(ts.out, ts, 42)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'out'", e, 1, true)
      ok, e = pcall(rc[ids[1]].execute, rc[ids[1]], "tuples:take{print}")
      assert.is_false(ok)
      assert.matches("BadRequest: .*take: pattern%[1%] is a function", e.message)
      ok, e = pcall(rc[ids[1]].execute, rc[ids[1]], "tuples:out{coroutine.create(print)}")
      assert.is_false(ok)
      assert.matches("cannot serialise request.tuple[1]: thread", e.message, 1, true)
      assert.equal(0, ts:count())
    end)
  end)
end)
