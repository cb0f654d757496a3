-- plush.magic_session: numbered input/output, %history, %rerun, %reset,
-- init.lua; against the fake core.
local fake = require("fake_core").install()
local deferred = require "plush.deferred"
local magic = require "plush.magic"
local ms = require "plush.magic_session"

describe("session magics", function()
  local rc, shell, buf, saved

  local function text()
    local s = table.concat(buf)
    buf = {}
    return s
  end

  -- a line as the shell runs it: numbered, then handled
  local function run_here(l)
    local f = load("return " .. l, "=stdin", "t", shell.env) or assert(load(l, "=stdin", "t",
      shell.env))
    ms.record(shell, table.pack(f()))
  end

  local function line(l)
    ms.number(shell, l)
    if not magic.handle(l, shell) then run_here(l) end
    return text()
  end

  local function err(f)
    local ok, e = pcall(f)
    assert.is_false(ok)
    return (tostring(e):gsub("^[^:]*:%d+: ", ""))
  end

  before_each(function()
    fake.reset{n = 2}
    rc = fake.client{output = false}
    buf = {}
    shell = {rc = rc, targets = "all", block = true, env = {},
      out = function(s) buf[#buf + 1] = s end}
    shell.rerun = function(t)
      if not magic.handle(t, shell) then run_here(t) end
    end
    saved = deferred.on_unhandled
    deferred.on_unhandled = function() end
  end)
  after_each(function()
    rc:close()
    deferred.on_unhandled = saved
  end)

  it("numbers input and keeps output: In, Out, _, __, ___", function()
    line("1 + 1")
    line("nil")
    line("'b'")
    line("{3}")
    assert.same({"1 + 1", "nil", "'b'", "{3}"}, shell.env.In)
    assert.equal(2, shell.env.Out[1])
    assert.is_nil(shell.env.Out[2])
    assert.equal("b", shell.env.Out[3])
    assert.same({3}, shell.env._)
    assert.equal("b", shell.env.__)
    assert.equal(2, shell.env.___)
    assert.equal(4, shell.count)
  end)

  it("range reads N, N-M, N- and -K", function()
    assert.same({2}, ms.range("2", 5))
    assert.same({2, 3, 4}, ms.range("2-4", 5))
    assert.same({4, 5}, ms.range("4-", 5))
    assert.same({4, 5, 1}, ms.range("-2 1", 5))
    assert.equal("no input 6 here (this session has 1-5)", err(function() ms.range("6", 5) end))
    assert.equal("not a range of input numbers: 'x' (N, N-M, N- or -K)",
      err(function() ms.range("x", 5) end))
    assert.equal("no input yet", err(function() ms.range("1", 0) end))
    assert.equal("no input yet", err(function() ms.range("1", -1) end))
  end)

  it("%history lists this session's input, numbered with -n", function()
    assert.equal("%history: only the interactive shell keeps its input",
      err(function() magic.run("%history", shell) end))
    line("x = 1")
    line("for i = 1, 2 do\n  z = i\nend")
    line("y")
    assert.equal("x = 1\nfor i = 1, 2 do\n  z = i\nend\ny\n", line("%history"))
    assert.equal("2: for i = 1, 2 do\n     z = i\n   end\n3: y\n", line("%history -n 2-3"))
    assert.equal("1: x = 1\n4: %history\n5: %history -n 2-3\n", line("%history -n 1 -2"))
    assert.equal("%history: unknown option -z (%history [-n] [RANGE] [-g PATTERN])",
      err(function() line("%history -z") end))
  end)

  it("%history -g searches every session's input", function()
    -- the file's entries, then this session's (the current line last)
    shell.history_all = function()
      return {"old = 1", "print(old)", "x = 1", shell.In[shell.count]}
    end
    line("x = 1")
    assert.equal("old = 1\nprint(old)\n", line("%history -g old"))
    assert.equal("1: old = 1\n2: print(old)\n", line("%history -n -g old"))
    assert.equal("no match\n", line("%history -g nothing_like_it"))
    -- without the file, this session's
    shell.history_all = nil
    assert.equal("x = 1\n", line("%history -g x ="))
  end)

  it("%rerun runs past lines again, skipping %rerun lines", function()
    line("n = (n or 0) + 1")
    line("n * 10")
    assert.equal("In[1]: n = (n or 0) + 1\nIn[2]: n * 10\n", line("%rerun 1-2"))
    assert.equal(2, shell.env.n)
    assert.equal(20, shell.env._)
    assert.equal("In[3] is a %rerun: skipped\n", line("%rerun 3"))
    -- alone: the line before (here a %rerun too)
    assert.equal("In[4] is a %rerun: skipped\n", line("%rerun"))
    line("n")
    assert.equal("In[6]: n\n", line("%rerun"))
    assert.equal(2, shell.env._)
    assert.equal("no input 9 here (this session has 1-7)", err(function() line("%rerun 9") end))
    shell.rerun = nil
    assert.equal("%rerun: only the interactive shell keeps its input",
      err(function() line("%rerun 1") end))
  end)

  it("%reset clears the engines' globals, keeping engine and the libraries", function()
    rc:view():execute("a = 1 b = {}")
    rc[1]:execute("c = 3")
    -- a, b, c and the fake engines' own sleep()
    assert.equal("reset engines 0,1: 7 names cleared\n", line("%reset -f"))
    assert.is_nil(rawget(fake.env(0), "a"))
    assert.is_nil(rawget(fake.env(1), "c"))
    assert.equal(1, fake.env(1).engine.id)
    -- asked first; no answer but y clears nothing
    rc:view():execute("a = 1")
    shell.confirm = function() return "n" end
    assert.equal("nothing cleared\n", line("%reset"))
    assert.equal(1, rawget(fake.env(0), "a"))
    shell.confirm = function(q)
      assert.equal("clear every global on engines 0,1 (engine and the standard libraries"
        .. " stay)? [y/N] ", q)
      return "y"
    end
    assert.equal("reset engines 0,1: 2 names cleared\n", line("%reset"))
    -- nobody to ask (plush -e, piped input): refused, nothing cleared
    shell.confirm = nil
    rc:view():execute("a = 1")
    assert.equal("%reset: nobody to confirm it here: %reset -f clears without asking",
      err(function() line("%reset") end))
    assert.equal(1, rawget(fake.env(0), "a"))
    assert.equal("usage: %reset [-f]", err(function() line("%reset now") end))
  end)

  it("load_init runs init.lua with the shell table, one line on error", function()
    local path = os.tmpname()
    local function write(s)
      local f = assert(io.open(path, "w"))
      f:write(s)
      f:close()
    end
    shell.env = setmetatable({}, {__index = _G})
    write("local sh = ...\ninit_ran = true\nplush_magic_run = sh ~= nil\n")
    assert.is_nil(ms.load_init(shell, path))
    assert.is_true(shell.env.init_ran)
    assert.is_true(shell.env.plush_magic_run)
    write("x = 1\nerror('broken on purpose')\n")
    assert.equal(("error in %s: %s:2: broken on purpose"):format(path, path),
      ms.load_init(shell, path))
    write("this is not lua")
    assert.matches("^error in .-: .-:1: syntax error near 'is'$", ms.load_init(shell, path))
    os.remove(path)
    assert.is_nil(ms.load_init(shell, path))
    assert.matches("/plush/init%.lua$", ms.init_path())
  end)
end)
