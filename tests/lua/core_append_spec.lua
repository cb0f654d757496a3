-- core.table and core.append (shell/lua_values.c, core/codec.c's
-- plush_seq_append): the joining of a map's chunks. The real module.
local core = require("fake_core").real

describe("core.append", function()
  it("appends numbers, keeping integers and floats apart", function()
    local t = core.table(5)
    assert.equal(2, core.append(t, 0, {1, 2.0}, 2))
    assert.equal(5, core.append(t, 2, {3.5, -0.0, math.mininteger}, 3))
    assert.same({1, 2.0, 3.5, -0.0, math.mininteger}, t)
    assert.equal("integer", math.type(t[1]))
    assert.equal("float", math.type(t[2]))
    assert.is_true(1 / t[4] < 0) -- -0.0 stays negative
    assert.equal(5, #t)
  end)

  it("appends strings, tables, booleans and holes as table.move does", function()
    local inner = {x = 1}
    local src = {"a", inner, false, nil, true}
    local t = core.table(2)
    t[1] = 0
    assert.equal(6, core.append(t, 1, src, 5))
    assert.equal(0, t[1])
    assert.equal("a", t[2])
    assert.equal(inner, t[3])
    assert.equal(false, t[4])
    assert.is_nil(t[5])
    assert.equal(true, t[6])
    collectgarbage() -- the strings and tables copied are still reachable
    assert.equal("a", t[2])
    assert.equal(1, t[3].x)
  end)

  it("joins into a table without room, and into the hash part", function()
    local t = {}
    local n = 0
    for k = 1, 5 do
      local part = {}
      for i = 1, 1000 do part[i] = k * 1000 + i end
      n = core.append(t, n, part, 1000)
    end
    assert.equal(5000, n)
    assert.equal(5000, #t)
    for i = 1, 5000 do assert.equal(((i - 1) // 1000 + 1) * 1000 + (i - 1) % 1000 + 1, t[i]) end
  end)

  it("moves within one table as table.move does, either direction", function()
    local a, b = {1, 2, 3, 4, 5, 6}, {1, 2, 3, 4, 5, 6}
    core.append(a, 2, a, 4)
    table.move(b, 1, 4, 3)
    assert.same(b, a)
    local s, u = {"a", "b", "c", "d"}, {"a", "b", "c", "d"}
    core.append(s, 1, s, 3)
    table.move(u, 1, 3, 2)
    assert.same(u, s)
  end)

  it("reads and writes raw, ignoring metamethods", function()
    local seen = 0
    local src = setmetatable({}, {__index = function() seen = seen + 1 return 9 end})
    src[1] = 1
    local t = setmetatable({}, {__newindex = function() seen = seen + 1 end})
    core.append(t, 0, src, 2)
    assert.equal(0, seen)
    assert.equal(1, rawget(t, 1))
    assert.is_nil(rawget(t, 2))
  end)

  it("refuses bad arguments with one-line errors", function()
    assert.error_matches(function() core.append({}, -1, {}, 1) end,
      "bad argument #2 to '.-append' %(a count >= 0%)")
    assert.error_matches(function() core.append({}, 0, {}, -1) end,
      "bad argument #4 to '.-append' %(a count >= 0%)")
    assert.error_matches(function() core.append({}, 0, "x", 1) end,
      "bad argument #3 to '.-append' %(table expected, got string%)")
    assert.error_matches(function() core.table(-1) end,
      "bad argument #1 to '.-table' %(a size from 0 to 2%^28%)")
    assert.equal(0, core.append({}, 0, {}, 0))
  end)
end)
