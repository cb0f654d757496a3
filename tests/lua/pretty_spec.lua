-- plush.pretty: one-line rendering of values.
local pretty = require "plush.pretty"

describe("pretty", function()
  it("renders scalars", function()
    assert.equal("1", pretty(1))
    assert.equal("1.0", pretty(1.0))
    assert.equal("0.1", pretty(0.1))
    assert.equal("0.30000000000000004", pretty(0.1 + 0.2))
    assert.equal("-0.0", pretty(-0.0))
    assert.equal("inf", pretty(math.huge))
    assert.equal("-inf", pretty(-math.huge))
    assert.equal("nan", pretty(0 / 0))
    assert.equal("true", pretty(true))
    assert.equal("nil", pretty(nil))
  end)

  it("quotes strings with %q, newlines as \\n", function()
    assert.equal('"hi"', pretty("hi"))
    assert.equal('"a\\nb"', pretty("a\nb"))
    assert.equal('"say \\"x\\""', pretty('say "x"'))
    assert.equal('"\\0"', pretty("\0"))
  end)

  it("renders arrays, then sorted keys", function()
    assert.equal("{}", pretty({}))
    assert.equal("{1, 2, 3}", pretty({1, 2, 3}))
    assert.equal('{1, 2, a = "x", b = {c = true}}', pretty({1, 2, b = {c = true}, a = "x"}))
    assert.equal('{[0] = 1, [1.5] = 3, [10] = 2, ["a b"] = 4, ["end"] = 5}',
      pretty({[0] = 1, [10] = 2, [1.5] = 3, ["a b"] = 4, ["end"] = 5}))
    assert.equal("{[true] = 1}", pretty({[true] = 1}))
  end)

  it("sorts numbers before strings before booleans", function()
    assert.equal('{[0] = 0, a = 1, [false] = 2, [true] = 3}',
      pretty({a = 1, [0] = 0, [true] = 3, [false] = 2}))
  end)

  it("shows cycles as <cycle>, shared tables in full", function()
    local t = {name = "t"}
    t.self = t
    assert.equal('{name = "t", self = <cycle>}', pretty(t))
    local s = {1}
    assert.equal("{{1}, {1}}", pretty({s, s}))
  end)

  it("stops at depth and max_items", function()
    assert.equal("{{...}}", pretty({{{1}}}, {depth = 1}))
    assert.equal("{1, 2, ...(3 more)}", pretty({1, 2, 3, 4, 5}, {max_items = 2}))
  end)

  it("shows nil entries of result arrays", function()
    local util = require "plush.util"
    assert.equal("{nil, 2, nil}", pretty(util.results({nil, 2}, 3)))
  end)

  it("uses __tostring when a table has one", function()
    local e = setmetatable({}, {__tostring = function() return "E!" end})
    assert.equal("{E!}", pretty({e}))
  end)

  it("renders functions in angle brackets", function()
    assert.matches("^<function: .+>$", pretty(print))
  end)
end)
