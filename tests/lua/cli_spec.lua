-- plush.cli: the command line, run in-process against the fake core.
local fake = require("fake_core").install()
local cli = require "plush.cli"
local cluster = require "plush.cluster"

-- main(argv) with stdout/stderr captured: status, out, err.
local function main(...)
  local out, err = {}, {}
  local function sink(buf)
    return {write = function(self, ...)
      for i = 1, select("#", ...) do buf[#buf + 1] = tostring((select(i, ...))) end
      return self
    end, flush = function() end}
  end
  local so, se = io.stdout, io.stderr
  io.stdout, io.stderr = sink(out), sink(err)
  local ok, status = pcall(cli.main, {...})
  io.stdout, io.stderr = so, se
  assert(ok, status)
  return status, table.concat(out), table.concat(err)
end

describe("plush command line", function()
  local profile, path
  before_each(function()
    fake.reset{n = 4}
    profile = "spec-cli-" .. os.time()
    path = cluster.path(profile)
    local f = assert(io.open(path, "w"))
    f:write('{"host":"127.0.0.1","port":7000,"key":"k","pid":4242}')
    f:close()
  end)
  after_each(function() os.remove(path) end)

  it("--version and --help on every command", function()
    local st, out = main("--version")
    assert.equal(0, st)
    assert.matches("^plush %d+%.%d+%.%d+ %(Lua 5.4%)\n$", out)
    st, out = main("--help")
    assert.equal(0, st)
    assert.matches("^usage: plush", out)
    st, out = main("run", "--help")
    assert.equal(0, st)
    assert.matches("^usage: plush run", out)
    st, out = main("cluster", "--help")
    assert.equal(0, st)
    assert.matches("^usage: plush cluster", out)
    st, out = main("cluster", "start", "--help")
    assert.equal(0, st)
    assert.matches("^usage: plush cluster", out)
    st, out = main("cluster", "status", "-V")
    assert.equal(0, st)
    assert.matches("^plush ", out)
  end)

  it("usage errors are one line and status 2", function()
    local st, out, err = main("--bogus")
    assert.equal(2, st)
    assert.equal("", out)
    assert.equal("plush: unknown option --bogus\n", err)
    st, out, err = main("frobnicate")
    assert.equal(2, st)
    assert.equal("", out)
    assert.equal("plush: unknown command 'frobnicate' (see plush --help)\n", err)
    st, out, err = main("cluster")
    assert.equal(2, st)
    assert.equal("", out)
    assert.matches("^plush: cluster needs start, stop, status, add or logs", err)
    st, out, err = main("cluster", "start", "-n", "many")
    assert.equal(2, st)
    assert.equal("", out)
    assert.equal("plush: -n needs a number of engines (0: the controller alone)\n", err)
    st, out, err = main("cluster", "start", "-n", "-1")
    assert.equal("", out)
    assert.equal(2, st)
    assert.equal("plush: -n needs a number of engines (0: the controller alone)\n", err)
    st, out = main("results", "show", "--help")
    assert.equal(0, st)
    assert.matches("^usage: plush results", out)
    st, out, err = main("--profile")
    assert.equal(2, st)
    assert.equal("", out)
    assert.equal("plush: --profile needs a value\n", err)
  end)

  it("-e runs Lua and prints what it returns", function()
    local st, out = main("-e", "x = 40", "-e", "return x + 2")
    assert.equal(0, st)
    assert.equal("42\n", out)
  end)

  it("-e connects rc only when used", function()
    local st = main("-e", "y = 1")
    assert.equal(0, st)
    assert.equal(0, #fake.state.conns)
    local out
    st, out = main("--profile", profile, "-e", "return rc:ids()")
    assert.equal(0, st)
    assert.equal("{0, 1, 2, 3}\n", out)
    assert.equal(1, #fake.state.conns)
    assert.is_false(fake.state.conns[1].open)
  end)

  it("-e runs magics", function()
    local st, out = main("--profile", profile, "-e", "%px return engine.id")
    assert.equal(0, st)
    assert.equal("[engine 0] 0\n[engine 1] 1\n[engine 2] 2\n[engine 3] 3\n", out)
  end)

  it("a Lua error is one line on stderr, status 1", function()
    local st, _, err = main("-e", "error('nope')")
    assert.equal(1, st)
    assert.equal("plush: (command line):1: nope\n", err)
  end)

  it("a remote error prints its tostring, status 1", function()
    local st, _, err = main("--profile", profile, "-e", "rc[1]:execute('error(\"far\")')")
    assert.equal(1, st)
    assert.matches("^RemoteError on engine 1: execute:1: far\nstack traceback:", err)
  end)

  describe("run", function()
    local script
    before_each(function() script = os.tmpname() end)
    after_each(function() os.remove(script) end)

    local function write(s)
      local f = assert(io.open(script, "w"))
      f:write(s)
      f:close()
    end

    it("runs a script with arg, plush and rc; an integer return is the status", function()
      write([[
        assert(plush and plush.version)
        assert(arg[0]:match("lua") or true)
        io.stdout:write(arg[1], arg[2], #rc:ids(), "\n")
        return 3
      ]])
      local st, out = main("--profile", profile, "run", script, "a", "b")
      assert.equal(3, st)
      assert.equal("ab4\n", out)
    end)

    it("does not parse the script's options", function()
      write([[io.stdout:write(table.concat(arg, " "), "\n")]])
      local st, out = main("run", script, "--help", "-n")
      assert.equal(0, st)
      assert.equal("--help -n\n", out)
    end)

    it("reports a missing file", function()
      local st, _, err = main("run", "/nonexistent/s.lua")
      assert.equal(1, st)
      assert.matches("^plush: cannot open /nonexistent/s.lua", err)
      st, _, err = main("run")
      assert.equal(2, st)
      assert.matches("run needs a FILE", err)
    end)

    it("a remote error escaping the script exits 1", function()
      write([[rc:view():execute("if engine.id > 1 then error('x') end")]])
      local st, _, err = main("--profile", profile, "run", script)
      assert.equal(1, st)
      assert.matches("^CompositeError: 2 tasks failed\n%[engine 2%] execute:1: x\n"
        .. "%[engine 3%] execute:1: x\n$", err)
    end)
  end)

  describe("cluster", function()
    it("status prints engines and queues", function()
      local st, out = main("cluster", "status", "--profile", profile)
      assert.equal(0, st)
      assert.matches("cluster '" .. profile:gsub("%-", "%%-") .. "' at 127.0.0.1:7000", out)
      assert.matches("engine 3 ", out)
    end)

    it("status --json is JSON", function()
      local st, out = main("cluster", "status", "--json", "--profile", profile)
      assert.equal(0, st)
      local v = require("cjson").decode(out)
      assert.equal(4, #v.engines)
      assert.equal(7000, v.port)
    end)

    it("stop of a profile that does not run fails with one line", function()
      local st, _, err = main("cluster", "stop", "--profile", "surely-not-running-xyz")
      assert.equal(1, st)
      assert.equal("plush: no cluster running for profile 'surely-not-running-xyz'\n", err)
    end)
  end)
end)
