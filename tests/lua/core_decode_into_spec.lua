-- core.decode_into (shell/lua_values.c, core/codec_dec.c's
-- plush_decode_into): a map chunk's reply, its numbers written straight
-- into the result table at an offset; anything else refused (nil).
local core = require("fake_core").real

-- a reply as an engine sends it: {r = packed items, started, completed}
local function reply(items, m, extra)
  local r = table.move(items, 1, m, 1, {})
  r.n = m
  local v = {r = r, started = 1.25, completed = 2.5}
  for k, x in pairs(extra or {}) do v[k] = x end
  return core.encode(v)
end

local function bits(x) return math.type(x) .. string.pack("n", x) end

describe("core.decode_into", function()
  it("writes the numbers at the offset, exact, and returns the reply", function()
    local items = {0, 1, -1, 127, 128, -33, 255, 65536, -40000, 2 ^ 31, math.maxinteger,
      math.mininteger, (1 << 53) + 1, 0.1, -0.0, 1 / 0, 2.0 ^ 53 + 2, 1.5, 3.0}
    local m = #items
    local t = core.table(m + 4)
    t[1], t[2] = "a", "b"
    local v = core.decode_into(reply(items, m), t, 2, m)
    assert.is_table(v)
    assert.equal(t, v.r)
    assert.equal(1.25, v.started)
    assert.equal(2.5, v.completed)
    assert.equal("a", t[1])
    assert.equal("b", t[2])
    for i = 1, m do assert.equal(bits(items[i]), bits(t[2 + i])) end
    assert.is_nil(t[m + 3])
  end)

  it("keeps nil holes and NaN", function()
    local items = {1, nil, 2.5, nil, 0 / 0}
    local t = core.table(5)
    assert.is_table(core.decode_into(reply(items, 5), t, 0, 5))
    assert.equal(1, t[1])
    assert.is_nil(t[2])
    assert.equal(2.5, t[3])
    assert.is_nil(t[4])
    assert.is_true(t[5] ~= t[5])
  end)

  it("refuses what is not a reply of m numbers or nils", function()
    local t = core.table(10)
    assert.is_nil(core.decode_into(reply({1, "x", 3}, 3), t, 0, 3))
    assert.is_nil(core.decode_into(reply({1, {2}, 3}, 3), t, 0, 3))
    assert.is_nil(core.decode_into(reply({1, true, 3}, 3), t, 0, 3))
    assert.is_nil(core.decode_into(reply({1, 2, 3}, 3), t, 0, 2))  -- m differs
    assert.is_nil(core.decode_into(reply({1, 2, 3}, 3), t, 8, 3))  -- no room
    assert.is_nil(core.decode_into(reply({1, 2, 3}, 3, {tostring = {1}}), t, 0, 3))
    assert.is_nil(core.decode_into(core.encode({r = 5}), t, 0, 1))
    assert.is_nil(core.decode_into(core.encode({1, 2, 3}), t, 0, 3))
    assert.is_nil(core.decode_into(core.encode(42), t, 0, 0))
    assert.is_nil(core.decode_into("", t, 0, 0))
    assert.is_nil(core.decode_into(reply({1, 2, 3}, 3) .. "\0", t, 0, 3)) -- trailing
    assert.has_error(function() core.decode_into("", t, -1, 0) end)
    assert.has_error(function() core.decode_into("", 5, 0, 0) end)
  end)

  it("refuses every truncation and single-byte corruption without harm", function()
    local items = {}
    for i = 1, 40 do items[i] = i % 3 == 0 and i * 0.5 or i * 100000 end
    local s = reply(items, 40)
    local t = core.table(40)
    for len = 0, #s - 1 do
      assert.is_nil(core.decode_into(s:sub(1, len), t, 0, 40))
    end
    for i = 1, #s do
      for _, b in ipairs{0x00, 0x7f, 0xc1, 0xc9, 0xdc, 0xff} do
        local bad = s:sub(1, i - 1) .. string.char(b) .. s:sub(i + 1)
        local v = core.decode_into(bad, t, 0, 40)
        if v ~= nil then assert.equal(t, v.r) end
      end
    end
    assert.equal(t, core.decode_into(s, t, 0, 40).r)
    for i = 1, 40 do assert.equal(bits(items[i]), bits(t[i])) end
  end)
end)
