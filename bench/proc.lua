-- What /proc says of a process, for bench/run.lua, cpu.lua and reqcpu.lua:
-- a file's text, the CPU time, the context switches and the read and
-- write syscalls of a pid; and their client of the cluster they start
-- (M.connect), or the whole run on such a cluster (M.run).
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

-- the user + system seconds of all of pids
function M.cpus(pids)
  local s = 0
  for _, p in ipairs(pids) do s = s + M.cpu(p) end
  return s
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

-- The count a bench script takes as its argument s (default when nil):
-- an integer from 1, else the usage line on stderr and exit 2.
function M.count_arg(s, default, usage)
  local n = math.tointeger(tonumber(s or tostring(default)))
  if not n or n < 1 then
    io.stderr:write("usage: ", usage, "\n")
    os.exit(2)
  end
  return n
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

--[[
  M.run(core, plush, root, body [, wrap]): a controller with 2 engines in a
  folder of its own (wrap: words put before its command line, e.g.
  valgrind), body(rc, engines, pid) run against it; then the controller is
  ended by pid, the folder removed, and the process exits 1 with body's
  traceback if it raised.
]]
function M.run(core, plush, root, body, wrap)
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p '" .. dir .. "'")
  local file = dir .. "/bench.json"
  local argv = {}
  for a in (wrap or ""):gmatch("%S+") do argv[#argv + 1] = a end
  for _, a in ipairs{root .. "/build/bin/plush-controller", "--file", file, "-n", "2",
    "--log", dir .. "/log", "--parent", tostring(core.getpid())} do
    argv[#argv + 1] = a
  end
  local pid = core.spawn(argv)
  local ok, err = xpcall(function()
    local rc, engines = M.connect(core, plush, file, pid, 2, 60)
    body(rc, engines, pid)
    rc:close()
  end, debug.traceback)
  core.kill(pid, 15)
  local deadline = core.now() + 30
  while core.alive(pid) and core.now() < deadline do core.sleep(0.01) end
  os.execute("rm -rf '" .. dir .. "'")
  if not ok then
    io.stderr:write(tostring(err), "\n")
    os.exit(1)
  end
end

-- n balanced applies of f through lb, 1,000 at a time, each thousand
-- waited for (plush.wait_all) before the next: the lb_noop row's pattern.
function M.lb_batches(plush, lb, f, n)
  local left = n
  while left > 0 do
    local ds = {}
    for i = 1, math.min(1000, left) do ds[i] = lb:apply(f) end
    plush.wait_all(ds)
    left = left - 1000
  end
end

-- n tuple-space pairs between the first two engines of rc: n outs of
-- {"b", j} on one, n takes of {"b", ANY} on the other, in one apply to
-- the two (the ts_pairs row's sample).
function M.ts_pairs(rc, n)
  local ids = rc:ids()
  rc:view{ids[1], ids[2]}:apply(function(peers, k)
    local s = engine.tuplespace "bench"
    if engine.id == peers[1] then
      for j = 1, k do s:out{"b", j} end
    else
      for _ = 1, k do s:take{"b", s.ANY} end
    end
  end, {ids[1], ids[2]}, n)
end

return M
