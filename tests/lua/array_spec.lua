-- plush.array through the views (push, pull, scatter, gather, map) against
-- the fake core, whose values cross the real codec; core/array.c's own
-- behaviour is tests/test_array.c's.
local fake = require("fake_core").install()
local plush = require "plush"
local deferred = require "plush.deferred"

local A = plush.array

describe("plush.array through views", function()
  local rc, all, saved
  before_each(function()
    fake.reset{n = 3}
    rc = fake.client{output = false}
    all = rc:view()
    saved = deferred.on_unhandled
    deferred.on_unhandled = function() end
  end)
  after_each(function()
    rc:close()
    collectgarbage()
    deferred.on_unhandled = saved
  end)

  it("is the module require 'plush.array' gives", function()
    assert.equal(require "plush.array", A)
    assert.is_true(A.is(A{1}))
  end)

  it("push and pull carry an array as an array", function()
    local a = A{1.5, -0.0, 0 / 0}
    all:push{a = a}
    local back = rc[1]:pull("a")
    assert.is_true(A.is(back))
    assert.equal(a:bytes(), back:bytes())
    assert.equal("f64", back:type())
  end)

  it("scatter splits an array into arrays, gather joins them into one", function()
    local a = A.range(10)
    all:scatter("part", a)
    local parts = all:pull("part")
    assert.equal("plush.array i64[4]: {1, 2, 3, 4}", tostring(parts[1]))
    assert.equal("plush.array i64[3]: {8, 9, 10}", tostring(parts[3]))
    local g = all:gather("part")
    assert.is_true(A.is(g))
    assert.is_true(g == a)
  end)

  it("gather of arrays of two types gives f64, of arrays and tables a table", function()
    rc[0]:push{p = A{1, 2}}
    rc[1]:push{p = A{2.5}}
    rc[2]:push{p = A({7}, "u8")}
    local g = all:gather("p")
    assert.equal("plush.array f64[4]: {1.0, 2.0, 2.5, 7.0}", tostring(g))
    rc[2]:push{p = {"x"}}
    assert.same({1, 2, 2.5, "x"}, all:gather("p"))
  end)

  it("map over an array gives an array when every result is a number", function()
    local r = all:map(function(x) return x * 2 end, A.range(10))
    assert.equal("i64", r:type())
    assert.is_true(r == A.range(2, 20, 2))
    r = all:map(function(x) return x ^ 2 end, A.range(7))
    assert.equal("f64", r:type())
    assert.equal(49.0, r[7])
    -- integers on one engine, floats on another: f64
    r = all:map(function(x) if x > 5 then return x + 0.5 end return x end, A.range(9))
    assert.equal("plush.array f64[9]: {1.0, 2.0, 3.0, 4.0, 5.0, 6.5, 7.5, 8.5, ...}",
      tostring(r))
  end)

  it("map over an array gives a table when a result is no number", function()
    local r = all:map(function(x) if x == 5 then return "five" end return x end, A.range(6))
    assert.is_false(A.is(r))
    assert.same({1, 2, 3, 4, "five", 6}, {table.unpack(r, 1, 6)})
    assert.equal(6, #r)
    r = all:map(function(x) if x == 2 then return nil end return x end, A.range(3))
    assert.equal(3, #r)
    assert.is_nil(r[2])
  end)

  it("map in chunks, on a balanced view, unordered, and over nothing", function()
    local f = function(x) return -x end
    local r = all:with{chunksize = 3}:map(f, A.range(10))
    assert.is_true(r == A.range(-1, -10, -1))
    r = rc:balanced{chunksize = 4}:map(f, A.range(10, 1, -1.0))
    assert.is_true(r == A.range(-10, -1))
    r = all:with{ordered = false}:map(f, A.range(5))
    assert.equal(5, #r)
    assert.equal(-15, r:sum())
    r = all:map(f, A.new(0, "i32"))
    assert.equal("plush.array i32[0]: {}", tostring(r))
  end)

  it("an error in f names the item", function()
    local ok, e = pcall(all.map, all, function(x) if x == 8 then error("boom", 0) end return x end,
      A.range(9))
    assert.is_false(ok)
    assert.equal("boom", e.message)
  end)
end)
