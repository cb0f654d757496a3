--[[
bench/codec.lua: core.encode / core.decode of 10^6 integers (both signs,
several widths) and of 10^6 floats, CPU time (os.clock), the minimum of 15
runs each, the collector stopped during a run. Given several build folders
it loads each one's plush.core in its own process, in turn, ROUNDS times
(old and new alternating, as the machine is shared):

  lua5.4 bench/codec.lua [--rounds N] BUILD [BUILD...]
]]
local rounds, dirs, i = 1, {}, 1
while arg[i] do
  if arg[i] == "--rounds" then i = i + 1 rounds = tonumber(arg[i]) or 1
  else dirs[#dirs + 1] = arg[i] end
  i = i + 1
end
if #dirs == 0 then
  io.stderr:write("usage: lua5.4 bench/codec.lua [--rounds N] BUILD [BUILD...]\n")
  os.exit(2)
end
if #dirs > 1 or rounds > 1 then       -- one child per build and round
  local lua = arg[-1] or "lua5.4"
  for _ = 1, rounds do
    for _, d in ipairs(dirs) do
      assert(os.execute(("%q %q %q"):format(lua, arg[0], d)))
    end
  end
  os.exit(0)
end
package.cpath = dirs[1] .. "/lua/?.so;" .. package.cpath
local core = require "plush.core"
local N = 10 ^ 6 // 1
local ints, flts = {}, {}
for k = 1, N do ints[k] = k * 7919 % 1000003 - 500000 flts[k] = k * 0.1 end
local function best(f)
  local m = math.huge
  for _ = 1, 15 do
    collectgarbage() collectgarbage("stop")
    local t = os.clock() f() t = os.clock() - t
    collectgarbage("restart")
    if t < m then m = t end
  end
  return m * 1e3
end
local ei, ef = core.encode(ints), core.encode(flts)
io.write(("%-24s encode int %6.2f ms  float %6.2f ms   decode int %6.2f ms  float %6.2f ms\n")
  :format(dirs[1], best(function() return core.encode(ints) end),
    best(function() return core.encode(flts) end),
    best(function() return core.decode(ei) end),
    best(function() return core.decode(ef) end)))
