--[[
bench/reqcpu.lua: the CPU and the controller's syscalls per request, for
profiling the client and the controller (performance.md, "Client and
controller: CPU per request, fourth session").

  PLUSH_ROOT=. LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua/?.so;;" \
    lua5.4 bench/reqcpu.lua MODE N

MODE: exec (N executes on one engine, one after the other), lb (N balanced
no-op applies, 1,000 at a time then plush.wait_all, as the lb_noop row), ts
(N tuple-space pairs: N outs on one engine, N takes on the other, as the
ts_pairs row) or none (the cluster's start and stop alone: subtract it from an instruction
count). It starts its own cluster (plush-controller -n 2, ended by PID) and
prints, per request: the wall time, the CPU time (user + system) of this
client, the controller and the two engines, and the controller's read and
write syscalls (/proc/PID/io). RQ_WRAP, when set, is put before the
controller's command line: RQ_WRAP="valgrind --tool=callgrind" profiles
the controller; `valgrind --tool=callgrind lua5.4 bench/reqcpu.lua ...`
profiles the client.
]]
local core = require "plush.core"
local plush = require "plush"

local ROOT = os.getenv("PLUSH_ROOT") or "."
local mode, N = arg[1], math.tointeger(tonumber(arg[2] or ""))
if not (mode == "exec" or mode == "lb" or mode == "ts" or mode == "none") or not N or N < 0 then
  io.stderr:write("usage: lua5.4 bench/reqcpu.lua exec|lb|ts|none N\n")
  os.exit(2)
end

local proc = dofile(ROOT .. "/bench/proc.lua")
local cpu, syscalls = proc.cpu, proc.syscalls

proc.run(core, plush, ROOT, function(rc, engines, pid)
  local function ecpu() return proc.cpus(engines) end
  local e0, lb, noop = rc[rc:ids()[1]], rc:balanced():async(), function() end
  e0:execute("a = 1")
  local r0, w0 = syscalls(pid)
  local k0, g0, c0, t0 = cpu(pid), ecpu(), os.clock(), core.now()
  if mode == "exec" then
    for _ = 1, N do e0:execute("a = 1") end
  elseif mode == "lb" then
    proc.lb_batches(plush, lb, noop, N)
  elseif mode == "ts" then
    proc.ts_pairs(rc, N)
  end
  local n = math.max(N, 1)
  local t, c, k, g = core.now() - t0, os.clock() - c0, cpu(pid) - k0, ecpu() - g0
  local r1, w1 = syscalls(pid)
  io.write(("%s %d: per request %.1f us wall; CPU client %.1f, controller %.1f, "
    .. "engines %.1f us; controller syscalls read %.2f, write %.2f\n"):format(mode, N,
    t / n * 1e6, c / n * 1e6, k / n * 1e6, g / n * 1e6, (r1 - r0) / n, (w1 - w0) / n))
end, os.getenv("RQ_WRAP"))
