-- plush.view: DirectView and LoadBalancedView against the fake core.
local fake = require("fake_core").install()
local plush = require "plush"
local deferred = require "plush.deferred"
local errors = require "plush.errors"

local function range(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return t
end

local function ops(op)
  local list = {}
  for _, s in ipairs(fake.state.submitted) do
    if s.msg.op == op then list[#list + 1] = s end
  end
  return list
end

describe("views", function()
  local rc, all
  local saved
  before_each(function()
    fake.reset{n = 4}
    rc = fake.client{output = false}
    all = rc:view()
    saved = deferred.on_unhandled
    deferred.on_unhandled = function() end
  end)
  after_each(function()
    rc:close()
    -- errors these tests leave unhandled are reported at collection
    collectgarbage()
    collectgarbage()
    deferred.on_unhandled = saved
  end)

  describe("execute", function()
    it("returns one entry per target, in target order", function()
      all:execute("x = engine.id * 10")
      assert.same({0, 10, 20, 30}, all:execute("return x"))
    end)

    it("returns every value on a one-engine view", function()
      all:execute("x = engine.id * 10")
      assert.equal(20, rc[2]:execute("return x"))
      assert.same({30, "three", nil, n = 3},
        table.pack(rc[3]:execute("return x, 'three', nil")))
      assert.same({0, 1}, {rc:view(0):execute("return 0, 1")})
    end)

    it("keeps the length of results that are nil", function()
      local r = all:execute("y = 1")
      assert.equal(4, #r)
      assert.is_nil(r[1])
      r = all:execute("if engine.id == 3 then return 'last' end")
      assert.equal(4, #r)
      assert.equal("last", r[4])
    end)

    it("first value of each engine on a multi-engine view", function()
      assert.same({0, 1, 2, 3}, all:execute("return engine.id, 'more'"))
    end)

    it("addresses a list of engines, also one", function()
      assert.same({3, 1}, rc:view{3, 1}:execute("return engine.id"))
      assert.same({2}, rc:view{2}:execute("return engine.id"))
    end)

    it("names the chunk", function()
      local ok, e = pcall(rc[0].execute, rc[0], "\nerror('bad')", "setup")
      assert.is_false(ok)
      assert.equal("setup:2: bad", e.message)
      assert.equal("setup", e.chunk)
      assert.equal(2, e.line)
    end)

    it("reports syntax errors as RemoteError", function()
      local ok, e = pcall(rc[1].execute, rc[1], "return +")
      assert.is_false(ok)
      assert.is_true(errors.is(e, "RemoteError"))
      assert.equal(1, e.engine)
    end)
  end)

  describe("errors", function()
    it("raises RemoteError when one engine fails", function()
      local ok, e = pcall(all.execute, all, "if engine.id == 2 then error('boom') end")
      assert.is_false(ok)
      assert.is_true(errors.is(e, "RemoteError"))
      assert.equal(2, e.engine)
      assert.equal("execute:1: boom", e.message)
      assert.equal("execute", e.chunk)
      assert.equal(1, e.line)
      assert.matches("^RemoteError on engine 2: execute:1: boom\nstack traceback:", tostring(e))
    end)

    it("raises CompositeError, in target order, when several fail", function()
      local ok, e = pcall(all.execute, all, "if engine.id % 2 == 1 then error('odd') end")
      assert.is_false(ok)
      assert.is_true(errors.is(e, "CompositeError"))
      assert.equal(2, #e.errors)
      assert.equal(1, e.errors[1].engine)
      assert.equal(3, e.errors[2].engine)
      assert.equal("CompositeError: 2 tasks failed\n[engine 1] execute:1: odd\n"
        .. "[engine 3] execute:1: odd", tostring(e))
    end)

    it("keeps a non-string error value", function()
      local ok, e = pcall(rc[0].execute, rc[0], "error({code = 7})")
      assert.is_false(ok)
      assert.same({code = 7}, e.value)
    end)

    it("raises EngineError when the engine dies", function()
      local d = rc[1]:async():execute("sleep(5)")
      fake.kill(1)
      local ok, e = pcall(d.get, d)
      assert.is_false(ok)
      assert.is_true(errors.is(e, "EngineError"))
      assert.equal(1, e.engine)
    end)

    it("raises TimeoutError when the task runs out of time", function()
      local ok, e = pcall(function() return rc[0]:with{timeout = 1}:execute("sleep(5)") end)
      assert.is_false(ok)
      assert.is_true(errors.is(e, "TimeoutError"))
      assert.equal(0, e.engine)
      assert.equal(1, ops("exec")[1].timeout)
    end)

    it("raises BadRequest for an engine id no engine ever had", function()
      local ok, e = pcall(function() return rc[9]:execute("return 1") end)
      assert.is_false(ok)
      assert.is_true(errors.is(e, "BadRequest"))
      assert.equal("BadRequest on engine 9: unknown engine 9", tostring(e))
    end)

    it("refuses values that cannot travel, sending nothing", function()
      local co = coroutine.create(print)
      local ok, e = pcall(function() return all:apply(function() return co end) end)
      assert.is_false(ok)
      assert.matches("view_spec.lua:%d+: cannot serialise .*thread", e)
      assert.equal(0, #fake.state.submitted)
    end)
  end)

  describe("arguments", function()
    local function message(f, ...)
      local ok, e = pcall(f, ...)
      assert.is_false(ok)
      return e
    end

    it("are checked with the caller's position", function()
      assert.matches("^.-tests/lua/view_spec.lua:%d+: bad argument #1 to 'execute' "
        .. "%(string expected, got nil%)$", message(function() all:execute(nil) end))
      assert.matches("bad argument #2 to 'execute' %(string or nil expected, got number%)",
        message(function() all:execute("x", 5) end))
      assert.matches("bad argument #1 to 'apply' %(function expected, got string%)",
        message(function() all:apply("f") end))
      assert.matches("bad argument #1 to 'push' %(table expected, got number%)",
        message(function() all:push(5) end))
      assert.matches("bad argument #1 to 'pull' %(string or array of strings expected",
        message(function() all:pull(5) end))
      assert.matches("bad argument #2 to 'scatter' %(table expected, got nil%)",
        message(function() all:scatter("x") end))
      assert.matches("bad argument #2 to 'map' %(table expected, got number%)",
        message(function() all:map(print, 5) end))
      assert.matches("bad argument #1 to 'view' %(engine id, array of ids or 'all' expected",
        message(function() rc:view("some") end))
      assert.matches("bad argument #1 to 'with' %(unknown option 'blok'%)",
        message(function() all:with{blok = true} end))
      assert.matches("option 'block' must be a boolean",
        message(function() all:with{block = 1} end))
      assert.matches("option 'after' must hold Deferreds or task ids",
        message(function() all:with{after = {"x"}} end))
    end)
  end)

  describe("push, pull and ns", function()
    it("push sets globals everywhere and returns nothing", function()
      assert.equal(0, select("#", all:push{a = 1, t = {1, 2, 3}}))
      assert.same({1, 1, 1, 1}, all:pull("a"))
      assert.same({{1, 2, 3}, {1, 2, 3}, {1, 2, 3}, {1, 2, 3}}, all:pull("t"))
      assert.same({1, 2, 3}, fake.env(2).t)
    end)

    it("pull of several names gives an array per engine", function()
      all:push{a = 1, b = "b"}
      assert.same({{1, "b"}, {1, "b"}, {1, "b"}, {1, "b"}}, all:pull{"a", "b"})
      assert.same({1, "b"}, {rc[0]:pull{"a", "b"}})
    end)

    it("pull follows dotted paths", function()
      rc[1]:push{cfg = {db = {port = 5432}}}
      assert.equal(5432, rc[1]:pull("cfg.db.port"))
    end)

    it("pull of a missing name gives nil", function()
      local r = all:pull("nothing")
      assert.equal(4, #r)
      assert.is_nil(r[1])
    end)

    it("ns assigns by pushing and reads by pulling", function()
      all.ns.a = 5
      assert.equal(5, all.ns.a[1])
      assert.same({5, 5, 5, 5}, all.ns.a)
      rc[1].ns.b = "one"
      assert.equal("one", rc[1].ns.b)
      assert.is_nil(fake.env(0).b)
    end)

    it("ns assignment waits even on a non-blocking view", function()
      local v = all:async()
      v.ns.c = 3
      assert.equal(3, fake.env(3).c)
      assert.is_true(deferred.is(v.ns.c))
    end)
  end)

  describe("apply", function()
    it("calls the function in each namespace", function()
      assert.same({1, 2, 3, 4}, all:apply(function(n) return n + engine.id end, 1))
    end)

    it("carries upvalues by value and nil arguments in place", function()
      local base = {k = 100}
      local f = function(a, b, c) return base.k + a + (b or 0) + c end
      assert.equal(104, rc[0]:apply(f, 1, nil, 3))
      base.k = 0
    end)

    it("returns every value on a one-engine view", function()
      assert.same({2, "x"}, {rc[2]:apply(function() return engine.id, "x" end)})
    end)
  end)

  describe("scatter and gather", function()
    it("splits into contiguous nearly equal parts in target order", function()
      all:scatter("part", range(10))
      assert.same({{1, 2, 3}, {4, 5, 6}, {7, 8}, {9, 10}}, all:pull("part"))
      assert.same(range(10), all:gather("part"))
    end)

    it("gives empty parts when there are fewer items than engines", function()
      all:scatter("p", {"a", "b"})
      assert.same({{"a"}, {"b"}, {}, {}}, all:pull("p"))
      assert.same({"a", "b"}, all:gather("p"))
    end)

    it("works on a subset and on one engine", function()
      local v = rc:view{2, 0}
      v:scatter("q", range(5))
      assert.same({1, 2, 3}, fake.env(2).q)
      assert.same({4, 5}, fake.env(0).q)
      assert.same(range(5), v:gather("q"))
      rc[1]:scatter("q", range(3))
      assert.same(range(3), rc[1]:gather("q"))
    end)

    it("sends one push per engine", function()
      all:scatter("part", range(8))
      assert.equal(4, #ops("push"))
    end)
  end)

  describe("map", function()
    it("maps in order with one chunk per engine", function()
      assert.same({2, 4, 6, 8, 10, 12, 14, 16, 18, 20},
        all:map(function(x) return x * 2 end, range(10)))
      local m = ops("map")
      assert.equal(4, #m)
      assert.same({3, 3, 2, 2}, {m[1].msg.n, m[2].msg.n, m[3].msg.n, m[4].msg.n})
      assert.same({0, 1, 2, 3}, {m[1].engine, m[2].engine, m[3].engine, m[4].engine})
    end)

    it("uses chunksize, dealing chunks round-robin", function()
      local r = all:with{chunksize = 3}:map(function(x) return -x end, range(13))
      assert.equal(13, #r)
      assert.equal(-13, r[13])
      local m = ops("map")
      assert.equal(5, #m)
      assert.same({0, 1, 2, 3, 0}, {m[1].engine, m[2].engine, m[3].engine, m[4].engine,
        m[5].engine})
    end)

    it("splits a long sequence into up to four chunks per engine", function()
      local n = 3 * 65536 + 5
      local r = rc[0]:map(function(x) return x + 1 end, range(n))
      assert.equal(n, #r)
      assert.equal(2, r[1])
      assert.equal(n + 1, r[n])
      assert.is_nil(rawget(r, "n"))
      local m = ops("map")
      assert.same({65538, 65538, 65537}, {m[1].msg.n, m[2].msg.n, m[3].msg.n})
      assert.equal(3, #m)
    end)

    it("keeps holes and the length of the results", function()
      local r = all:map(function(x) if x % 3 == 0 then return nil end return x end, range(10))
      assert.equal(10, #r)
      assert.is_nil(r[3])
      assert.is_nil(r[9])
      assert.equal(10, r[10])
      assert.is_nil(rawget(r, "n"))
    end)

    it("ordered = false: chunks in the order they finish", function()
      local f = function(x)
        sleep(10 - x)
        return x
      end
      local v = all:with{chunksize = 2}
      assert.same(range(6), v:map(f, range(6)))
      assert.same({5, 6, 3, 4, 1, 2}, v:with{ordered = false}:map(f, range(6)))
    end)

    it("reads a sequence with a metatable through it", function()
      local seq = setmetatable({}, {
        __index = function(_, i) return math.type(i) == "integer" and i * 10 or nil end,
        __len = function() return 5 end,
      })
      assert.same({10, 20, 30, 40, 50}, all:map(function(x) return x end, seq))
    end)

    it("runs the function in the engine namespace", function()
      assert.same({0, 1, 2, 3}, all:map(function() return engine.id end, range(4)))
    end)

    it("maps an empty sequence to an empty array", function()
      assert.same({}, all:map(function(x) return x end, {}))
      assert.equal(0, #ops("map"))
    end)

    it("balanced: chunks of #seq / (4 * engines) by default", function()
      local lb = rc:balanced()
      local r = lb:map(function(x) return x ^ 2 end, range(40))
      assert.equal(40, #r)
      assert.equal(1600.0, r[40])
      assert.equal(20, #ops("map"))
      assert.equal(2, ops("map")[1].msg.n)
    end)

    it("balanced: chunks of at least one item", function()
      rc:balanced():map(function(x) return x end, range(3))
      assert.equal(3, #ops("map"))
    end)

    it("balanced: chunksize and ordered = false", function()
      local lb = rc:balanced{chunksize = 2}
      local f = function(x)
        sleep(10 - x)
        return x
      end
      assert.same(range(6), lb:map(f, range(6)))
      assert.same({5, 6, 3, 4, 1, 2}, lb:with{ordered = false}:map(f, range(6)))
    end)
  end)

  describe("balanced views", function()
    it("apply and execute go to any engine, with target nil", function()
      local lb = rc:balanced()
      assert.equal(42, lb:apply(function(x) return x + 1 end, 41))
      assert.same({1, 2}, {lb:execute("return 1, 2")})
      for _, s in ipairs(fake.state.submitted) do assert.is_nil(s.target) end
    end)

    it("spreads tasks over free engines", function()
      local lb = rc:balanced():async()
      local ds = {}
      for i = 1, 4 do ds[i] = lb:execute("sleep(1) return engine.id") end
      assert.same({0, 1, 2, 3}, plush.gather_results(ds):get())
    end)

    it("sends targets and retries to the controller", function()
      rc:balanced{retries = 2, targets = {1, 3}}:apply(function() return 1 end)
      local last = fake.state.submitted[#fake.state.submitted]
      assert.same({targets = {1, 3}, retries = 2}, last.sched)
      rc:balanced():apply(function() return 1 end)
      assert.is_nil(fake.state.submitted[#fake.state.submitted].sched)
    end)

    it("a scheduling option set on a view directly still goes to the controller", function()
      local lb = rc:balanced()
      assert.equal(1, lb:apply(function() return 1 end))
      assert.is_nil(fake.state.submitted[#fake.state.submitted].sched)
      lb.retries, lb.targets = 2, {1, 3}
      assert.equal(1, lb:apply(function() return 1 end))
      local sched = fake.state.submitted[#fake.state.submitted].sched
      assert.same({targets = {1, 3}, retries = 2}, sched)
      local plain = rc:balanced()
      plain.detached = true
      plain:apply(function() return 1 end)
      assert.same({detached = true}, fake.state.submitted[#fake.state.submitted].sched)
      -- and the view made from it again without: the plain path, same request
      local again = plain:with{detached = false}
      assert.equal(2, again:apply(function(x) return x end, 2))
      local last = fake.state.submitted[#fake.state.submitted]
      assert.is_nil(last.sched)
      assert.equal("apply", last.msg.op)
      assert.same({n = 1, 2}, last.msg.args)
    end)

    it("a one-engine view's option set on it directly still goes to the controller", function()
      local function last() return fake.state.submitted[#fake.state.submitted] end
      local v = rc[1]
      assert.equal(7, v:execute("return 7"))
      assert.is_nil(last().sched)
      assert.same({op = "exec", code = "return 7"}, last().msg)
      v.detached = true
      assert.equal(8, v:execute("return 8", "named"))
      assert.same({detached = true}, last().sched)
      assert.same({op = "exec", code = "return 8", name = "named"}, last().msg)
      v = rc[2]
      v.durable = true
      v:execute("return 1")
      assert.same({durable = true}, last().sched)
      v = rc[2]
      local first = rc[1]:async():execute("return 1")
      first:get()
      v.after = {first}
      v:apply(function() return 1 end)
      assert.same({after = {first.id}}, last().sched)
      -- held false, then set: no __newindex sees the write
      v = rc[3]:with{detached = false}
      v.detached = true
      v:execute("return 1")
      assert.same({detached = true}, last().sched)
      local lb = rc:balanced{durable = false}
      lb.durable = true
      lb:apply(function() return 1 end)
      assert.same({durable = true}, last().sched)
      -- targets written to a list: every engine's value, in order
      v = rc[0]
      v.targets = {2, 0}
      assert.same({2, 0}, v:execute("return engine.id"))
    end)

    it("a one-engine view raises its task's error and timeout as before", function()
      local ok, e = pcall(rc[1].execute, rc[1], "error('boom')")
      assert.is_false(ok)
      assert.equal("RemoteError", e.kind)
      assert.matches("boom", e.message)
      assert.equal(1, e.engine)
      ok, e = pcall(rc[1].execute, rc[1], 42)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'execute' %(string expected, got number%)", tostring(e))
      ok, e = pcall(rc[1].execute, rc[1], "return 1", 5)
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'execute' %(string or nil expected, got number%)",
        tostring(e))
      assert.same({n = 3, 1, nil, 3}, table.pack(rc[1]:execute("return 1, nil, 3")))
      assert.same({n = 0}, table.pack(rc[1]:execute("x = 1")))
      assert.is_nil(rc[1]:push{z = 1}) -- quiet: nothing, even the empty list
      assert.equal(1, rc[1]:execute("return z"))
      -- apply on one engine: the arguments, holes kept, and its errors
      local v = rc[2]
      assert.same({n = 3, 2, nil, "c"},
        table.pack(v:apply(function(_, b, c) return engine.id, b, c end, 1, nil, "c")))
      local last = fake.state.submitted[#fake.state.submitted]
      assert.is_nil(last.sched)
      assert.same({n = 3, 1, nil, "c"}, last.msg.args)
      ok, e = pcall(v.apply, v, 42)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'apply' %(function expected, got number%)", tostring(e))
      ok, e = pcall(v.apply, v, function() error("bad", 0) end)
      assert.is_false(ok)
      assert.equal("RemoteError", e.kind)
      assert.equal(2, v:async():apply(function() return engine.id end):get())
      v.detached = true
      v:apply(function() return 1 end)
      assert.same({detached = true}, fake.state.submitted[#fake.state.submitted].sched)
    end)

    it("sends detached to the controller, and refuses a string targets", function()
      local function message(f)
        local ok, e = pcall(f)
        assert.is_false(ok)
        return tostring(e)
      end
      rc:balanced{detached = true}:apply(function() return 1 end)
      assert.same({detached = true}, fake.state.submitted[#fake.state.submitted].sched)
      rc[1]:with{detached = true}:execute("return 1")
      assert.same({detached = true}, fake.state.submitted[#fake.state.submitted].sched)
      assert.matches("option 'detached' must be a boolean",
        message(function() rc:balanced{detached = 1} end))
      assert.matches("engine id, array of ids or 'all' expected, got string",
        message(function() rc:balanced():with{targets = "x"} end))
    end)

    it("sends durable to the controller, alone or with other options", function()
      rc[1]:with{durable = true}:execute("return 1")
      assert.same({durable = true}, fake.state.submitted[#fake.state.submitted].sched)
      rc:balanced{durable = true, retries = 1}:apply(function() return 1 end)
      assert.same({durable = true, retries = 1}, fake.state.submitted[#fake.state.submitted].sched)
      rc[1]:with{durable = false}:execute("return 1")
      assert.is_nil(fake.state.submitted[#fake.state.submitted].sched)
      local ok, e = pcall(function() rc[1]:with{durable = "yes"} end)
      assert.is_false(ok)
      assert.matches("option 'durable' must be a boolean", tostring(e))
    end)
  end)

  describe("async, block and with", function()
    it("async returns a Deferred with id, metadata and output", function()
      local d = rc[2]:async():execute("print('hi') io.write('x') return 7")
      assert.is_true(deferred.is(d))
      assert.is_false(d:ready())
      assert.is_true(math.type(d.id) == "integer")
      assert.equal(7, d:get())
      assert.equal(2, d.metadata.engine)
      assert.is_number(d.metadata.submitted)
      assert.is_number(d.metadata.started)
      assert.is_true(d.metadata.completed >= d.metadata.started)
      assert.equal("hi\nx", d.stdout)
      assert.equal(7, rc:result(d.id))
    end)

    it("a multi-engine Deferred fires with the array", function()
      local d = all:async():execute("return engine.id")
      assert.equal(4, #d.id)
      assert.same({0, 1, 2, 3}, d.targets)
      assert.same({0, 1, 2, 3}, d:get())
      assert.equal(2, d.metadata[3].engine)
    end)

    it("the block field switches the view", function()
      assert.is_true(all.block)
      all.block = false
      assert.is_true(deferred.is(all:execute("return 1")))
    end)

    it("with returns a new view and leaves the old one alone", function()
      local v = all:with{block = false, targets = {1, 3}}
      assert.is_false(v.block)
      assert.is_true(all.block)
      assert.same({1, 3}, v:execute("return engine.id"):get())
      assert.same({0, 1, 2, 3}, all:execute("return engine.id"))
    end)

    it("with targets = an id makes a one-engine view", function()
      assert.equal(3, all:with{targets = 3}:execute("return engine.id"))
    end)

    it("callbacks chain on view Deferreds", function()
      local got
      rc[0]:async():apply(function() return 20 end)
        :add_callback(function(r) return r + 1 end)
        :add_callback(function(r) got = r end)
      rc:wait()
      assert.equal(21, got)
    end)
  end)

  describe("after", function()
    it("sends the dependencies' task ids to the controller", function()
      local first = rc[0]:async():execute("ready = true")
      local both = all:async():execute("return 1")
      rc[1]:with{after = {first, both, 12345}}:execute("return 'second'")
      local sched = fake.state.submitted[#fake.state.submitted].sched
      local want = {first.id}
      for _, id in ipairs(both.id) do want[#want + 1] = id end
      want[#want + 1] = 12345
      assert.same({after = want}, sched)
    end)
  end)

  describe("all engines", function()
    it("follows engines coming and going", function()
      assert.same({0, 1, 2, 3}, all:execute("return engine.id"))
      fake.kill(2)
      fake.add(7)
      rc:pump(0)
      assert.same({0, 1, 3, 7}, all:ids())
      assert.same({0, 1, 3, 7}, all:execute("return engine.id"))
    end)

    it("means the engines alive when the request is routed", function()
      assert.same({0, 1, 2, 3}, all:execute("return engine.id"))
      fake.kill(2, {unheard = true})
      assert.same({0, 1, 2, 3}, all:ids()) -- the client has not heard yet
      local d = all:async():execute("return engine.id")
      assert.same({0, 1, 3}, d:get())
      assert.same({0, 1, 3}, d.targets)
      assert.equal(3, #d.id)
      assert.same({0, 1, 3}, all:ids()) -- and now it has
      local ok, e = pcall(rc[2].execute, rc[2], "return 1")
      assert.is_false(ok)
      assert.is_true(errors.is(e, "EngineError") and e.left)
      assert.equal("EngineError on engine 2: engine 2 is not connected", tostring(e))
      -- a list of engines named by the caller still fails
      ok, e = pcall(function() return rc:view{1, 2}:execute("return 1") end)
      assert.is_false(ok)
      assert.is_true(errors.is(e, "EngineError"))
    end)

    it("fails when every engine it addressed has left", function()
      assert.same({0, 1, 2, 3}, all:ids())
      for id = 0, 3 do fake.kill(id, {unheard = true}) end
      local ok, e = pcall(all.execute, all, "return 1")
      assert.is_false(ok)
      assert.equal("EngineError: every engine of the view has left", tostring(e))
    end)
  end)
end)
