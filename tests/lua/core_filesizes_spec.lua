-- core.filesizes (shell/lua_sys.c): the sizes mapreduce shares files by.
-- The real module.
local core = require("fake_core").real

describe("core.filesizes", function()
  local dir
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "/sub'"))
    for name, bytes in pairs{empty = 0, one = 1, big = 70000} do
      local f = assert(io.open(dir .. "/" .. name, "wb"))
      f:write(("x"):rep(bytes))
      f:close()
    end
  end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("gives each regular file's size, 0 for what is missing or not a file", function()
    assert.same({70000, 0, 1, 0, 0, 70000}, core.filesizes{dir .. "/big", dir .. "/empty",
      dir .. "/one", dir .. "/nonexistent", dir .. "/sub", dir .. "/big"})
    assert.same({}, core.filesizes{})
  end)

  it("refuses what is not a sequence of names", function()
    assert.has_error(function() core.filesizes("x") end,
      "bad argument #1 to 'filesizes' (table expected, got string)")
    local ok, err = pcall(core.filesizes, {dir .. "/one", 7})
    assert.is_false(ok)
    assert.matches("filesizes: name 2 is a number, not a string$", err)
  end)
end)
