-- What /proc says of a process, for bench/cpu.lua and bench/reqcpu.lua:
-- a file's text, the CPU time, the context switches and the read and
-- write syscalls of a pid; and their client of the cluster they start.
local M = {}

function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local TICK = 100 -- clock ticks a second (M.TICK)
do
  local p = io.popen("getconf CLK_TCK 2>/dev/null")
  if p then
    TICK = tonumber(p:read("l") or "") or 100
    p:close()
  end
end
M.TICK = TICK

-- user + system seconds of pid (0 once it is gone)
function M.cpu(pid)
  local s = M.read("/proc/" .. pid .. "/stat")
  if not s then return 0 end
  local f = {}
  for x in s:match("%) (.*)"):gmatch("%S+") do f[#f + 1] = x end
  return (tonumber(f[12]) + tonumber(f[13])) / TICK
end

-- context switches (voluntary and not) of all the threads of pid
function M.switches(pid)
  local n = 0
  local p = io.popen("cat /proc/" .. pid .. "/task/*/status 2>/dev/null")
  if not p then return 0 end
  for l in p:lines() do
    local v = l:match("^voluntary_ctxt_switches:%s+(%d+)")
      or l:match("^nonvoluntary_ctxt_switches:%s+(%d+)")
    if v then n = n + tonumber(v) end
  end
  p:close()
  return n
end

-- read and write syscalls of pid so far
function M.syscalls(pid)
  local s = M.read("/proc/" .. pid .. "/io") or ""
  return tonumber(s:match("syscr: (%d+)")) or 0, tonumber(s:match("syscw: (%d+)")) or 0
end

-- A client of the controller pid started with --file file, once it and
-- n engines are up (at most timeout s): rc, and the engines' pids.
function M.connect(core, plush, file, pid, n, timeout)
  local deadline = core.now() + timeout
  while not M.read(file) do
    assert(core.now() < deadline and core.alive(pid), "the controller did not start")
    core.sleep(0.001)
  end
  local rc = plush.connect{file = file}
  while #rc:ids() < n do
    assert(core.now() < deadline, "the engines did not register")
    rc:pump(0.01)
  end
  local engines = {}
  for _, e in ipairs(rc:engines()) do engines[#engines + 1] = math.tointeger(e.pid) end
  return rc, engines
end

return M
