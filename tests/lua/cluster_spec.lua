-- plush.cluster: profiles, connection files and plush.connect (fake core).
local fake = require("fake_core").install()
local plush = require "plush"
local cluster = require "plush.cluster"

local function write(path, s)
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
end

describe("cluster", function()
  local base, file
  before_each(function()
    fake.reset{n = 3}
    base = os.tmpname()
    file = base .. ".json"
  end)
  after_each(function()
    os.remove(file)
    os.remove(base)
  end)

  it("profile: the argument, $PLUSH_PROFILE or default", function()
    assert.equal("work", cluster.profile("work"))
    assert.equal(os.getenv("PLUSH_PROFILE") or "default", cluster.profile())
    assert.has_error(function() cluster.profile("../etc") end)
    assert.has_error(function() cluster.profile("a b") end)
  end)

  it("dir exists and path names PROFILE.json in it", function()
    local dir = cluster.dir()
    assert.matches("/plush$", dir)
    assert.truthy(os.rename(dir, dir))
    assert.equal(dir .. "/x.json", cluster.path("x"))
  end)

  it("read gives the file's fields, integers as integers", function()
    write(file, '{"host":"127.0.0.1","port":5555,"key":"ab12","pid":4242,"profile":"p","n":2}')
    local info = assert(cluster.read(file))
    assert.equal("127.0.0.1", info.host)
    assert.equal(math.tointeger(5555), info.port)
    assert.equal("integer", math.type(info.port))
    assert.equal("integer", math.type(info.pid))
    assert.equal("ab12", info.key)
    assert.equal(file, info.file)
  end)

  it("read says why it cannot", function()
    local info, err = cluster.read("/nonexistent/x.json")
    assert.is_nil(info)
    assert.equal("no connection file /nonexistent/x.json", err)
    write(file, "{not json")
    info, err = cluster.read(file)
    assert.is_nil(info)
    assert.matches("bad connection file", err)
    write(file, '{"host":"h","port":1}')
    info, err = cluster.read(file)
    assert.is_nil(info)
    assert.matches("no 'key'", err)
  end)

  it("running checks a local pid, trusts a remote host", function()
    assert.is_true(cluster.running{host = "127.0.0.1", pid = 4242})
    assert.is_false(cluster.running{host = "127.0.0.1", pid = 999999})
    assert.is_true(cluster.running{host = "10.1.2.3", pid = 999999})
    assert.is_false(cluster.running(nil))
  end)

  it("connect{file} gives a working Client", function()
    write(file, '{"host":"0.0.0.0","port":7000,"key":"k","pid":4242}')
    local rc = plush.connect{file = file, timeout = 3}
    assert.equal("127.0.0.1", rc.conn.host)
    assert.equal(7000, rc.conn.port)
    assert.equal(3, rc.conn.timeout)
    assert.same({0, 1, 2}, rc:ids())
    assert.same({0, 1, 2}, rc:view():execute("return engine.id"))
    assert.equal(file, rc.info.file)
    rc:close()
  end)

  it("connect reports what is wrong", function()
    local ok, e = pcall(plush.connect, {file = "/nonexistent/c.json"})
    assert.is_false(ok)
    assert.matches("no connection file /nonexistent/c.json", e)
    ok, e = pcall(plush.connect, {bogus = 1})
    assert.is_false(ok)
    assert.matches("unknown option 'bogus'", e)
    ok, e = pcall(plush.connect, {profile = "surely-not-running-xyz", embedded = false})
    assert.is_false(ok)
    assert.matches("no cluster running for profile 'surely%-not%-running%-xyz'", e)
    write(file, '{"host":"127.0.0.1","port":7000,"key":"k","pid":4242}')
    fake.state.refuse = true
    ok, e = pcall(plush.connect, {file = file})
    assert.is_false(ok)
    assert.matches("^.-tests/lua/cluster_spec.lua:%d+: cannot connect to 127.0.0.1:7000", e)
  end)

  it("status reads the controller's state", function()
    local profile = "spec-status-" .. os.time()
    local path = cluster.path(profile)
    write(path, '{"host":"127.0.0.1","port":7000,"key":"k","pid":4242}')
    local st = assert(cluster.status{profile = profile})
    os.remove(path)
    assert.equal(3, #st.engines)
    assert.equal("127.0.0.1:7000", st.address)
    assert.equal(0, st.queues.unassigned)
    assert.equal(3, st.status.engines)
  end)

  describe("start and stop", function()
    local bindir, spawned, real_spawn, real_bindirs

    -- a fake plush-controller: "spawning" it writes the connection file
    before_each(function()
      bindir = os.tmpname()
      os.remove(bindir)
      os.execute("mkdir -p " .. bindir)
      write(bindir .. "/plush-controller", "#!/bin/sh\n")
      real_spawn, real_bindirs = fake.core.spawn, fake.core.bindirs
      fake.core.bindirs = function() return {bindir} end
      spawned = {}
      fake.core.spawn = function(argv, opts)
        spawned[#spawned + 1] = {argv = argv, opts = opts}
        local path
        for i, a in ipairs(argv) do
          if a == "--file" then path = argv[i + 1] end
        end
        if not fake.state.silent then
          write(path, '{"host":"127.0.0.1","port":7100,"key":"k","pid":5000}')
        end
        fake.state.alive_pids[5000] = true
        return 5000
      end
    end)
    after_each(function()
      fake.core.spawn, fake.core.bindirs = real_spawn, real_bindirs
      os.execute("rm -rf " .. bindir)
    end)

    it("start spawns the controller and waits for the engines", function()
      local profile = "spec-start-" .. os.time()
      local info, conn = cluster.start{profile = profile, n = 3, ip = "0.0.0.0"}
      conn:close()
      local argv = spawned[1].argv
      assert.same({bindir .. "/plush-controller", "--profile", profile, "-n", "3",
        "--ip", "0.0.0.0", "--file", cluster.path(profile)}, argv)
      assert.is_true(spawned[1].opts.detach)
      assert.equal(cluster.log_path(profile), spawned[1].opts.stdout)
      assert.equal(5000, info.pid)
      local ok, e = pcall(cluster.start, {profile = profile, n = 3})
      assert.is_false(ok)
      assert.matches("cluster '.*' is already running %(pid 5000%)", e)
      assert.is_true(cluster.stop{profile = profile})
      assert.is_true(fake.state.shutdown)
      assert.is_nil(io.open(cluster.path(profile)))
    end)

    it("start gives up when engines do not come", function()
      local ok, e = pcall(cluster.start, {profile = "spec-few-" .. os.time(), n = 9,
        timeout = 2})
      assert.is_false(ok)
      assert.matches("only 3 of 9 engines registered in time: see .*%.log", e)
    end)

    it("start gives up when no connection file appears", function()
      fake.state.silent = true
      local ok, e = pcall(cluster.start, {profile = "spec-silent-" .. os.time(), timeout = 1})
      assert.is_false(ok)
      assert.matches("controller did not start %(see .*spec%-silent%-%d+%.log%)", e)
    end)

    it("connect starts an embedded cluster and close stops it", function()
      local rc = plush.connect{profile = "surely-not-running-xyz", n = 2}
      local argv = table.concat(spawned[1].argv, " ")
      assert.matches("%-%-profile embedded%-4242 %-n 2 %-%-parent 4242 %-%-file ", argv)
      assert.same({0, 1, 2}, rc:ids())
      local path = rc.info.file
      assert.truthy(io.open(path))
      rc:close()
      assert.is_true(fake.state.shutdown)
      assert.is_nil(io.open(path))
    end)
  end)

  it("stop removes a stale file and says so", function()
    local profile = "spec-stale-" .. os.time()
    local path = cluster.path(profile)
    write(path, '{"host":"127.0.0.1","port":7000,"key":"k","pid":999999}')
    local ok, err = cluster.stop{profile = profile}
    assert.is_nil(ok)
    assert.matches("no cluster running for profile", err)
    assert.is_nil(io.open(path))
  end)
end)
