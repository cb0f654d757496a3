-- plush.debugger on local errors: the frames the shell's message handler
-- keeps, %debug's commands on them (scripted input), the source of
-- functions typed in the shell (??name), and the bounds.
local debugger = require "plush.debugger"

-- %debug as registered, and a shell table whose input is `lines`
local debug_magic
debugger.register(function(name, fn) if name == "debug" then debug_magic = fn end end)

local function shell(lines)
  local sh = {printed = {}}
  local i = 0
  sh.out = function(s) sh.printed[#sh.printed + 1] = s:gsub("\n$", "") end
  sh.ask = function() i = i + 1 return lines[i] end
  return sh
end

local here = debug.getinfo(1, "S").short_src

-- runs `code` (chunk name "=stdin", kept as the shell keeps it) as the
-- shell does: under a handler that captures, then the failure noted
local function fail_here(sh, code)
  debugger.keep_chunk(code, "=stdin")
  local f = assert(load(code, "=stdin"))
  local ok, err = xpcall(f, function(e)
    debugger.capture(e, 2, here) -- frames of this file end it, as the shell's
    return e
  end)
  assert.is_false(ok)
  debugger.note(sh, err, code)
  return err
end

describe("debugger", function()
  it("walks the frames of a local error and evaluates in their scope", function()
    local sh = shell({"p y", "up", "p m, a", "up", "p secret.name", "where", "l", "down 9",
      "nosuch.x", "q"})
    fail_here(sh, table.concat({
      "local function inner(x, ...) local y = x * 2; error('boom ' .. y) end",
      "local function mid(a) local m = a + 1; inner(m, 'v') end",
      "local function outer() local secret = {41, name = 's'}; mid(secret[1]) end",
      "outer()"}, "\n"))
    debug_magic("", sh)
    local text = table.concat(sh.printed, "\n")
    assert.equal(table.concat({
      "here: stdin:1: boom 84",
      "> #2  stdin:1 in upvalue 'inner'",
      "84",
      "> #3  stdin:2 in upvalue 'mid'",
      "42, 41",
      "> #4  stdin:3 in local 'outer'",
      '"s"',
      "  #1  [C] in global 'error'",
      "  #2  stdin:1 in upvalue 'inner'",
      "  #3  stdin:2 in upvalue 'mid'",
      "> #4  stdin:3 in local 'outer'",
      "  #5  stdin:4 in main chunk",
      "   3 -> local function outer() local secret = {41, name = 's'}; mid(secret[1]) end",
      "newest frame",
      "*** debug:1: attempt to index a nil value (global 'nosuch')"}, "\n"), text)
  end)

  it("keeps at most 32 levels and 64 locals of each, innermost first", function()
    local sh = shell({"p n", "where", "q"})
    fail_here(sh, "local function deep(n) if n == 0 then error('bottom') end " ..
      "return 1 + deep(n - 1) end deep(100)")
    debug_magic("", sh)
    assert.equal("0", sh.printed[3])
    assert.equal("  #32  stdin:1 in upvalue 'deep'", sh.printed[#sh.printed - 1])
    assert.equal("  (deeper frames were not kept)", sh.printed[#sh.printed])
  end)

  it("shows the source of functions typed in the shell", function()
    debugger.keep_chunk("x = 1", "=stdin")
    local code = "function typed(a)\n  return a + 1\nend"
    debugger.keep_chunk(code, "=stdin")
    debugger.keep_chunk("y = 2", "=stdin")
    load(code, "=stdin")()
    assert.equal(code, debugger.source_of(typed)) -- luacheck: ignore typed
    typed = nil -- luacheck: ignore typed
    -- a function of a chunk the shell did not keep
    assert.is_nil(debugger.source_of(load("return function() end", "=stdin")()))
    assert.is_nil(debugger.source_of(print))
  end)

  it("refuses a bad engine and has nothing to debug before an error", function()
    assert.has_error(function() debug_magic("x", shell({})) end, "usage: %debug [ENGINE]")
    assert.has_error(function() debug_magic("", shell({})) end, "%debug: no error to debug")
    assert.has_error(function() debug_magic("", {}) end, "%debug needs the interactive shell")
  end)
end)
