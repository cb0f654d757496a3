-- bench/scale.lua — `scripts/bench --scale [N]`: N engines (default 256)
-- on this machine: the time until all are registered, the latency of
-- %px return engine.id across all of them, and the controller's memory per
-- idle engine. Every process started is ended by PID (cluster stop, then
-- the controller's PID checked).
local plush = require "plush"
local core = require "plush.core"

local n = math.tointeger(tonumber(arg[1] or "")) or 256

local function rss(pid)
  local f = assert(io.open("/proc/" .. pid .. "/status"))
  local kb = tonumber(f:read("a"):match("VmRSS:%s+(%d+)"))
  f:close()
  return kb
end

local started = {}
local function stop(profile)
  pcall(plush.cluster.stop, {profile = profile})
  for _, pid in ipairs(started) do
    if core.alive(pid) then core.kill(pid, "KILL") end
  end
end

local ok, err = pcall(function()
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
  local all = rc:view()
  all:execute("return engine.id")
  local ts = {}
  for i = 1, 30 do
    local t = core.now()
    local ids = all:execute("return engine.id")
    ts[i] = core.now() - t
    assert(#ids == n)
  end
  table.sort(ts)
  local idle = rss(info.pid)
  rc:close()
  stop("bench-scale")
  local per = (idle - base) / n
  -- issue 14's targets, for 1,000 engines: < 3 s, < 100 ms, < 100 kB
  print(("%d engines registered in %.2f s (target < 3 s: %s)"):format(n, reg,
    reg < 3 and "met" or "MISSED"))
  print(("%%px return engine.id across %d engines: median %.1f ms, p90 %.1f ms"
    .. " (target < 100 ms: %s)"):format(n, ts[15] * 1e3, ts[27] * 1e3,
    ts[15] < 0.1 and "met" or "MISSED"))
  print(("controller RSS %d kB alone, %d kB with %d idle engines: %.0f kB per engine"
    .. " (target < 100 kB: %s)"):format(base, idle, n, per, per < 100 and "met" or "MISSED"))
end)
if not ok then
  stop("bench-scale-0")
  stop("bench-scale")
  io.stderr:write("bench --scale: ", tostring(err), "\n")
  os.exit(1)
end
