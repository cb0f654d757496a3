--[[
bench/mapcpu.lua: the client's CPU per map of x^10 over 10^6 numbers on
2 engines (the `map` row), for the client's share of a map (performance.md,
"Map results decoded in place, fifth session, round 2").

  PLUSH_ROOT=. LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua/?.so;;" \
    lua5.4 bench/mapcpu.lua [MAPS]

It starts its own cluster (plush-controller -n 2, ended by PID), runs MAPS
maps (default 10) after one to warm up, checks each result, and prints the
wall time and the CPU (user + system) of this client, the controller and
the two engines, per map.
]]
local core = require "plush.core"
local plush = require "plush"

local ROOT = os.getenv("PLUSH_ROOT") or "."
local proc = dofile(ROOT .. "/bench/proc.lua")
local N = proc.count_arg(arg[1], 10, "lua5.4 bench/mapcpu.lua [MAPS]")
local cpu = proc.cpu

proc.run(core, plush, ROOT, function(rc, engines, pid)
  local function ecpu() return proc.cpus(engines) end
  local all, seq = rc:view(), {}
  for i = 1, 1000000 do seq[i] = i end
  local f = function(x) return x ^ 10 end
  local expect = 1000000 ^ 10
  assert(all:map(f, seq)[1000000] == expect)
  collectgarbage()
  local k0, g0, c0, t0 = cpu(pid), ecpu(), os.clock(), core.now()
  for _ = 1, N do
    local v = all:map(f, seq)
    assert(v[1000000] == expect and v[2] == 1024.0, "map result is wrong")
  end
  local t, c, k, g = core.now() - t0, os.clock() - c0, cpu(pid) - k0, ecpu() - g0
  io.write(("map x^10 over 10^6, %d maps: per map %.1f ms wall; CPU client %.1f, "
    .. "controller %.1f, engines %.1f ms\n"):format(N, t / N * 1e3, c / N * 1e3,
    k / N * 1e3, g / N * 1e3))
end)
