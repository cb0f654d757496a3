-- plush.inspect: laying out values for the shell, describing them for %help.
local inspect = require "plush.inspect"

describe("inspect", function()
  describe("format", function()
    it("keeps what fits on one line as pretty renders it", function()
      assert.equal('{1, 2, a = "x"}', inspect.format({1, 2, a = "x"}, 80))
      assert.equal("42", inspect.format(42, 1))
      assert.equal('"s"', inspect.format("s", 1))
    end)

    it("lays out a wide table one entry a line, nested ones the same way", function()
      local t = {10, 20, name = "a long enough string", sub = {x = 1, y = 2}}
      assert.equal(table.concat({
        "{",
        "  10,",
        "  20,",
        '  name = "a long enough string",',
        "  sub = {x = 1, y = 2},",
        "}"}, "\n"), inspect.format(t, 30))
      assert.equal(table.concat({
        "{",
        "  sub = {",
        "    x = 1,",
        "    y = 2,",
        "  },",
        "}"}, "\n"), inspect.format({sub = {x = 1, y = 2}}, 12))
    end)

    it("keeps the limits: depth, items, cycles", function()
      local deep = {{{{1}}}}
      assert.equal("{{{{...}}}}", inspect.format(deep, 80, {depth = 3, items = 10}))
      local long = {}
      for i = 1, 30 do long[i] = i end
      local text = inspect.format(long, 20, {depth = 3, items = 5})
      assert.matches("  5,\n  %.%.%.%(25 more%)\n}$", text)
      local c = {}
      c.self = c
      assert.equal("{self = <cycle>}", inspect.format(c, 80))
      assert.matches("self = <cycle>", inspect.format(c, 5))
    end)

    it("uses __tostring and keeps odd keys readable", function()
      local obj = setmetatable({}, {__tostring = function() return "<obj>" end})
      assert.equal("<obj>", inspect.format(obj, 1))
      assert.equal('{\n  ["a b"] = 1,\n  [true] = 2,\n}',
        inspect.format({["a b"] = 1, [true] = 2}, 5))
    end)
  end)

  describe("describe", function()
    it("gives a Lua function's parameters and where it was defined", function()
      local function f(a, b, ...) return a, b, ... end
      local d = inspect.describe(f)
      assert.equal("function(a, b, ...)", d[1])
      assert.matches("^defined at .*inspect_spec%.lua:%d+$", d[2])
    end)

    it("names the standard library's C functions", function()
      assert.same({"builtin function string.format"}, inspect.describe(string.format))
      assert.same({"builtin function print"}, inspect.describe(print))
    end)

    it("sizes tables and lists an object's methods", function()
      local d = inspect.describe({1, 2, x = 3})
      assert.equal("table: 2 array items, 1 other keys", d[1])
      assert.equal("{1, 2, x = 3}", d[2])
      local Class = {__name = "Point", __index = {norm = print, scale = print, _hidden = print}}
      d = inspect.describe(setmetatable({}, Class))
      assert.equal("table (Point): 0 array items, 0 other keys", d[1])
      assert.equal("methods: norm, scale", d[2])
      Class.__tostring = function() return "<a point>" end
      assert.same({"Point object", "methods: norm, scale", "<a point>"},
        inspect.describe(setmetatable({}, Class)))
    end)

    it("describes strings and numbers", function()
      assert.same({"string, 3 bytes", '"a\\nb"'}, inspect.describe("a\nb"))
      assert.same({"integer 3"}, inspect.describe(3))
      assert.same({"float 0.5"}, inspect.describe(0.5))
      assert.same({"boolean true"}, inspect.describe(true))
    end)
  end)

  it("resolves name paths without raising", function()
    local env = {t = {k = {v = 1}}, bad = setmetatable({}, {__index = function() error("no") end})}
    assert.equal(1, inspect.resolve(env, "t.k.v"))
    assert.is_nil(inspect.resolve(env, "t.x.v"))
    assert.is_nil(inspect.resolve(env, "bad.x"))
    assert.equal(string.upper, inspect.resolve({s = "x"}, "s:upper"))
  end)

  it("has a remote describer that uses nothing but globals", function()
    local i = 1
    while true do
      local name = debug.getupvalue(inspect.remote, i)
      if not name then break end
      assert.equal("_ENV", name)
      i = i + 1
    end
    _G.inspect_spec_value = {1, 2, k = 1}
    assert.equal("table: 2 array items, 1 other keys", inspect.remote("inspect_spec_value"))
    _G.inspect_spec_value = nil
    assert.equal("builtin function", inspect.remote("string.format"))
    assert.equal('string, 3 bytes: "a\\nb"', (function()
      _G.inspect_spec_s = "a\nb"
      local r = inspect.remote("inspect_spec_s")
      _G.inspect_spec_s = nil
      return r
    end)())
    assert.is_nil(inspect.remote("no.such.thing"))
  end)
end)
