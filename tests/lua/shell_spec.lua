-- plush.shell: chunks, completion and whole sessions (plain-line mode, as
-- with a pipe on stdin) against the fake core. The terminal side (libedit,
-- the tty) is tested end to end: tests/e2e/shell_*.sh.
local fake = require("fake_core").install()
local deferred = require "plush.deferred"
local shell = require "plush.shell"

-- plush.edit without libedit: what the shell uses when not on a terminal.
local function fake_edit()
  local e = {available = false, armed = {}, trapped = {}}
  function e.trap(on) e.trapped[#e.trapped + 1] = on end
  function e.arm(on) e.armed[#e.armed + 1] = on end
  function e.interrupted() return false end
  function e.width() return 40 end
  function e.wait() return true end
  return e
end

-- Run `f` with stdout captured; returns what it wrote.
local function capture(f)
  local buf = {}
  local so = io.stdout
  io.stdout = {write = function(self, ...)
    for i = 1, select("#", ...) do buf[#buf + 1] = tostring((select(i, ...))) end
    return self
  end, flush = function() end}
  local ok, err = pcall(f)
  io.stdout = so
  assert(ok, err)
  return table.concat(buf)
end

local function util_has(list, x)
  for _, v in ipairs(list) do
    if v == x then return true end
  end
  return false
end

describe("shell", function()
  describe("compile", function()
    it("compiles expressions as returns, statements as they are", function()
      assert.same({n = 1, 3}, table.pack(shell.compile("1 + 2", "=t")()))
      assert.same({n = 0}, table.pack(shell.compile("local x = 1", "=t")()))
      assert.same({n = 2, 1, 2}, table.pack(shell.compile("= 1, 2", "=t")()))
    end)

    it("tells an incomplete chunk from a syntax error", function()
      assert.same({nil, "incomplete"}, {shell.compile("for i = 1, 3 do", "=t")})
      assert.same({nil, "incomplete"}, {shell.compile("t = {1,", "=t")})
      local f, err = shell.compile("x = = 1", "=t")
      assert.is_nil(f)
      assert.matches("unexpected symbol", err)
    end)

    it("uses the environment given", function()
      local env = {y = 7}
      assert.equal(7, shell.compile("y", "=t", env)())
    end)
  end)

  describe("incomplete", function()
    local sh = {env = _G}
    it("continues Lua like lua does", function()
      assert.is_true(shell.incomplete("function f()", sh))
      assert.is_false(shell.incomplete("function f() end", sh))
      assert.is_false(shell.incomplete("x = = 1", sh))
    end)

    it("continues the code of %px and %pn, not other magics", function()
      assert.is_true(shell.incomplete("%px for i = 1, 3 do", sh))
      assert.is_false(shell.incomplete("%px for i = 1, 3 do end", sh))
      assert.is_true(shell.incomplete("%pn 2 if x then", sh))
      -- after %px's options, and %pn's list
      assert.is_true(shell.incomplete("%px -t 0,1 --no-stream for i = 1, 3 do", sh))
      assert.is_true(shell.incomplete("%pn 0,2 -a if x then", sh))
      assert.is_true(shell.incomplete("%px -- --[[c]] while x do", sh))
      assert.is_false(shell.incomplete("%px -t 0 x = 1", sh))
      -- wrong options: not continued, the error comes at once
      assert.is_false(shell.incomplete("%px --nope for i = 1, 3 do", sh))
      assert.is_false(shell.incomplete("%px x", sh))
      assert.is_false(shell.incomplete("%who", sh))
      assert.is_false(shell.incomplete("%time for", sh))
    end)

    it("never continues ?help and !commands", function()
      assert.is_false(shell.incomplete("?string.format", sh))
      assert.is_false(shell.incomplete("x?", sh))
      assert.is_false(shell.incomplete("!ls (", sh))
    end)

    it("under %autopx, continues the engines' code", function()
      local ap = {env = _G, autopx = true}
      assert.is_true(shell.incomplete("while true do", ap))
      assert.is_false(shell.incomplete("engine.id", ap))
    end)
  end)

  describe("local_names", function()
    local env = setmetatable({alpha = 1, beta = {gamma = 1, delta = print},
      obj = setmetatable({}, {__index = {method = print, field = 1}})}, {__index = _G})

    it("lists globals (through __index) and keywords", function()
      local names = shell.local_names(env, "", "")
      assert.is_true(names.alpha)
      assert.is_true(names.string)
      assert.is_true(names["function"])
    end)

    it("lists fields, and methods after ':'", function()
      assert.same({gamma = true, delta = true}, shell.local_names(env, "beta", "."))
      assert.same({method = true, field = true}, shell.local_names(env, "obj", "."))
      assert.same({method = true}, shell.local_names(env, "obj", ":"))
      assert.is_true(shell.local_names(env, "alpha", ".").x == nil)
    end)

    it("knows the string methods of a string", function()
      env.s = "text"
      assert.is_true(shell.local_names(env, "s", ":").upper)
    end)
  end)

  describe("a session", function()
    local rc, sh, saved_unhandled

    before_each(function()
      fake.reset{n = 2}
      rc = fake.client{output = false}
      sh = {rc = rc, targets = "all", block = true, env = setmetatable({}, {__index = _G})}
      saved_unhandled = deferred.on_unhandled
    end)
    after_each(function()
      rc:close()
      deferred.on_unhandled = saved_unhandled
    end)

    -- A whole plain-line session fed with `lines`: its output.
    local function session(lines)
      local i = 0
      local read = io.read
      io.read = function()
        i = i + 1
        return lines[i]
      end
      local out = capture(function()
        assert.equal(0, shell.run(rc, sh, {edit = fake_edit()}))
      end)
      io.read = read
      return out
    end

    it("prints values like lua, tables laid out to the width", function()
      local out = session{"x = 40", "x + 2", "'text'", "return 1, nil, 'a'",
        "t = {}", "for i = 1, 12 do t[i] = i * 1000 end", "t"}
      assert.matches("^42\ntext\n1\tnil\ta\n{\n  1000,\n  2000,\n", out)
      assert.matches("  12000,\n}\n$", out)
    end)

    it("reads multi-line chunks", function()
      local out = session{"function f(a,", "b)", "return a + b", "end", "f(1, 2)"}
      assert.equal("3\n", out)
    end)

    -- A session whose input is not a terminal: its output and status.
    local function piped(lines)
      local i, st = 0, nil
      local read = io.read
      io.read = function()
        i = i + 1
        return lines[i]
      end
      local out = capture(function() st = shell.run(rc, sh, {edit = fake_edit()}) end)
      io.read = read
      return out, st
    end

    it("prints errors with the chunk's traceback", function()
      local out, st = piped{"error('boom')", "1 + 1"}
      assert.matches("^stdin:1: boom\nstack traceback:\n.-in main chunk\n$", out)
      assert.not_matches("shell%.lua", out)
      assert.equal(1, st)
      out = piped{"x = = 1"}
      assert.equal("stdin:1: unexpected symbol near '='\n", out)
      out = piped{"error({})"}
      assert.equal("(error object is a table value)\n", out)
      -- a request an earlier Ctrl-C cancelled: its error as it is, not
      -- taken for a Ctrl-C now
      out = piped{"error(require('plush.errors').Interrupted{message = "
        .. "'interrupted: the take was cancelled'}, 0)"}
      assert.equal("interrupted: the take was cancelled\n", out)
    end)

    it("stops piped input at the first error, local or remote, status 1", function()
      local out, st = piped{"x = 1", "%px error('boom')", "print('not reached')"}
      assert.equal(1, st)
      assert.not_matches("not reached", out)
      assert.matches("boom", out)
      out, st = piped{"'a'", "'b'"}
      assert.equal(0, st)
      assert.equal("a\nb\n", out)
    end)

    it("says a usage mistake in one line, without plush's frames", function()
      for _, line in ipairs{"%pn abc", "%targets foo", "%nosuch", "%px", "%pull",
          "%targets 0,7", "%push nosuch"} do
        local out, st = piped{line}
        assert.equal(1, st)
        assert.matches("^[^\n]+\n$", out)
        assert.not_matches("traceback", out)
      end
      -- (the position is this spec's line: util.raise blames the caller)
      assert.matches("usage: %%pn ENGINE%[,ENGINE%.%.%.%] %[options%] CODE\n$", (piped{"%pn abc"}))
      assert.matches("no engine 7 %(%%engines lists them%)\n$", (piped{"%targets 0,7"}))
      assert.matches("cannot push nosuch: no such global here\n$", (piped{"%push nosuch"}))
      assert.matches("usage: %%pull NAME %[NAME %.%.%.%]\n$", (piped{"%pull"}))
    end)

    it("runs magics, %px output and results tagged", function()
      local out = session{"%px x = engine.id + 1", "%px print('hi') return x", "%pn 1 x"}
      assert.equal("[engine 0] hi\n[engine 1] hi\n[engine 0] 1\n[engine 1] 2\n"
        .. "[engine 1] 2\n", out)
    end)

    it("sends lines to the engines under %autopx", function()
      local out = session{"%autopx", "engine.id * 10", "%autopx", "1"}
      assert.equal("autopx on: lines go to %px\n[engine 0] 0\n[engine 1] 10\nautopx off\n1\n",
        out)
    end)

    it("prints %block off results when they arrive", function()
      local out = session{"%block off", "%px sleep(1) return 'late'", "%result"}
      assert.matches("submitted to 2 engine%(s%); the results print when they arrive\n", out)
      assert.matches('%[engine 0%] "late"\n%[engine 1%] "late"\n$', out)
    end)

    it("leaves on os.exit, closing the client", function()
      local exited
      local real = os.exit
      local stub = function(code) exited = code end
      rawset(os, "exit", stub)
      session{"os.exit(3)"}
      rawset(os, "exit", real)
      assert.equal(3, exited)
      assert.is_true(rc.closed)
    end)
  end)

  describe("completion", function()
    local rc, sh, s

    before_each(function()
      fake.reset{n = 2}
      rc = fake.client{output = false}
      sh = {rc = rc, targets = "all", block = true,
        env = setmetatable({my_local = 1, tbl = {field_a = 1, field_b = 2}}, {__index = _G})}
      s = shell.new(rc, sh, {edit = fake_edit()})
    end)
    after_each(function() rc:close() end)

    it("completes magic names at the start of a line", function()
      assert.same({"%pn", "%prun", "%pull", "%push", "%px", "%pxconfig", "%pxresult"},
        s:complete("%p", "%p", 0))
      assert.same({}, s:complete("%p", "x = %p", 4))
    end)

    it("completes local globals and fields", function()
      assert.same({"my_local"}, s:complete("my_", "my_", 0))
      assert.same({"tbl.field_a", "tbl.field_b"}, s:complete("tbl.fi", "x = tbl.fi", 4))
      assert.same({"string.format"}, s:complete("string.for", "string.for", 0))
    end)

    it("completes methods through metatables: the client, views, Deferreds", function()
      sh.env.rc = rc
      local got = s:complete("rc:", "rc:", 0)
      for _, m in ipairs{"rc:view", "rc:balanced", "rc:interrupt", "rc:restart", "rc:ids",
          "rc:wait"} do
        assert.truthy(util_has(got, m), m)
      end
      -- '_' names are internal: listed only when typed
      assert.falsy(util_has(got, "rc:_pump"))
      assert.truthy(util_has(s:complete("rc:_pu", "rc:_pu", 0), "rc:_pump"))
      assert.same({"rc:restart"}, s:complete("rc:rest", "rc:rest", 0))
      sh.env.v = rc:view()
      assert.same({"v:execute"}, s:complete("v:exe", "v:exe", 0))
      assert.truthy(util_has(s:complete("v:", "v:", 0), "v:scatter"))
      sh.env.d = rc:view{block = false}:execute("return 1")
      assert.same({"d:get"}, s:complete("d:ge", "d:ge", 0))
      assert.truthy(util_has(s:complete("d:", "d:", 0), "d:add_callbacks"))
      -- a function __index without __complete lists its metatable's fields
      sh.env.obj = setmetatable({}, {__index = function() end, hop = print, __len = print})
      assert.same({"obj:hop"}, s:complete("obj:", "obj:", 0))
      sh.env.d:wait()
    end)

    it("completes remote names after %px, %pn, %pull, %who and under %autopx", function()
      rc:view():execute("remote_one = 1 remote_two = 2")
      assert.same({"remote_one", "remote_two"},
        s:complete("remote_", "%px return remote_", 11))
      assert.same({"remote_one"}, s:complete("remote_o", "%pn 1 remote_o", 6))
      assert.same({"remote_two"}, s:complete("remote_t", "%pull remote_t", 6))
      sh.autopx = true
      assert.same({"remote_one", "remote_two"}, s:complete("remote", "remote", 0))
      assert.same({}, s:complete("remote", "%push remote", 6))
    end)

    it("caches remote names briefly", function()
      rc:view():execute("cached_a = 1")
      assert.same({"cached_a"}, s:complete("cached", "%px cached", 4))
      rc:view():execute("cached_b = 1")
      assert.same({"cached_a"}, s:complete("cached", "%px cached", 4))
      fake.state.clock = fake.state.clock + shell.names_ttl + 1
      assert.same({"cached_a", "cached_b"}, s:complete("cached", "%px cached", 4))
    end)

    it("waits only a moment for busy engines", function()
      rc:view{block = false}:execute("sleep(10)")
      local t0 = fake.state.clock
      assert.same({}, s:complete("x", "%px x", 4))
      assert.is_true(fake.state.clock - t0 <= shell.names_wait + 1e-9)
      rc:wait()
    end)
  end)

  it("colours only when asked and never under NO_COLOR", function()
    assert.is_nil(shell.painter(false))
    local p = shell.painter(true)
    assert.equal("\27[31mx\27[0m", p("error", "x"))
    assert.equal("x", p("unknown style", "x"))
    assert.equal("\1\27[31m\2x\1\27[0m\2", shell.painter(true, true)("error", "x"))
    -- the fake core is never a terminal
    assert.is_false(shell.colors_on(1))
  end)

  it("puts the history under XDG_STATE_HOME", function()
    assert.matches("/plush/history$", shell.history_path())
  end)
end)
