-- End to end: task farms on a real cluster (PLUSH_TEST_FILE names its
-- connection file; at least 3 engines). Scheduling, retries, dependencies,
-- targets, timeouts, chunked maps, as_completed, results shared by id.
local plush, file = require("real_cluster")("e2e farm")
if not plush then return end
local errors = plush.errors

describe("e2e farm", function()
  local rc, lb, n

  setup(function()
    rc = plush.connect{file = file, timeout = 20}
    n = #rc:ids()
    assert(n >= 3, "the farm specs need at least 3 engines")
    lb = rc:balanced()
  end)
  teardown(function() rc:close() end)

  it("spreads uneven tasks so that no engine hoards the queue", function()
    -- one long task, then many short ones: the short ones must not wait
    -- behind the long one on its engine
    local long = lb:async():apply(function()
      local t = os.clock() + 0.5
      while os.clock() < t do end
      return engine.id
    end)
    local ds = {}
    for i = 1, 60 do
      ds[i] = lb:async():apply(function(x) return x, engine.id end, i)
    end
    local by = {}
    for i, d in ipairs(ds) do
      local x, e = d:get(10)
      assert.equal(i, x)
      by[e] = (by[e] or 0) + 1
    end
    local busy = long:get(10)
    assert.is_true((by[busy] or 0) <= 2,
      "the engine running the long task got at most its in-flight share")
  end)

  it("retries a failing task elsewhere, avoiding the engine where it failed", function()
    local v = lb:with{retries = 2}
    local fails_on = rc:ids()[1]
    local e = v:apply(function(bad)
      if engine.id == bad then error("not here") end
      return engine.id
    end, fails_on)
    assert.is_true(e ~= fails_on)
  end)

  it("gives up after its retries with the last error", function()
    local ok, e = pcall(function()
      return lb:with{retries = 1}:apply(function() error("always " .. engine.id) end)
    end)
    assert.is_false(ok)
    assert.is_true(errors.is(e, "RemoteError"))
    assert.matches("always %d", e.message)
  end)

  it("runs a task after its dependencies succeeded", function()
    local first = rc[0]:async():execute("dep_marker = 41 return 1")
    local second = lb:with{after = first, targets = {0}}:apply(function()
      return dep_marker + 1 -- luacheck: globals dep_marker
    end)
    assert.equal(42, second)
  end)

  it("fails dependants of a failed task, naming it", function()
    local bad = lb:async():execute("error('no')")
    local ok, e = pcall(function()
      return lb:with{after = bad}:execute("return 1")
    end)
    assert.is_false(ok)
    assert.is_true(errors.is(e, "DependencyError"), tostring(e))
    assert.equal(("dependency %d failed"):format(bad.id), e.message)
    local ok2, e2 = pcall(function() return lb:with{after = 987654321}:execute("return 1") end)
    assert.is_false(ok2)
    assert.equal("dependency 987654321 is unknown (no such task)", e2.message)
  end)

  it("restricts balanced tasks to targets", function()
    local ds = {}
    local v = lb:with{targets = {1, 2}, block = false}
    for i = 1, 20 do ds[i] = v:execute("return engine.id") end
    for _, d in ipairs(ds) do
      local e = d:get(10)
      assert.is_true(e == 1 or e == 2)
    end
    local ok, e = pcall(function() return lb:with{targets = {99}}:execute("return 1") end)
    assert.is_false(ok)
    assert.is_true(errors.is(e, "EngineError"))
    assert.equal("none of the task's target engines is connected", e.message)
  end)

  it("times out a task, interrupting its engine, which keeps serving", function()
    local ok, e = pcall(function()
      return rc[1]:with{timeout = 0.2}:execute("while true do end")
    end)
    assert.is_false(ok)
    assert.is_true(errors.is(e, "TimeoutError"))
    assert.equal(1, rc[1]:execute("return engine.id"))
  end)

  it("maps 100,000 elements in order, chunked", function()
    local seq = {}
    for i = 1, 100000 do seq[i] = i end
    local r = lb:map(function(x) return x * 2 end, seq)
    assert.equal(100000, #r)
    for i = 1, 100000, 997 do assert.equal(2 * i, r[i]) end
    assert.equal(200000, r[100000])
    local r2 = lb:with{chunksize = 7}:map(function(x) return -x end,
      {1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
    assert.same({-1, -2, -3, -4, -5, -6, -7, -8, -9, -10}, r2)
  end)

  it("maps a million items on a direct view: chunk results come whole", function()
    local seq = {}
    for i = 1, 1000000 do seq[i] = i end
    local r = rc:view():map(function(x) return x ^ 2 end, seq)
    assert.equal(1000000, #r)
    assert.equal(1.0, r[1])
    assert.equal(1e12, r[1000000])
  end)

  it("as_completed yields every Deferred once, as each finishes", function()
    local ds = {}
    for i = 1, 10 do
      ds[i] = lb:async():apply(function(k)
        local t = os.clock() + (10 - k) * 0.01
        while os.clock() < t do end
        return k
      end, i)
    end
    local seen, count = {}, 0
    for d in plush.as_completed(ds) do
      local k = d:get()
      assert.is_nil(seen[k])
      seen[k], count = true, count + 1
    end
    assert.equal(10, count)
  end)

  it("shares results by id between two clients", function()
    local d = lb:async():execute("return 'shared', 2^53 + 1")
    d:wait(10)
    local other = plush.connect{file = file, timeout = 20}
    local a, b = other:result(d.id)
    assert.equal("shared", a)
    assert.equal(2^53 + 1, b)
    local h = other:history()
    local found = false
    for _, id in ipairs(h) do found = found or id == d.id end
    assert.is_true(found, "the task is in the history")
    other:close()
  end)

  it("d.attempts counts the times the task ran", function()
    local id = rc:ids()[1]
    rc[id]:execute("ATTEMPT_N = 0")
    local d = rc:balanced{targets = {id}, retries = 3}:async():execute(
      "ATTEMPT_N = ATTEMPT_N + 1 if ATTEMPT_N < 3 then error('try') end return ATTEMPT_N")
    assert.equal(3, d:get(20))
    assert.equal(3, d.attempts)
    local d2 = lb:async():execute("return 1")
    d2:get(20)
    assert.equal(1, d2.attempts)
    local d3 = rc[id]:async():execute("error('once')")
    assert.is_false((pcall(d3.get, d3, 20)))
    assert.equal(1, d3.attempts)
  end)

  it("history(k) is the k newest stored tasks, oldest first, big replies among them", function()
    local e = rc[rc:ids()[1]]
    local ds = {}
    -- replies over 64 KiB are kept in the controller's memory, the
    -- others in its SQLite store: history merges both
    for i, code in ipairs{"return 1", "return ('x'):rep(100000)", "return 3",
                           "return ('y'):rep(100000)", "return 5"} do
      ds[i] = e:async():execute(code)
      ds[i]:get(20)
    end
    assert.same({ds[3].id, ds[4].id, ds[5].id}, rc:history(3))
    assert.same({ds[4].id, ds[5].id}, rc:history(2))
    local all = rc:history()
    assert.same({ds[1].id, ds[2].id, ds[3].id, ds[4].id, ds[5].id},
                {table.unpack(all, #all - 4, #all)})
  end)
end)
