-- plush.magic: the %magics against the fake core.
local fake = require("fake_core").install()
local plush = require "plush"
local deferred = require "plush.deferred"
local magic = require "plush.magic"

describe("magics", function()
  local rc, shell, buf, saved

  local function text()
    local s = table.concat(buf)
    buf = {}
    return s
  end

  local function run(line)
    magic.run(line, shell)
    return text()
  end

  before_each(function()
    fake.reset{n = 4}
    rc = fake.client{output = false}
    buf = {}
    shell = {rc = rc, targets = "all", block = true, env = {},
      out = function(s) buf[#buf + 1] = s end}
    saved = deferred.on_unhandled
    deferred.on_unhandled = function() end
  end)
  after_each(function()
    rc:close()
    collectgarbage()
    collectgarbage()
    deferred.on_unhandled = saved
  end)

  describe("%px", function()
    it("prints nothing for nil results", function()
      assert.equal("", run("%px x = engine.id * 2"))
      assert.equal(6, fake.env(3).x)
    end)

    it("prints each engine's result, tagged, in order", function()
      run("%px x = engine.id * 2")
      assert.equal("[engine 0] 0\n[engine 1] 2\n[engine 2] 4\n[engine 3] 6\n",
        run("%px return x"))
    end)

    it("prints every value and pretty tables", function()
      assert.equal('[engine 1] 1, "a", {k = true}\n',
        run("%pn 1 return engine.id, 'a', {k = true}"))
    end)

    it("streams output before the results", function()
      assert.equal("[engine 0] hi\n[engine 1] hi\n[engine 2] hi\n[engine 3] hi\n"
        .. "[engine 0] 0\n[engine 1] 1\n[engine 2] 2\n[engine 3] 3\n",
        run("%px print('hi') return engine.id"))
    end)

    it("prints errors per engine and carries on", function()
      local out = run("%px if engine.id == 1 then error('boom') end return engine.id")
      local lines = {}
      for l in out:gmatch("[^\n]+") do
        if l:match("^%[engine") then lines[#lines + 1] = l end
      end
      assert.same({"[engine 0] 0", "[engine 1] RemoteError on engine 1: execute:1: boom",
        "[engine 2] 2", "[engine 3] 3"}, lines)
    end)

    it("needs code", function()
      assert.has_error(function() run("%px") end)
    end)
  end)

  it("%pn runs on one engine", function()
    assert.equal("[engine 2] 2\n", run("%pn 2 return engine.id"))
    assert.has_error(function() run("%pn x return 1") end)
  end)

  it("%result shows the last results again", function()
    assert.equal("no results yet\n", run("%result"))
    run("%px return engine.id + 1")
    assert.equal("[engine 0] 1\n[engine 1] 2\n[engine 2] 3\n[engine 3] 4\n", run("%result"))
  end)

  it("%block off submits and %result waits", function()
    run("%block off")
    assert.equal("block off\n", run("%block"))
    assert.equal("submitted to 4 engine(s); %result shows the results\n",
      run("%px sleep(1) return 'late'"))
    assert.equal("[engine 0] \"late\"\n[engine 1] \"late\"\n[engine 2] \"late\"\n"
      .. "[engine 3] \"late\"\n", run("%result"))
    run("%block on")
    assert.is_true(shell.block)
    assert.has_error(function() run("%block maybe") end)
  end)

  it("%targets picks the engines", function()
    assert.equal("targets all\n", run("%targets"))
    run("%targets 0,2")
    assert.equal("targets 0,2\n", run("%targets"))
    assert.equal("[engine 0] 0\n[engine 2] 2\n", run("%px return engine.id"))
    run("%targets 3 1")
    assert.same({3, 1}, shell.targets)
    run("%targets all")
    assert.equal(4, #shell.view:ids())
    assert.has_error(function() run("%targets x") end)
  end)

  it("%engines lists the engines", function()
    local out = run("%engines")
    assert.matches("^engine 0   idle  queue 0   fakehost pid 10000\n", out)
    local n = 0
    for _ in out:gmatch("\n") do n = n + 1 end
    assert.equal(4, n)
  end)

  it("%magic lists built-in and user magics with their help", function()
    plush.magic("hello", function(line, sh) sh.out("hi " .. line .. "\n") end, "says hi")
    local out = run("%magic")
    assert.matches("%%px +run CODE on the current targets", out)
    assert.matches("%%hello +says hi", out)
    assert.equal("hi bob\n", run("%hello bob"))
  end)

  it("a user magic's return value is printed", function()
    plush.magic("two", function() return {1, 2} end)
    assert.equal("{1, 2}\n", run("%two"))
  end)

  it("%push and %pull move globals", function()
    shell.env.x, shell.env.y = 1, {2}
    run("%push x, y")
    assert.equal(1, fake.env(3).x)
    assert.same({2}, fake.env(0).y)
    rc:view():execute("z = engine.id")
    assert.equal("z = {0, 1, 2, 3}\n", run("%pull z"))
    assert.same({0, 1, 2, 3}, shell.env.z)
  end)

  it("%who lists names on the engines", function()
    rc:view():execute("alpha = 1 beta = 2")
    rc[1]:execute("gamma = 3")
    assert.equal("alpha  beta  gamma (engine 1)\n", run("%who"))
    rc[3]:execute("gamma = 4 delta = 1")
    rc[0]:execute("delta = 2")
    assert.equal("alpha  beta  delta (engines 0,3)  gamma (engines 1,3)\n", run("%who"))
    assert.equal("beta\n", run("%who b"))
  end)

  it("%time times a magic or a Lua line", function()
    assert.matches("^%[engine 0%] 1\n.*Wall time: [%d.]+ s\n$", run("%time %px return 1"))
    shell.eval = function(code) shell.evaluated = code end
    assert.matches("^Wall time", run("%time x = 1"))
    assert.equal("x = 1", shell.evaluated)
  end)

  it("%autopx sends plain lines to %px", function()
    assert.is_false(magic.handle("x = 1", shell))
    run("%autopx")
    assert.is_true(magic.handle("return engine.id * 3", shell))
    assert.equal("[engine 0] 0\n[engine 1] 3\n[engine 2] 6\n[engine 3] 9\n", text())
    -- a line is code, never %px's options: a leading '-' or comment too
    assert.is_true(magic.handle("-engine.id", shell))
    assert.equal("[engine 0] 0\n[engine 1] -1\n[engine 2] -2\n[engine 3] -3\n", text())
    assert.is_true(magic.handle("--[[note]] return engine.id", shell))
    assert.equal("[engine 0] 0\n[engine 1] 1\n[engine 2] 2\n[engine 3] 3\n", text())
    magic.handle("%autopx", shell)
    assert.is_false(shell.autopx)
  end)

  it("unknown magics are errors", function()
    local ok, e = pcall(magic.run, "%nope", shell)
    assert.is_false(ok)
    assert.matches("unknown magic %%nope %(%%magic lists them%)", e)
  end)

  it("register checks its arguments", function()
    assert.has_error(function() plush.magic("bad name", print) end)
    assert.has_error(function() plush.magic("ok", "not a function") end)
  end)

  it("load_dir loads *.lua files, both styles, skipping broken ones", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local function write(name, s)
      local f = assert(io.open(dir .. "/" .. name, "w"))
      f:write(s)
      f:close()
    end
    write("a.lua", [[require("plush").magic("from_a", function() return "a" end, "A")]])
    write("b.lua", [[return {from_b = {function() return "b" end, "B"}}]])
    write("c.lua", [[this is not lua]])
    write("notes.txt", [[ignored]])
    local se = io.stderr
    local err = {}
    io.stderr = {write = function(_, ...) err[#err + 1] = table.concat({...}) end}
    magic.broken = {}
    local n = magic.load_dir(dir)
    io.stderr = se
    os.execute("rm -rf " .. dir)
    assert.equal(2, n)
    -- kept for the shell to say once, not written by every `plush -e`
    assert.equal("", table.concat(err))
    assert.equal(1, #magic.broken)
    assert.matches("^magic file .*c%.lua: ", magic.broken[1])
    assert.matches("unknown magic %%nosuch %(%%magic lists them%); magic file .*c%.lua",
      select(2, pcall(magic.run, "%nosuch", {})))
    magic.broken = {}
    assert.equal('"a"\n', run("%from_a"))
    assert.equal('"b"\n', run("%from_b"))
  end)
end)

describe("shell syntax and the newer magics", function()
  local rc, shell, buf, saved

  local function text()
    local s = table.concat(buf)
    buf = {}
    return s
  end

  local function handle(line)
    assert.is_true(magic.handle(line, shell))
    return text()
  end

  before_each(function()
    fake.reset{n = 2}
    rc = fake.client{output = false}
    buf = {}
    shell = {rc = rc, targets = "all", block = true, env = {},
      out = function(s) buf[#buf + 1] = s end}
    saved = deferred.on_unhandled
    deferred.on_unhandled = function() end
  end)
  after_each(function()
    rc:close()
    collectgarbage()
    deferred.on_unhandled = saved
  end)

  it("%px sends an expression as a return", function()
    assert.equal("return x", magic.chunk("x"))
    assert.equal("x = 1", magic.chunk("x = 1"))
    assert.equal("return f()", magic.chunk("f()"))
    handle("%px x = engine.id * 3")
    assert.equal("[engine 0] 0\n[engine 1] 3\n", handle("%px x"))
    -- `= EXPR`, the prompt's old spelling, too (it was a syntax error)
    assert.equal("return  x, 1", magic.chunk("= x, 1"))
    assert.equal("[engine 0] 0, 1\n[engine 1] 3, 1\n", handle("%px = x, 1"))
  end)

  it("?name, name? and %help describe local and remote values", function()
    shell.env.here = {1, 2}
    local out = handle("?here")
    assert.matches("^here  here\n  table: 2 array items, 0 other keys\n  {1, 2}\n", out)
    handle("%px there = engine.id")
    out = handle("there?")
    assert.equal("there  on engine 0\n  integer 0\nthere  on engine 1\n  integer 1\n", out)
    handle("%px same = 'v'")
    assert.equal('same  on engines 0,1\n  string, 1 bytes: "v"\n', handle("%help same"))
    assert.equal("nothing is not defined, here or on the engines\n", handle("?nothing"))
    assert.matches("^%%px: run CODE", handle("?%px"))
    assert.matches("^plush: Lua here", handle("?"))
    assert.has_error(function() handle("?1 + 1") end)
  end)

  it("??name adds a Lua function's source", function()
    shell.env.f = magic.chunk
    local out = handle("??f")
    assert.matches("function%(code%)\n  defined at .*magic%.lua:%d+\nfunction magic%.chunk", out)
  end)

  it("!cmd runs the system shell and reports a failure", function()
    assert.equal("", handle("!true"))
    assert.equal("exit 3\n", handle("!exit 3"))
  end)

  it("%who leaves out the standard names unless -a", function()
    handle("%px mine = 1")
    assert.equal("mine\n", handle("%who"))
    -- a stock engine's globals (plus engine and cjson), as the real one has
    assert.equal("_G  _VERSION  assert  cjson  collectgarbage  coroutine  debug  dofile  "
      .. "engine  error  getmetatable  io  ipairs  load  loadfile  math  mine  next  os  "
      .. "package  pairs  pcall  print  rawequal  rawget  rawlen  rawset  require  select  "
      .. "setmetatable  string  table  tonumber  tostring  type  utf8  warn  xpcall\n",
      handle("%who -a"))
    assert.equal("no names\n", handle("%who x"))
    assert.equal("mine\n", handle("%who -a mi "))
    -- an unknown option or two words: refused, not taken as a prefix
    assert.has_error(function() handle("%who -z") end,
      "%who: '-z' is not a name prefix (usage: %who [-a] [prefix])")
    assert.has_error(function() handle("%who a b") end,
      "%who: 'a b' is not a name prefix (usage: %who [-a] [prefix])")
  end)

  it("%time gives each engine's time for %px", function()
    local out = handle("%time %px sleep(0.5) return 1")
    assert.matches("%[engine 0%] ran 0%.500000 s\n%[engine 1%] ran 0%.500000 s\nWall time", out)
  end)

  it("with async_results, %block off results print when they arrive", function()
    shell.async_results = true
    handle("%block off")
    assert.matches("the results print when they arrive", handle("%px sleep(1) return 'r'"))
    rc:wait()
    assert.equal('[engine 0] "r"\n[engine 1] "r"\n', text())
  end)

  it("with async_results, a %result that waited prints each result once", function()
    shell.async_results = true
    handle("%block off")
    handle("%px sleep(1) return 'r'")
    assert.equal('[engine 0] "r"\n[engine 1] "r"\n', handle("%result"))
    rc:wait()
    assert.equal("", text())
  end)

  it("%restart gives fresh namespaces, refusing an engine that is not up", function()
    handle("%px x = 1")
    assert.equal("restarted engine 1: a fresh namespace\n", handle("%restart 1"))
    assert.same({op = "restart", targets = {1}}, fake.state.ctrls[#fake.state.ctrls])
    assert.is_nil(fake.env(1).x)
    assert.equal(1, fake.env(0).x)
    assert.equal("restarted engines 0,1: a fresh namespace\n", handle("%restart"))
    local ok, e = pcall(handle, "%restart 7")
    assert.is_false(ok)
    assert.matches("no engine 7 %(%%engines lists them%)$", e)
  end)

  it("%restart with no engine up says so", function()
    rc.restart = function() return {} end -- every engine down
    local ok, out = pcall(handle, "%restart")
    rc.restart = nil
    assert.is_true(ok, out)
    assert.equal("no engine is up: nothing restarted\n", out)
  end)

  it("paints tags and errors through shell.paint", function()
    shell.paint = function(style, s) return "<" .. style .. ">" .. s end
    assert.equal("<engine>[engine 0] 0\n<engine>[engine 1] 1\n", handle("%px engine.id"))
    assert.matches("^<error>%[engine 0%] <error>RemoteError", handle("%px error('x')"))
  end)

  it("%magic lists built-in and user magics apart, with their files", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local f = assert(io.open(dir .. "/mine.lua", "w"))
    f:write([[require("plush").magic("mine", function() end, "my magic")]])
    f:close()
    magic.load_dir(dir)
    os.execute("rm -rf " .. dir)
    local out = handle("%magic")
    assert.matches("^built%-in magics:\n", out)
    assert.matches("\nuser magics:\n.*%%mine +my magic  %(mine%.lua%)\n", out)
    local builtin_part = out:match("^(.-)user magics")
    assert.not_matches("%%mine", builtin_part)
  end)

  it("loads the installed magics from PLUSH_DATA_DIR", function()
    local dirs = magic.default_dirs()
    local data = os.getenv("PLUSH_DATA_DIR")
    if data and data ~= "" then assert.equal(data .. "/magics", dirs[1]) end
    assert.matches("/plush/magics$", dirs[#dirs])
  end)
end)
