-- End to end: values that travel are exact, sharing included (issue 12,
-- items 8 and 9). Runs against the cluster tests/e2e/lua_specs.sh starts.
local plush, file = require("real_cluster")("e2e values")
if not plush then return end

describe("e2e values", function()
  local rc, e

  setup(function()
    rc = plush.connect{file = file, timeout = 20}
    e = rc[rc:ids()[1]]
  end)
  teardown(function() rc:close() end)

  it("closures pushed together keep sharing their upvalue", function()
    local n = 0
    local function inc() n = n + 1 return n end
    local function add10() n = n + 10 return n end
    e:push{inc = inc, add10 = add10}
    assert.same({1, 11, 12}, {e:execute("return inc(), add10(), inc()")})
    -- and back: pulled together, they share it here
    local i2, a2 = e:pull{"inc", "add10"}
    assert.equal(13, i2())
    assert.equal(23, a2())
    assert.equal(0, n) -- the client's own variable is not the engine's
    assert.equal(debug.upvalueid(i2, 1), debug.upvalueid(a2, 1))
  end)

  it("a function's _ENV binds to the engine's globals", function()
    -- busted runs this file in an environment of its own: functions made
    -- here have it as _ENV; on the engine they see the engine's _G
    local f = load("return function() return x, type(engine) end", "=f", "t", {x = 7})()
    e:execute("x = 'engine x'")
    e:push{f = f}
    assert.same({"engine x", "table"}, {e:execute("return f()")})
  end)
end)
