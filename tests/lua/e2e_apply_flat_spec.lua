-- End to end: a balanced view's apply with no scheduling option (its
-- request written by conn:apply without tables) and its OK reply handed
-- over by conn:poll as plain values (flat): the same values, metadata,
-- output and errors as the table path. Runs against the cluster of
-- PLUSH_TEST_FILE (real_cluster.lua), skipped otherwise.
local plush, file = require("real_cluster")("e2e apply flat")
if not plush then return end
local errors = plush.errors

describe("e2e apply flat", function()
  local rc, lb

  setup(function()
    rc = plush.connect{file = file, timeout = 20}
    lb = rc:balanced():async()
  end)
  teardown(function() rc:close() end)

  it("gives back exact values, holes and count kept", function()
    local t = {k = {1, 2}}
    local d = lb:apply(function(...) return select("#", ...), ... end,
      1, nil, 2.5, "x\0y", t, t, nil)
    local r = table.pack(d:get())
    assert.equal(8, r.n)
    assert.equal(7, r[1])
    assert.equal(1, r[2])
    assert.is_nil(r[3])
    assert.equal("float", math.type(r[4]))
    assert.equal("x\0y", r[5])
    assert.same({k = {1, 2}}, r[6])
    assert.equal(r[6], r[7]) -- one table met twice stays one
    assert.is_nil(r[8])
  end)

  it("conn:poll's flat mode hands an OK reply over as 7 plain values", function()
    local id = rc.conn:apply(nil, function(x) return x + 1 end, nil, nil, 41)
    local evs, n = {}, 0
    local t0 = plush.now()
    while #evs == 0 and plush.now() - t0 < 20 do evs, n = rc.conn:poll(1, nil, true) end
    assert.equal(1, n)
    assert.equal(7, #evs)
    assert.equal(id, evs[1])
    assert.equal("integer", math.type(evs[2])) -- engine
    assert.equal(1, evs[3])                    -- attempts
    assert.same({n = 1, 42}, evs[4])
    assert.is_true(evs[5] <= evs[6])           -- started, completed
    assert.is_false(evs[7])                    -- no tostring
  end)

  it("fills the metadata and attempts of a task", function()
    local d = lb:apply(function() return true end)
    assert.is_true(d:get())
    local md = d.metadata
    assert.equal("integer", math.type(md.engine))
    assert.equal(1, d.attempts)
    assert.is_number(md.submitted)
    assert.is_true(md.submitted <= md.received)
    assert.is_number(md.started)
    assert.is_true(md.started <= md.completed)
    assert.is_nil(md.tostring)
    assert.equal("ok", d:state())
  end)

  it("many at once, each with its own value", function()
    local ds = {}
    for i = 1, 2000 do ds[i] = lb:apply(function(x) return x * 2 end, i) end
    assert.is_true(plush.wait_all(ds))
    for i = 1, 2000 do assert.equal(i * 2, ds[i]:get()) end
  end)

  it("a task that prints: its output comes before its value", function()
    local lines = {}
    local v = rc:balanced{block = false, output = function(line) lines[#lines + 1] = line end}
    local d = v:apply(function(s) print(s) io.write("no newline") return #s end, "hello")
    assert.equal(5, d:get())
    assert.same({"hello", "no newline"}, lines)
    assert.equal("hello\nno newline", d.stdout)
  end)

  it("a failing task fails its Deferred with the engine's error", function()
    local d = lb:apply(function() error("boom", 0) end)
    local ok, e = pcall(d.get, d)
    assert.is_false(ok)
    assert.is_true(errors.is(e, "RemoteError"))
    assert.equal("boom", e.message)
    assert.equal(d.metadata.engine, e.engine)
  end)

  it("a value that cannot travel is refused before anything is sent", function()
    local co = coroutine.create(print)
    local ok, e = pcall(lb.apply, lb, function() end, 1, co)
    assert.is_false(ok)
    assert.matches("e2e_apply_flat_spec.lua:%d+: cannot serialise request.args%[2%]: thread", e)
    ok, e = pcall(lb.apply, lb, "not a function")
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'apply'", e, 1, true)
  end)

  -- the same function applied again with no arguments is written from
  -- the request kept for it (shell/lua_send.c, applyframe)
  it("a function applied again runs with what its upvalues hold now", function()
    local x = {1}
    local function f() return x[1], x end
    local r1, t1 = lb:apply(f):get()
    assert.equal(1, r1)
    x[1] = 2
    local r2, t2 = lb:apply(f):get()
    assert.equal(2, r2)
    assert.same({2}, t2)
    assert.same({1}, t1)
    x = {"new"}
    assert.equal("new", (lb:apply(f):get()))
    -- by a direct view too, and with the engine's globals of the moment
    local id = rc:ids()[1]
    local function g() return who end -- luacheck: ignore who (the engine's)
    rc[id]:execute("who = 'first'")
    assert.equal("first", rc[id]:apply(g))
    rc[id]:execute("who = 'second'")
    assert.equal("second", rc[id]:apply(g))
  end)

  it("functions applied in turns each run themselves", function()
    local function a() return "a" end
    local function b() return "b" end
    local order, ds = {a, a, b, a, b, b, a}, {}
    for i, f in ipairs(order) do ds[i] = lb:apply(f) end
    local got = {}
    for i = 1, #ds do got[i] = ds[i]:get() end
    assert.same({"a", "a", "b", "a", "b", "b", "a"}, got)
  end)

  it("a new function is never taken for a collected one", function()
    for i = 1, 300 do
      local f = load("return " .. i) -- a new function each time, only _ENV
      assert.equal(i, lb:apply(f):get())
      f = nil -- luacheck: ignore f
      collectgarbage()
    end
  end)

  -- a plain task's OK reply fires its Deferred in conn:poll (shell/lua_settle.c)
  describe("a plain task's reply", function()
    -- Client's methods (what the shell's Tab lists after `rc:`)
    local function methods() return getmetatable(rc).__complete end
    local calls, real
    before_each(function()
      real, calls = methods()._reply_ok, 0
      methods()._reply_ok = function(...) calls = calls + 1 return real(...) end
    end)
    after_each(function() methods()._reply_ok = real end)

    it("fires in poll with its values, metadata and attempts, out of pending", function()
      local ds = {}
      for i = 1, 500 do
        ds[i] = lb:apply(function(k)
          if k % 3 == 0 then return end
          if k % 3 == 1 then return k, nil, "x" end
          return {k}, k + 0.5
        end, i)
      end
      assert.is_true(plush.wait_all(ds))
      for i = 1, 500 do
        local d = ds[i]
        local r = table.pack(d:get())
        if i % 3 == 0 then
          assert.equal(0, r.n)
        elseif i % 3 == 1 then
          assert.same({n = 3, i, nil, "x"}, r)
        else
          assert.same({n = 2, {i}, i + 0.5}, r)
          assert.equal("float", math.type(r[2]))
        end
        assert.equal("ok", d:state())
        assert.equal(1, d.attempts)
        assert.is_nil(rc.pending[d.id])
        local md = d.metadata
        assert.equal("integer", math.type(md.engine))
        assert.is_true(md.submitted <= md.started and md.started <= md.completed)
        assert.is_true(md.completed <= md.received + 1e-3)
        assert.is_nil(md.tostring)
      end
      -- none of them went through Lua's _reply_ok
      assert.equal(0, calls)
    end)

    it("with a callback, an output or an error still goes through Lua", function()
      local got
      local d1 = lb:apply(function() return 5 end)
      d1:add_callback(function(v) got = v * 2 return v end)
      local lines = {}
      local v = rc:balanced{block = false, output = function(line) lines[#lines + 1] = line end}
      local d2 = v:apply(function() print("said") return 6 end)
      local d3 = lb:apply(function() error("no", 0) end)
      assert.equal(5, d1:get())
      assert.equal(10, got)
      assert.equal(6, d2:get())
      assert.same({"said"}, lines)
      assert.is_false(pcall(d3.get, d3))
      assert.equal(2, calls) -- d1 and d2 (d3's reply is an error)
    end)
  end)

  it("a task past its timeout fails with TimeoutError", function()
    local v = rc:balanced{block = false, timeout = 0.3}
    local d = v:apply(function() while true do end end)
    local ok, e = pcall(d.get, d)
    assert.is_false(ok)
    assert.is_true(errors.is(e, "TimeoutError"))
    -- the engine was interrupted: the next task runs
    assert.equal(3, lb:apply(function() return 3 end):get())
  end)
end)
