-- End to end: conn:poll(timeout, fd), the shell's one wait for its
-- terminal and the controller, against a real cluster (PLUSH_TEST_FILE,
-- as e2e_client_spec.lua). The read end of an io.popen pipe stands in for
-- the terminal.
local plush, file = require("real_cluster")("e2e poll with an fd")
if not plush then return end

-- The open fds (opening /proc/self/fdinfo/N fails for a closed N: the
-- path is looked up before the open takes an fd of its own).
local function fds()
  local set = {}
  for n = 0, 1023 do
    local f = io.open("/proc/self/fdinfo/" .. n)
    if f then
      set[n] = true
      f:close()
    end
  end
  return set
end

local function nonblocking(fd)
  local f = assert(io.open("/proc/self/fdinfo/" .. fd))
  local flags = tonumber(f:read("a"):match("flags:%s*(%d+)"), 8)
  f:close()
  return flags & 2048 ~= 0 -- O_NONBLOCK
end

-- A child's output pipe (io.popen of cmd) and its read end's fd.
local function piped(cmd)
  local before = fds()
  local child = io.popen(cmd)
  local fd
  for n in pairs(fds()) do
    if not before[n] then fd = n end
  end
  assert.is_not_nil(fd, "the pipe's fd")
  return child, fd
end

-- Whether poll's events say fd is readable.
local function readable(evs, fd)
  for _, ev in ipairs(evs) do
    if ev.kind == "readable" then
      assert.equal(fd, ev.fd)
      return true
    end
  end
  return false
end

describe("e2e poll with an fd", function()
  local rc

  setup(function() rc = plush.connect{file = file, timeout = 20} end)
  teardown(function() rc:close() end)

  it("wakes when the fd is readable, and leaves its mode alone", function()
    local child, fd = piped("sleep 0.5; echo ready")
    assert.is_false(readable(rc.conn:poll(0.05, fd), fd))
    assert.is_false(nonblocking(fd))
    local t0, woke = plush.now(), false
    while not woke and plush.now() - t0 < 10 do woke = readable(rc.conn:poll(10, fd), fd) end
    assert.is_true(woke)
    assert.is_false(nonblocking(fd))
    assert.equal("ready", child:read("l"))
    child:close()
    -- the connection still works, with or without an fd
    assert.same(rc:ids(), rc:ids())
    assert.equal(2, rc[rc:ids()[1]]:execute("return 1 + 1"))
  end)

  -- a timed wait that timed out, then one with no timeout (the shell's
  -- prompt after the Ctrl-C of a flood): the second waits for the fd
  it("waits with no timeout after a wait that timed out", function()
    local child, fd = piped("sleep 0.3; echo later")
    assert.is_false(readable(rc.conn:poll(0.01, fd), fd)) -- its timer fires
    local t0, woke = plush.now(), false
    while not woke and plush.now() - t0 < 10 do woke = readable(rc.conn:poll(nil, fd), fd) end
    assert.is_true(woke)
    assert.equal("later", child:read("l"))
    child:close()
  end)

  it("checks its fd argument", function()
    assert.has_error(function() rc.conn:poll(0, -5) end)
    assert.has_error(function() rc.conn:poll(0, "x") end)
  end)
end)
