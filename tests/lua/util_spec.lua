-- plush.util.check: the argument checks every public function makes.
local util = require "plush.util"

describe("util.check", function()
  local function check(...)
    local ok, e = pcall(util.check, ...)
    return ok and "ok" or e
  end

  it("passes a value of any of the listed types, wherever it is listed", function()
    assert.equal("ok", check(1, 1, "f", "integer"))
    assert.equal("ok", check(nil, 1, "f", "integer", "table", "nil"))
    assert.equal("ok", check(2, 1, "f", "string", "table", "integer"))
    assert.equal("ok", check(2, 1, "f", "string", "table", "nil", "integer"))
    assert.equal("ok", check(2.5, 1, "f", "string", "table", "nil", "number"))
    assert.equal(7, util.check(7, 1, "f", "number", "nil"))
  end)

  it("refuses a float where an integer is wanted, with the list of types", function()
    assert.matches("bad argument #2 to 'f' %(integer or table expected, got number%)$",
      check(1.5, 2, "f", "integer", "table"))
    assert.matches(
      "bad argument #1 to 'g' %(string or table or nil or integer expected, got boolean%)$",
      check(true, 1, "g", "string", "table", "nil", "integer"))
    assert.matches("bad argument #3 to 'h' %(function expected, got nil%)$",
      check(nil, 3, "h", "function"))
  end)
end)
