-- End to end: a map's chunks of numbers decoded straight into the result
-- table (conn:sink, plush_decode_into), and the replies that fall back to
-- the usual decode and copy. Runs against the cluster of PLUSH_TEST_FILE
-- (at least 2 engines); skipped otherwise.
local plush, file = require("real_cluster")("e2e map in place")
if not plush then return end

local function range(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return t
end

-- got[i] == want[i] for i = 1..n with the same math.type (floats compared
-- by their bits through string.pack); nil where want has nil
local function exact(want, got, n)
  assert.equal(n, #got)
  for i = 1, n do
    local w, g = want[i], got[i]
    if type(w) == "number" then
      if math.type(w) ~= math.type(g) then
        error(("item %d: %s (%s) expected, got %s (%s)"):format(i, tostring(w),
          math.type(w), tostring(g), math.type(g)))
      end
      if math.type(w) == "float" then
        assert(string.pack("d", w) == string.pack("d", g), "item " .. i .. " bits")
      else
        assert(w == g, "item " .. i)
      end
    else
      assert.same(w, g)
    end
  end
end

local function local_map(f, seq)
  local t = {}
  for i = 1, #seq do t[i] = f(seq[i]) end
  return t
end

describe("e2e map in place", function()
  local rc, all
  local core = require("plush.core")

  setup(function()
    rc = plush.connect{file = file, timeout = 20}
    assert(#rc:ids() >= 2, "the e2e cluster needs at least 2 engines")
    all = rc:view()
  end)
  teardown(function() rc:close() end)

  local N = 300001 -- a chunk or more per engine, of unequal sizes
  local cases = {
    {"integers of every width", function(x)
      local k = x % 9
      if k == 0 then return x end
      if k == 1 then return -x end
      if k == 2 then return x * 1000 end
      if k == 3 then return math.maxinteger - x end
      if k == 4 then return math.mininteger + x end
      if k == 5 then return x % 128 end
      if k == 6 then return -(x % 32) end
      if k == 7 then return (1 << 53) + 1 end
      return x * 70000
    end},
    {"floats, bit-exact", function(x)
      local k = x % 6
      if k == 0 then return x * 0.1 end
      if k == 1 then return 0.1 end
      if k == 2 then return 2.0 ^ 53 + 2 end
      if k == 3 then return -0.0 end
      if k == 4 then return 1 / 0 end
      return x ^ 10
    end},
    {"nil holes", function(x) if x % 7 ~= 0 then return x + 0.5 end end},
    {"a string among numbers (the fallback)", function(x)
      if x == 200000 then return "two hundred thousand" end
      return x
    end},
    {"tables (the fallback)", function(x)
      if x % 1000 == 0 then return {x, tag = "t"} end
      return x
    end},
    {"booleans (the fallback)", function(x) return x % 2 == 0 end},
  }
  for _, case in ipairs(cases) do
    it(case[1], function()
      local seq = range(N)
      local want = local_map(case[2], seq)
      exact(want, all:map(case[2], seq), N)
      exact(want, rc:balanced():map(case[2], seq), N)
      exact(want, all:with{chunksize = 1000}:map(case[2], seq), N)
    end)
  end

  it("NaN results stay NaN", function()
    local r = all:map(function(x) if x % 2 == 0 then return 0 / 0 end return x end, range(1000))
    for i = 1, 1000 do
      if i % 2 == 0 then assert.is_true(r[i] ~= r[i]) else assert.equal(i, r[i]) end
    end
  end)

  it("a chunk whose function fails fails the map, and the next map is whole", function()
    local ok, e = pcall(all.map, all, function(x)
      if x == 250000 then error("bad item") end
      return x
    end, range(N))
    assert.is_false(ok)
    assert.matches("bad item", tostring(e))
    exact(local_map(function(x) return x * 3 end, range(N)),
      all:map(function(x) return x * 3 end, range(N)), N)
  end)

  it("ordered = false still gives every result (no sink)", function()
    local r = all:with{ordered = false}:map(function(x) return x * 2 end, range(N))
    assert.equal(N, #r)
    local sum = 0
    for i = 1, N do sum = sum + r[i] end
    assert.equal(N * (N + 1), sum)
  end)

  it("output and other frames pass through a conn that has sinks", function()
    exact(local_map(function(x) return x + 1 end, range(N)),
      all:map(function(x) return x + 1 end, range(N)), N)
    -- 200 tasks in flight: polls take many output frames at once
    local seen = {}
    local lb = rc:balanced():with{block = false,
      output = function(s) seen[#seen + 1] = s end}
    local ds = {}
    for i = 1, 200 do
      ds[i] = lb:apply(function(k) print("line " .. k) return k end, i)
    end
    for i = 1, 200 do assert.equal(i, ds[i]:get()) end
    local text = table.concat(seen, "\n")
    for i = 1, 200 do assert.truthy(text:find("line " .. i .. "\n", 1, true) or
      text:sub(-#("line " .. i)) == "line " .. i) end
    exact(local_map(function(x) return x - 1 end, range(N)),
      all:map(function(x) return x - 1 end, range(N)), N)
  end)

  it("conn:sink checks its arguments", function()
    local conn = rc.conn
    assert.has_error(function() conn:sink("x", {}, 0, 1) end)
    assert.has_error(function() conn:sink(1, 5, 0, 1) end)
    assert.has_error(function() conn:sink(1, {}, -1, 1) end)
    assert.has_error(function() conn:sink(1, {}, 0, -1) end)
    assert.is_nil(core.sink) -- a conn method, not a module function
  end)
end)
