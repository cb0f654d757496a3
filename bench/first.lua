--[[
bench/first.lua: the first push and the first pull of 100 MB on new
clusters, for comparing two builds in alternation (performance.md, "The
fourteenth session"); the bench's push_first_100MB row takes one sample a
repetition.

  PLUSH_ROOT=. LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua/?.so;;" \
    lua5.4 bench/first.lua [N]

N times (default 1): a new cluster of 2 engines (plush-controller -n 2,
ended by PID), a 100 MB string pushed to one engine, then one made on the
other engine pulled; prints the two times in ms, one line per cluster.
]]
local core = require "plush.core"
local plush = require "plush"

local ROOT = os.getenv("PLUSH_ROOT") or "."
local proc = dofile(ROOT .. "/bench/proc.lua")
local N = proc.count_arg(arg[1], 1, "lua5.4 bench/first.lua [N]")
local BYTES = 100 * 1000 * 1000
local s = string.rep("x", BYTES)

for _ = 1, N do
  proc.run(core, plush, ROOT, function(rc)
    local ids = rc:ids()
    local t = core.now()
    rc[ids[1]]:push{x = s}
    local push = core.now() - t
    rc[ids[2]]:execute(("y = string.rep('y', %d)"):format(BYTES))
    t = core.now()
    local v = rc[ids[2]]:pull("y")
    local pull = core.now() - t
    assert(#v == BYTES, "pulled string has the wrong length")
    io.write(("push %.1f ms, pull %.1f ms\n"):format(push * 1e3, pull * 1e3))
  end)
end
