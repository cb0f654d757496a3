-- End to end: plush.array on a real cluster -- the engines' own module,
-- arrays both ways bit for bit, scatter/gather and map giving arrays.
-- Runs against the cluster tests/e2e/lua_specs.sh starts.
local plush, file = require("real_cluster")("e2e array")
if not plush then return end

describe("e2e array", function()
  local rc, all, e
  local A = plush.array

  setup(function()
    rc = plush.connect{file = file, timeout = 30}
    all = rc:view()
    e = rc[rc:ids()[1]]
  end)
  teardown(function() rc:close() end)

  it("engines have the module, with require 'plush' too", function()
    assert.same({"plush.array f64[2]: {1.5, 2.0}", true, false},
      {e:execute([[local A = require "plush.array"
        return tostring(A{1.5, 2}), require("plush").array == A, _G.plush ~= nil]])})
  end)

  it("arrays travel both ways bit for bit", function()
    local bits = string.pack("<I8I8dddd", 0x7ff0000000000001, 0xfff8deadbeef0000, -0.0,
      1 / 0, 5e-324, 0.1 + 0.2)
    local a = A.frombytes(bits)
    local ints = A{math.mininteger, math.maxinteger, -1, 0}
    e:push{a = a, ints = ints, same = a}
    assert.same({"f64", 6, "i64", true}, {e:execute(
      "return a:type(), #a, ints:type(), rawequal(a, same)")})
    local back, iback = e:pull{"a", "ints"}
    assert.equal(bits, back:bytes())
    assert.is_true(iback == ints)
    assert.equal(math.mininteger, iback[1])
    -- made on the engine
    local r = e:execute("return require('plush.array').range(1, 3, 0.5)")
    assert.equal("plush.array f64[5]: {1.0, 1.5, 2.0, 2.5, 3.0}", tostring(r))
  end)

  it("scatter and gather of an array of 10^5", function()
    local a = A.range(100000)
    all:scatter("part", a)
    local n, k, sum = all:execute("return #part"), #rc:ids(), 0
    for _, m in ipairs(n) do sum = sum + m end
    assert.equal(100000, sum)
    assert.equal((100000 + k - 1) // k, n[1]) -- the first parts one longer
    assert.same({"i64"}, {all:execute("return part:type()")[k]})
    local g = all:gather("part")
    assert.is_true(A.is(g))
    assert.is_true(g == a)
  end)

  it("map x^10 over an array gives the serial results in an array", function()
    local a = A.range(1, 200000, 1.0)
    local f = function(x) return x ^ 10 end
    local r = all:map(f, a)
    assert.equal("f64", r:type())
    assert.equal(a:map(f):bytes(), r:bytes())
    local lb = rc:balanced():map(function(x) return x // 3 end, A.range(1000))
    assert.equal("i64", lb:type())
    assert.equal(333, lb[1000])
  end)

  it("a result that is no number makes a table; errors are one line", function()
    local r = all:map(function(x) return x == 4 and "four" or x end, A.range(5))
    assert.same({1, 2, 3, "four", 5}, {table.unpack(r, 1, 5)})
    local ok, err = pcall(e.execute, e, "local a = require('plush.array').new(2) a[3] = 1")
    assert.is_false(ok)
    assert.equal("execute:1: array index 3 out of range (1..2)", err.message)
    ok, err = pcall(e.execute, e, "return require('plush.array')({1, 'x'}, 'f64')")
    assert.is_false(ok)
    assert.equal("execute:1: bad argument #1 to 'array' (item 2: number expected, got string)",
      err.message)
  end)
end)
