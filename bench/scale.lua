-- bench/scale.lua — `scripts/bench --scale [N]`: N engines (default 1000)
-- on this machine (issue 14): the time until all are registered, the
-- latency of %px return engine.id across all of them, the controller's
-- memory per idle engine, each against its target; and, for the rows
-- that miss, where the CPU time goes (client, controller, engines, read
-- from /proc) against what the machine's cores allow. Every process
-- started is ended by PID (cluster stop, then the controller's PID
-- checked).
local plush = require "plush"
local core = require "plush.core"

local n = math.tointeger(tonumber(arg[1] or "")) or 1000
local REG, PX, MEM = 3, 0.1, 100 -- targets: s, s, kB per engine
local REPS = 30

local function status(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function rss(pid)
  return tonumber(status(pid):match("VmRSS:%s+(%d+)"))
end

-- CPU seconds of processes: the run time of all their threads, in ns,
-- from /proc/PID/task/*/schedstat (/proc/PID/stat counts 10 ms ticks: an
-- idle engine's share of one %px is far less); 0 for a process gone.
local function cpus(pids)
  local t, args = 0, {}
  for i, p in ipairs(pids) do args[i] = "/proc/" .. p .. "/task/*/schedstat" end
  local f = assert(io.popen("cat " .. table.concat(args, " ") .. " 2>/dev/null"))
  for ns in f:lines() do t = t + (tonumber(ns:match("^(%d+)")) or 0) end
  f:close()
  return t / 1e9
end

local function cpu(pid) return cpus{pid} end

local started = {}
local function stop(profile)
  pcall(plush.cluster.stop, {profile = profile})
  for _, pid in ipairs(started) do
    if core.alive(pid) then core.kill(pid, "KILL") end
  end
end

local function verdict(ok) return ok and "met" or "MISSED" end

local ok, err = pcall(function()
  local ncpu = core.ncpu()
  -- the controller alone, for the baseline
  local i0, c0 = plush.cluster.start{n = 0, profile = "bench-scale-0", timeout = 30}
  started[#started + 1] = i0.pid
  c0:close()
  local rc0 = plush.connect{profile = "bench-scale-0"}
  rc0:status()
  rc0:close()
  local base = rss(i0.pid)
  stop("bench-scale-0")

  local t0 = core.now()
  local info, conn = plush.cluster.start{n = n, profile = "bench-scale", timeout = 120}
  local reg = core.now() - t0
  started[#started + 1] = info.pid
  conn:close()
  local rc = plush.connect{profile = "bench-scale"}
  local pids, erss = {}, 0
  for i, e in ipairs(rc:engines()) do
    pids[i] = math.tointeger(e.pid)
    started[#started + 1] = pids[i]
  end
  for _, p in ipairs(pids) do erss = erss + (rss(p) or 0) end
  -- CPU spent starting: the engines' own, the controller's (the client's
  -- is a poll loop)
  local start_eng, start_ctl = cpus(pids), cpu(info.pid)
  local all = rc:view()
  all:execute("return engine.id")
  -- idle CPU (heartbeats: a ping and a pong per engine and second),
  -- taken off the per-%px figures below; measured once the engines'
  -- idle collection (250 ms after their last task) is over
  core.sleep(1)
  local i_ctl, i_eng, it = cpu(info.pid), cpus(pids), core.now()
  core.sleep(2)
  it = core.now() - it
  i_ctl, i_eng = (cpu(info.pid) - i_ctl) / it, (cpus(pids) - i_eng) / it
  local ts = {}
  local t_all = core.now()
  local c_cli, c_ctl, c_eng = os.clock(), cpu(info.pid), cpus(pids)
  for i = 1, REPS do
    local t = core.now()
    local ids = all:execute("return engine.id")
    ts[i] = core.now() - t
    assert(#ids == n)
  end
  t_all = core.now() - t_all
  c_cli = (os.clock() - c_cli) / REPS
  c_ctl = (cpu(info.pid) - c_ctl - i_ctl * t_all) / REPS
  c_eng = (cpus(pids) - c_eng - i_eng * t_all) / REPS
  table.sort(ts)
  -- the same through the shell's %px magic (what a user types), its
  -- lines formatted and written to a sink: the client's share of that
  local magic = require "plush.magic"
  local sink = 0
  local sh = {rc = rc, out = function(text) sink = sink + #text end}
  local ms, m_cli = {}, os.clock()
  for i = 1, REPS do
    local t = core.now()
    magic.run("%px return engine.id", sh)
    ms[i] = core.now() - t
  end
  m_cli = (os.clock() - m_cli) / REPS
  assert(sink > 0 and not sh.failed)
  table.sort(ms)
  local idle = rss(info.pid)
  -- the engines' memory once they ran the 60 %px and stayed idle (their
  -- idle collection: 250 ms after their last task)
  core.sleep(1)
  local erss2 = 0
  for _, p in ipairs(pids) do erss2 = erss2 + (rss(p) or 0) end
  rc:close()
  stop("bench-scale")
  local per = (idle - base) / n
  local med, p90 = ts[REPS // 2], ts[math.ceil(REPS * 0.9)]
  print(("%d engines registered in %.2f s (target < %g s: %s)"):format(n, reg, REG,
    verdict(reg < REG)))
  print(("  CPU to start them: engines %.2f ms each, controller %.2f ms each;"
    .. " on %d cores at least %.2f s"):format(start_eng / n * 1e3, start_ctl / n * 1e3,
    ncpu, (start_eng + start_ctl) / ncpu))
  print(("%%px return engine.id across %d engines: median %.1f ms, p90 %.1f ms"
    .. " (target < %g ms: %s)"):format(n, med * 1e3, p90 * 1e3, PX * 1e3,
    verdict(med < PX)))
  print(("  CPU per %%px: client %.1f ms, controller %.1f ms, engines %.1f ms"
    .. " (%.1f us each); on %d cores at least %.1f ms"):format(c_cli * 1e3,
    c_ctl * 1e3, c_eng * 1e3, c_eng / n * 1e6, ncpu,
    math.max(c_cli, c_ctl, (c_cli + c_ctl + c_eng) / ncpu) * 1e3))
  print(("  through the shell's %%px magic (%d lines each, to a sink): median %.1f ms,"
    .. " p90 %.1f ms, client CPU %.1f ms"):format(n, ms[REPS // 2] * 1e3,
    ms[math.ceil(REPS * 0.9)] * 1e3, m_cli * 1e3))
  print(("  idle heartbeats: controller %.0f ms, engines %.0f ms of CPU a second;"
    .. " load average %s"):format(i_ctl * 1e3, i_eng * 1e3,
    (io.open("/proc/loadavg"):read("l"):match("^(%S+)"))))
  print(("controller RSS %d kB alone, %d kB with %d idle engines: %.0f kB per engine"
    .. " (target < %d kB: %s); an engine's RSS %.0f kB, %.0f kB after the %%px runs"):format(
    base, idle, n, per, MEM, verdict(per < MEM), erss / n, erss2 / n))
end)
if not ok then
  stop("bench-scale-0")
  stop("bench-scale")
  io.stderr:write("bench --scale: ", tostring(err), "\n")
  os.exit(1)
end
