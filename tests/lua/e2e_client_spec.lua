-- End to end: the Lua client against a real cluster. Runs when
-- PLUSH_TEST_FILE names the connection file of a running cluster with at
-- least 2 engines (scripts/test starts one), with plush/core.so on
-- package.cpath; skipped otherwise.
local plush, file = require("real_cluster")("e2e client")
if not plush then return end
local errors = plush.errors

local function range(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return t
end

describe("e2e client", function()
  local rc, all, ids

  setup(function()
    rc = plush.connect{file = file, timeout = 20}
    ids = rc:ids()
    assert(#ids >= 2, "the e2e cluster needs at least 2 engines")
    all = rc:view()
  end)
  teardown(function() rc:close() end)

  it("executes on every engine, in target order", function()
    all:execute("x = engine.id * 10")
    local want = {}
    for i, id in ipairs(ids) do want[i] = id * 10 end
    assert.same(want, all:execute("return x"))
    assert.equal(ids[1] * 10, rc[ids[1]]:execute("return x"))
  end)

  it("push, pull, ns", function()
    all:push{a = 1, t = {1, 2, 3}}
    assert.same({1, 2, 3}, all:pull("t")[#ids])
    all.ns.a = 5
    assert.equal(5, all.ns.a[1])
    assert.same({5, {1, 2, 3}}, {rc[ids[2]]:pull{"a", "t"}})
  end)

  it("a stream of big pulls reuses the client's blocks, mapping none", function()
    -- the collector is run before a big value is decoded when no kept
    -- block can take it, so dead strings give their blocks back
    local core = require "plush.core"
    local e, n = rc[ids[1]], 20 * 1000 * 1000
    e:execute(("big = string.rep('y', %d)"):format(n))
    local v = e:pull("big")
    assert.equal(n, #v)
    v = e:pull("big")
    assert.equal(n, #v)
    local before = core.mem_stats().maps
    for _ = 1, 6 do
      v = e:pull("big")
      assert.equal(n, #v)
    end
    assert.equal(before, core.mem_stats().maps)
    assert.equal(string.rep("y", n), v)
    e:execute("big = nil")
  end)

  -- sent from the string itself, made from the received frame's pages
  it("big strings round-trip exactly around the 1 MiB line", function()
    local e = rc[ids[1]]
    for _, n in ipairs{2^20 - 1, 2^20, 2^20 + 1, 3 * 2^20 + 7} do
      local s = string.rep("ab", n // 2 + 1):sub(1, n)
      e:push{bs = s, bt = {s, s:upper(), n = 2}}
      assert.equal(s, e:pull("bs"))
      local t = e:pull("bt")
      assert.is_true(t[1] == s and t[2] == s:upper() and t.n == 2)
      assert.same({n, true}, {e:apply(function(a) return #a, a == _G.bs end, s)})
    end
    e:execute("bs, bt = nil")
  end)

  it("apply with upvalues and nil arguments", function()
    local k = 100
    local r = all:apply(function(n, _, m) return n + m + k + engine.id end, 1, nil, 2)
    assert.equal(103 + ids[1], r[1])
  end)

  it("scatter and gather", function()
    all:scatter("part", range(25))
    assert.same(range(25), all:gather("part"))
    local first = rc[ids[1]]:pull("part")
    assert.equal(1, first[1])
    assert.equal(math.ceil(25 / #ids), #first)
  end)

  it("map, direct and balanced, in order", function()
    local want = {}
    for i = 1, 50 do want[i] = i * i end
    assert.same(want, all:map(function(x) return x * x end, range(50)))
    assert.same(want, rc:balanced():map(function(x) return x * x end, range(50)))
    assert.same(want, rc:balanced{chunksize = 7}:map(function(x) return x * x end, range(50)))
  end)

  it("map of a long sequence: several chunks per engine, exact values, holes", function()
    local n = 4 * 65536 * #ids + 3
    local seq = range(n)
    seq[7] = 0.5
    seq[n] = 2 ^ 53 + 1
    local r = all:map(function(x)
      if x == 5 then return nil end
      if x == 6 then return 0 / 0 end
      return x
    end, seq)
    assert.equal(n, #r)
    assert.is_nil(rawget(r, "n"))
    assert.is_nil(r[5])
    assert.is_true(r[6] ~= r[6])
    assert.equal("float", math.type(r[7]))
    assert.equal(0.5, r[7])
    assert.equal("integer", math.type(r[n - 1]))
    assert.equal(n - 1, r[n - 1])
    assert.equal(2 ^ 53 + 1, r[n])
    for i = 8, n - 1, 9973 do assert.equal(i, r[i]) end
    local unordered = all:with{ordered = false}:map(function(x) return -x end, range(n))
    local sum = 0
    for i = 1, n do sum = sum + unordered[i] end
    assert.equal(-n * (n + 1) // 2, sum)
    assert.has_error(function()
      all:map(function(x) if x == n - 2 then error("item " .. x) end return x end, range(n))
    end)
  end)

  it("values keep every bit", function()
    local v = rc[ids[1]]
    local nan = v:execute("return 0/0")
    assert.is_true(nan ~= nan)
    assert.equal("-0.0", tostring(v:execute("return -0.0")))
    assert.equal(2 ^ 53 + 1, v:apply(function(x) return x end, 2 ^ 53 + 1))
    assert.equal(math.tointeger(2 ^ 53) + 1, v:apply(function(x) return x end,
      math.tointeger(2 ^ 53) + 1))
    assert.equal("float", math.type(v:execute("return 1.0")))
    assert.equal("integer", math.type(v:execute("return 1")))
    local bin = "a\0b\255"
    assert.equal(bin, v:apply(function(s) return s end, bin))
    local t = {}
    t.self = t
    local back = v:apply(function(x) return x end, t)
    assert.equal(back, back.self)
  end)

  it("refuses a coroutine, sending nothing", function()
    local co = coroutine.create(print)
    local ok, e = pcall(function() return all:apply(function() return co end) end)
    assert.is_false(ok)
    assert.matches("thread", e)
  end)

  it("raises RemoteError and CompositeError", function()
    local ok, e = pcall(function()
      return all:execute(("if engine.id == %d then error('boom') end"):format(ids[2]))
    end)
    assert.is_false(ok)
    assert.is_true(errors.is(e, "RemoteError"))
    assert.equal(ids[2], e.engine)
    assert.equal("execute:1: boom", e.message)
    assert.matches("^RemoteError on engine %d+: execute:1: boom", tostring(e))
    ok, e = pcall(all.execute, all, "error('all')")
    assert.is_false(ok)
    assert.is_true(errors.is(e, "CompositeError"))
    assert.equal(#ids, #e.errors)
  end)

  it("a timeout fails with TimeoutError and the engine lives on", function()
    local busy = "local t = os.clock() while os.clock() - t < 10 do end"
    local ok, e = pcall(function() return rc[ids[1]]:with{timeout = 0.5}:execute(busy) end)
    assert.is_false(ok)
    assert.is_true(errors.is(e, "TimeoutError"))
    assert.equal(1, rc[ids[1]]:execute("return 1"))
  end)

  it("interrupt stops running code and keeps the namespace", function()
    rc[ids[1]]:execute("kept = 'yes'")
    local d = rc[ids[1]]:async():execute("while true do end")
    assert.is_false(d:wait(0.3))
    rc:interrupt(ids[1])
    local ok, e = pcall(d.get, d, 10)
    assert.is_false(ok)
    assert.matches("interrupted", tostring(e))
    assert.equal("yes", rc[ids[1]]:execute("return kept"))
  end)

  it("async, Deferred chains, metadata, output", function()
    local lines = {}
    local d = rc:balanced():with{block = false, output = function(line, engine)
      lines[#lines + 1] = {line, engine}
    end}:apply(function(x) print("got " .. x) return x + 1 end, 41)
    local got
    d:add_callback(function(r) got = r return r end)
    assert.is_true(d:wait(10))
    assert.equal(42, d:get())
    assert.equal(42, got)
    assert.same({{"got 41", d.metadata.engine}}, lines)
    assert.equal("got 41\n", d.stdout)
    assert.is_true(d.metadata.completed >= d.metadata.started)
  end)

  it("gather_results, wait_all, as_completed", function()
    local lb = rc:balanced():async()
    local ds = {}
    for i = 1, 8 do ds[i] = lb:apply(function(n) return n * 2 end, i) end
    assert.is_true(plush.wait_all(ds, 20))
    assert.same({2, 4, 6, 8, 10, 12, 14, 16}, plush.gather_results(ds):get())
    local n = 0
    for d in plush.as_completed(ds) do
      n = n + 1
      assert.is_true(d:ready())
    end
    assert.equal(8, n)
  end)

  it("results stay in the store, for any client", function()
    local d = rc[ids[1]]:async():execute("return 'stored', 2")
    d:get()
    local other = plush.connect{file = file}
    assert.same({"stored", 2}, {other:result(d.id)})
    local ok, e = pcall(other.result, other, -1)
    assert.is_false(ok)
    assert.is_true(errors.is(e, "BadRequest"))
    other:close()
  end)

  it("after waits for its dependencies", function()
    local first = rc[ids[1]]:async():execute("sleep_done = true")
    assert.same(true, rc[ids[1]]:with{after = first}:execute("return sleep_done"))
    local bad = rc[ids[1]]:async():execute("error('dep')")
    local ok, e = pcall(function() return all:with{after = bad}:execute("return 1") end)
    assert.is_false(ok)
    -- every engine's task failed on the dependency, each saying which
    assert.is_true(errors.is(e, "CompositeError"))
    for _, sub in ipairs(e.errors) do
      assert.is_true(errors.is(sub, "DependencyError"))
      assert.equal(("dependency %d failed"):format(bad.id), sub.message)
    end
  end)

  it("control requests answer", function()
    assert.equal(#ids, #rc:engines())
    assert.is_table(rc:queue_status())
    assert.is_table(rc:history())
    assert.equal(#ids, rc:status().engines)
  end)

  it("%px streams output and prints results, tagged", function()
    local buf = {}
    local shell = {rc = rc, targets = {ids[1], ids[2]}, block = true,
      out = function(s) buf[#buf + 1] = s end}
    plush.magic.run("%px print('hi') return engine.id", shell)
    assert.matches("^%[engine %d+%] hi\n$", buf[1])
    local text = table.concat(buf)
    assert.matches(("%%[engine %d%%] hi\n"):format(ids[2]), text)
    assert.matches(("%%[engine %d%%] %d\n"):format(ids[2], ids[2]), text)
    buf = {}
    plush.magic.run(("%%pn %d error('x')"):format(ids[1]), shell)
    assert.matches(("^%%[engine %d%%] RemoteError on engine %d: execute:1: x")
      :format(ids[1], ids[1]), table.concat(buf))
  end)
end)
