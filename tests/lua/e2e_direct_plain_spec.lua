-- End to end: a one-engine direct view with no scheduling option (rc[i]:
-- its execute and apply submit through Client:_apply1, and a
-- blocking call waits on the Deferred without d:get()): the same values,
-- metadata, output order, errors and timeouts as before. Runs against the
-- cluster of PLUSH_TEST_FILE (real_cluster.lua), skipped otherwise.
local plush, file = require("real_cluster")("e2e direct plain")
if not plush then return end
local errors = plush.errors

describe("e2e direct plain", function()
  local rc, e0, id

  setup(function()
    rc = plush.connect{file = file, timeout = 20}
    id = rc:ids()[1]
    e0 = rc[id]
  end)
  teardown(function() rc:close() end)

  it("execute gives back every value, holes and count kept", function()
    assert.is_nil(e0:execute("kept = 41"))
    local r = table.pack(e0:execute("return kept + 1, nil, 'x\\0y', engine.id", "named"))
    assert.same({n = 4, 42, nil, "x\0y", id}, r)
    assert.equal(0, select("#", e0:execute("kept = 1")))
  end)

  it("apply gives back its values; a table met twice stays one", function()
    local t = {k = {1, 2}}
    local r = table.pack(e0:apply(function(a, b, c) return b, c, a end, t, nil, t))
    assert.equal(3, r.n)
    assert.is_nil(r[1])
    assert.same({k = {1, 2}}, r[2])
    assert.equal(r[2], r[3])
  end)

  it("an async one-engine view's Deferred has its metadata", function()
    local d = e0:async():execute("return 5")
    assert.equal(5, d:get())
    local md = d.metadata
    assert.equal(id, md.engine)
    assert.equal(1, d.attempts)
    assert.is_true(md.submitted <= md.received)
    assert.is_true(md.started <= md.completed)
  end)

  it("output comes before the value, in order", function()
    local lines = {}
    local v = rc:view(id, {output = function(line) lines[#lines + 1] = line end})
    assert.equal(3, v:execute("print('a') io.write('b\\n') print('c') return 3"))
    assert.same({"a", "b", "c"}, lines)
    lines = {}
    assert.equal(2, v:apply(function(s) print(s) return #s end, "hi"))
    assert.same({"hi"}, lines)
  end)

  it("a failing task raises the engine's error; a chunk that does not compile too", function()
    local ok, e = pcall(e0.execute, e0, "error('boom', 0)")
    assert.is_false(ok)
    assert.is_true(errors.is(e, "RemoteError"))
    assert.equal("boom", e.message)
    assert.equal(id, e.engine)
    ok, e = pcall(e0.execute, e0, "return +")
    assert.is_false(ok)
    assert.is_true(errors.is(e, "RemoteError"))
    assert.matches("unexpected symbol", e.message)
    ok, e = pcall(e0.apply, e0, function() end, coroutine.create(print))
    assert.is_false(ok)
    assert.matches("cannot serialise request.args%[1%]: thread", e)
  end)

  it("execute on a balanced view and the shell's expression form (auto)", function()
    local lb = rc:balanced()
    assert.equal(9, lb:execute("return 9", "lb"))
    local d = e0:async():_execute_expr("return 1, coroutine.create(print)", "expr")
    local a, b = d:get()
    assert.equal(1, a)
    assert.matches("^thread: ", b)
    assert.same({2}, d.metadata.tostring)
    d = lb:async():_execute_expr("return io.stdout")
    assert.matches("^file ", (d:get()))
  end)

  it("conn:exec writes the request; its reply comes like any other", function()
    local tid = rc.conn:exec(id, "return ...", nil, nil, "named")
    local evs, n = {}, 0
    local t0 = plush.now()
    while #evs == 0 and plush.now() - t0 < 20 do evs, n = rc.conn:poll(1, nil, true) end
    assert.equal(1, n)
    assert.equal(tid, evs[1])
    assert.equal(id, evs[2])
    assert.same({n = 0}, evs[4])
    -- conn:apply with a string: the same request
    tid = rc.conn:apply(id, "return 4, ...", nil, nil, "named")
    evs = {}
    while #evs == 0 and plush.now() - t0 < 20 do evs = rc.conn:poll(1, nil, true) end
    assert.equal(tid, evs[1])
    assert.same({n = 1, 4}, evs[4])
    local conn = rc.conn
    local ok, e = pcall(function() return conn:exec(id, 42) end)
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'exec' %(string expected, got number%)", e)
    ok, e = pcall(function() return conn:exec(id, "x", nil, nil, 5) end)
    assert.is_false(ok)
    assert.matches("bad argument #5 to 'exec' %(string expected, got number%)", e)
  end)

  it("a task past its view's timeout raises TimeoutError; the engine goes on", function()
    local v = rc:view(id, {timeout = 0.3})
    local ok, e = pcall(v.execute, v, "while true do end")
    assert.is_false(ok)
    assert.is_true(errors.is(e, "TimeoutError"))
    assert.equal(7, e0:execute("return 7"))
  end)

  it("an engine API error shows the user's frames, not plush's; error() stays stock", function()
    local ok, e = pcall(e0.execute, e0, "return engine.recv(99, nil, 0.1)")
    assert.is_false(ok)
    assert.equal(("RemoteError on engine %d: EngineError: engine.recv: engine 99 is not running")
      :format(id), tostring(e))
    ok, e = pcall(e0.execute, e0, "local s = engine.tuplespace 'x'\ns:out(5)")
    assert.is_false(ok)
    assert.equal("execute:2: tuples:out: the tuple must be a table, not a number", e.message)
    assert.equal("stack traceback:\n\texecute:2: in main chunk", e.traceback)
    ok, e = pcall(e0.execute, e0, "local function f() error('mine') end\nf()")
    assert.is_false(ok)
    assert.equal("stack traceback:\n\t[C]: in function 'error'\n\texecute:1: in local 'f'"
      .. "\n\texecute:2: in main chunk", e.traceback)
  end)

  it("a quick task's reply does not wait for a long one queued behind it", function()
    -- with two requests queued behind it, the quick one's reply is held to
    -- leave with theirs (engine_lua.c, HOLD_BEHIND), 1 ms at most: never
    -- until the long one ends
    local a = e0:async()
    local quick = a:execute("return 'quick'")
    local long = a:execute("local t = os.clock() while os.clock() - t < 4 do end return 'long'")
    local after = a:execute("return 'after'")
    assert.is_true(quick:wait(2.5), "the quick task's reply is still held")
    assert.equal("quick", quick:get())
    assert.equal("pending", long:state())
    assert.equal("long", long:get(60))
    assert.equal("after", after:get(60))
  end)
end)
